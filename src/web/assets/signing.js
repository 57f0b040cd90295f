// Signing keys: the partner's registered Ed25519 public keys (add, revoke; revoked keys stay
// listed), and which device types require signed images. Private keys never come here:
// they are made with `otad keygen` where the partner signs (docs/signing.md).

import { del, get, post, pp, put } from "./api.js";
import { clear, confirmButton, field, fmtTime, h, notice, setFieldError } from "./dom.js";

function keyRow(ctx, k, msg) {
  const state = k.revoked ? `revoked ${fmtTime(k.revokedTimestamp)}` : "active";
  const action = k.revoked
    ? h("span", { class: "muted", text: "—" })
    : confirmButton("Revoke", "Really revoke?", async () => {
      try {
        await del(pp("signingKeys", k.keyId));
        ctx.navigate("#/signing");
      } catch (err) {
        msg.append(notice("error", err.message));
      }
    }, { id: `revoke-${k.keyId}` });
  return h("tr", { "data-key": k.keyId },
    h("td", {}, h("code", { text: k.keyId })),
    h("td", { text: k.name }),
    h("td", { class: "key-state", text: state }),
    h("td", { text: fmtTime(k.createdTimestamp) }),
    h("td", {}, h("code", { class: "public-key", text: k.publicKey })),
    h("td", {}, action));
}

async function policyList(ctx) {
  const types = await get(pp("deviceTypes"));
  const msg = h("div");
  const items = [];
  for (const dt of types) {
    const p = await get(pp("deviceTypes", dt.id, "signaturePolicy"));
    const box = h("input", { type: "checkbox", id: `require-${dt.id}`, checked: p.requireSignature });
    box.addEventListener("change", async () => {
      clear(msg);
      box.disabled = true;
      try {
        const now = await put(pp("deviceTypes", dt.id, "signaturePolicy"), { requireSignature: box.checked });
        box.checked = now.requireSignature;
        msg.append(notice("ok", `${dt.name}: ${now.requireSignature ? "only signed images are offered and pushed" : "signatures are not required"}.`));
      } catch (err) {
        box.checked = !box.checked;
        msg.append(notice("error", err.message));
      } finally {
        box.disabled = false;
      }
    });
    items.push(h("li", {}, box, " ", h("label", { for: box.id, text: `${dt.name} requires signed images` })));
  }
  return h("section", { class: "card", id: "signature-policies" },
    h("h2", { text: "Device types" }),
    items.length ? h("ul", { class: "plain" }, items) : h("p", { class: "muted", text: "No device types yet." }),
    msg);
}

export async function signingScreen(ctx) {
  const { view } = ctx;
  const keys = await get(pp("signingKeys"));
  if (!ctx.live()) return;
  const msg = h("div", { id: "signing-message" });
  const name = h("input", { id: "new-key-name", autocomplete: "off" });
  const publicKey = h("input", { id: "new-key-public", autocomplete: "off", spellcheck: false, maxlength: 64 });
  const form = h("form", { class: "inline", id: "new-key-form", novalidate: true },
    field("Name", name),
    field("Public key", publicKey, "64 hex digits, as otad keygen prints them"),
    h("button", { type: "submit", class: "primary", id: "new-key-save", text: "Add key" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    [name, publicKey].forEach((i) => setFieldError(i, ""));
    if (!name.value.trim()) return setFieldError(name, "A name is required.");
    if (!/^[0-9a-fA-F]{64}$/.test(publicKey.value.trim())) return setFieldError(publicKey, "Enter the 64 hex digits of the public key.");
    try {
      await post(pp("signingKeys"), { name: name.value.trim(), publicKey: publicKey.value.trim() });
      ctx.navigate("#/signing");
    } catch (err) {
      if (/public|signing_key_exists|exists/i.test(err.trace || err.message)) setFieldError(publicKey, err.message);
      else if (/^name/.test(err.message)) setFieldError(name, err.message);
      else msg.append(notice("error", err.message));
    }
  });
  const table = keys.length
    ? h("table", { id: "signing-keys" },
      h("thead", {}, h("tr", {}, ["Key id", "Name", "State", "Added", "Public key", ""].map((t) => h("th", { text: t })))),
      h("tbody", {}, keys.map((k) => keyRow(ctx, k, msg))))
    : h("p", { class: "muted", id: "signing-keys-empty", text: "No signing keys yet. Create one with otad keygen --out KEY where you sign, and add its public key here." });
  view.append(
    h("h1", { text: "Signing keys" }),
    h("section", { class: "card" }, h("h2", { text: "Add a key" }), form, msg),
    h("section", { class: "card" }, h("h2", { text: "Keys" }), table));
  const policies = await policyList(ctx);
  if (ctx.live()) view.append(policies);
}
