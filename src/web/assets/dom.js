// DOM helpers. Everything the UI shows is built with createElement and textContent, never
// by parsing markup, so names, tags and messages from users render as text.

// h("tag", {class, text, onclick, ...attributes}, ...children)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = Boolean(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function fmtTime(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleString();
}

export function fmtBytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

// A labelled form field with a place for its validation message.
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const err = h("span", { class: "field-error", id: `${id}-error`, role: "alert" });
  input.setAttribute("aria-describedby", err.id);
  return h("div", { class: "field" },
    h("label", { for: id, text: label }),
    input,
    hint ? h("small", { class: "hint", text: hint }) : null,
    err);
}

// Shows (or clears, with "") the message of a field built by field().
export function setFieldError(input, message) {
  const err = document.getElementById(`${input.id}-error`);
  if (err) err.textContent = message || "";
  input.classList.toggle("invalid", Boolean(message));
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

// A message box: kind is "error", "ok" or "info".
export function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status", text });
}

export function tagChips(tags) {
  return h("span", { class: "tags" }, (tags || []).map((t) => h("span", { class: "tag", text: t })));
}

// A button that asks once more before running `action` (no window.confirm: keyboard and
// test friendly).
export function confirmButton(label, question, action, attrs) {
  const btn = h("button", { type: "button", class: "danger", text: label, ...(attrs || {}) });
  let armed = false;
  btn.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      btn.textContent = question;
      setTimeout(() => {
        armed = false;
        btn.textContent = label;
      }, 5000);
      return;
    }
    armed = false;
    btn.textContent = label;
    await action();
  });
  return btn;
}
