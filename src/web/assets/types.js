// Image types as folders: platform types (1-100) and the partner's own MCU types (101-200)
// with their image count and newest version, add and edit (the number never changes), a
// first-use prompt when the partner has none, and dropping a file on a folder to start the
// upload wizard for that type.

import { get, post, put, partnerId, pp, query, session } from "./api.js";
import { clear, field, h, notice, setFieldError } from "./dom.js";
import { offerFile } from "./wizard.js";

// Which field an API error concerns, from its trace code.
function typeErrorField(trace) {
  if (/name/.test(trace)) return "name";
  if (/desc/.test(trace)) return "description";
  if (/type|number|exists|conflict/.test(trace)) return "type";
  return null;
}

function typeForm(ctx, existing, done) {
  const admin = session.get().role === "admin";
  const number = h("input", { id: existing ? "edit-type-number" : "new-type-number", type: "number", min: admin ? 1 : 101, max: 200, required: true, value: existing ? existing.type : "", disabled: Boolean(existing) });
  const name = h("input", { id: existing ? "edit-type-name" : "new-type-name", required: true, maxlength: 200, value: existing ? existing.name : "" });
  const description = h("input", { id: existing ? "edit-type-description" : "new-type-description", maxlength: 1000, value: existing ? existing.description || "" : "" });
  const inputs = { type: number, name, description };
  const msg = h("div");
  const submit = h("button", { type: "submit", class: "primary", id: existing ? "edit-type-save" : "new-type-save", text: existing ? "Save" : "Add type" });
  const form = h("form", { class: "type-form", novalidate: true },
    field("Number", number, existing ? "The number of a type never changes." : admin ? "1-100 platform, 101-200 MCU" : "101-200"),
    field("Name", name),
    field("Description", description),
    msg,
    submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    Object.values(inputs).forEach((i) => setFieldError(i, ""));
    clear(msg);
    const n = Number(number.value);
    if (!existing && !Number.isInteger(n)) return setFieldError(number, "Enter the type number.");
    if (!name.value.trim()) return setFieldError(name, "A name is required.");
    submit.disabled = true;
    try {
      if (existing) {
        await put(pp("types", existing.type), { name: name.value.trim(), description: description.value.trim() });
      } else {
        await post(pp("types"), { type: n, name: name.value.trim(), description: description.value.trim() });
      }
      done();
    } catch (err) {
      const f = typeErrorField(err.trace);
      if (f) setFieldError(inputs[f], err.message);
      else msg.append(notice("error", err.message));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// A type name that may break only after an underscore (DEVICE_|DESCRIPTION), never inside
// a word.
function typeName(name) {
  const parts = name.split("_");
  return parts.flatMap((p, i) => (i < parts.length - 1 ? [`${p}_`, h("wbr")] : [p]));
}

// "3 images · newest 1.4.2": the pool's count and highest version number of the type.
async function fillImageCount(box, t) {
  try {
    const page = await get(pp("pool", "types", t.type) + query({ size: 1, sort: "versionNumber,desc" }));
    const newest = page.content[0];
    box.textContent = page.totalElements
      ? `${page.totalElements} image${page.totalElements === 1 ? "" : "s"} · newest ${newest.version} (#${newest.versionNumber})`
      : "No images yet";
    box.dataset.count = String(page.totalElements);
  } catch {
    box.textContent = "";
  }
}

function folder(ctx, t, own, refresh) {
  const open = () => ctx.navigate(`#/images?type=${t.type}`);
  const count = h("span", { class: "folder-count", dataset: { countFor: String(t.type) } });
  fillImageCount(count, t);
  const card = h("div", { class: `folder${own ? " own" : ""}`, dataset: { type: String(t.type) } },
    h("a", { class: "folder-name", href: `#/images?type=${t.type}` }, typeName(t.name)),
    h("span", { class: "folder-number", text: `type ${t.type}` }),
    count,
    t.description ? h("p", { class: "folder-desc", text: t.description }) : null);
  const actions = h("div", { class: "folder-actions" });
  if (t.type !== 4) {
    actions.append(h("a", { class: "button", href: `#/upload?type=${t.type}`, text: "Upload", "aria-label": `Upload an image of type ${t.name}` }));
  }
  const canEdit = own || session.get().role === "admin";
  if (canEdit) {
    actions.append(h("button", {
      type: "button", text: "Edit", dataset: { editType: String(t.type) },
      onclick: () => {
        const dialog = h("dialog", { class: "card", id: "edit-type-dialog", "aria-label": `Edit type ${t.type}` },
          h("h2", { text: `Edit type ${t.type}` }),
          typeForm(ctx, t, () => {
            dialog.close();
            dialog.remove();
            refresh();
          }),
          h("button", { type: "button", text: "Cancel", onclick: () => { dialog.close(); dialog.remove(); } }));
        // Escape closes the dialog natively: remove it then too.
        dialog.addEventListener("close", () => dialog.remove());
        document.body.append(dialog);
        dialog.showModal();
      },
    }));
  }
  card.append(actions);
  // Drop a firmware file onto a folder: the wizard opens with the file and the type.
  if (t.type !== 4) {
    card.addEventListener("dragover", (e) => {
      e.preventDefault();
      card.classList.add("drop");
    });
    card.addEventListener("dragleave", () => card.classList.remove("drop"));
    card.addEventListener("drop", (e) => {
      e.preventDefault();
      card.classList.remove("drop");
      const file = e.dataTransfer && e.dataTransfer.files[0];
      if (file) {
        offerFile(file);
        ctx.navigate(`#/upload?type=${t.type}`);
      }
    });
  }
  card.addEventListener("dblclick", open);
  return card;
}

export async function typesScreen(ctx) {
  const { view } = ctx;
  const types = await get(pp("types"));
  if (!ctx.live()) return;
  const me = partnerId();
  const platform = types.filter((t) => t.type <= 100).sort((a, b) => a.type - b.type);
  const own = types.filter((t) => t.type > 100 && t.partnerId === me).sort((a, b) => a.type - b.type);
  const refresh = () => ctx.navigate("#/types");
  view.append(h("h1", { text: "Image types" }),
    h("p", { class: "muted", text: "Drop a firmware file on a folder to upload it as that type." }));
  // An admin on the platform partner manages platform types: no first-use prompt there.
  const s = session.get();
  const platformAdmin = s.role === "admin" && me === s.partnerId;
  const prompt = own.length === 0 && !platformAdmin;
  if (prompt) {
    view.append(h("section", { class: "card prompt", id: "first-type-prompt" },
      h("h2", { text: "Create your first image type" }),
      h("p", { text: "Your organisation has no image types of its own yet. An MCU image type (101-200) groups the firmware of one component." }),
      typeForm(ctx, null, refresh)));
  }
  view.append(
    h("h2", { text: "Your types" }),
    own.length ? h("div", { class: "folders", id: "own-types" }, own.map((t) => folder(ctx, t, true, refresh))) : h("p", { class: "muted", text: "None yet." }),
    h("h2", { text: "Platform types" }),
    h("div", { class: "folders", id: "platform-types" }, platform.map((t) => folder(ctx, t, false, refresh))));
  if (!prompt) {
    view.append(h("details", { class: "card", id: "add-type" },
      h("summary", { text: "Add an image type" }),
      typeForm(ctx, null, refresh)));
  }
}
