// Admin (appliance admins only): partners (create; the client secret is shown once; rotate
// it) and each partner's users (add, remove).

import { del, get, post, put } from "./api.js";
import { clear, confirmButton, field, h, notice, setFieldError } from "./dom.js";

function secretNotice(label, secret) {
  return h("div", { class: "notice ok" }, h("p", { text: `${label} It is shown only now:` }), h("p", { class: "token" }, h("code", { class: "secret", text: secret })));
}

async function usersCard(ctx, partner) {
  const users = await get(`/v1/admin/partners/${encodeURIComponent(partner.partnerId)}/users`);
  const msg = h("div");
  const name = h("input", { id: `user-name-${partner.partnerId}`, autocomplete: "off" });
  const pass = h("input", { id: `user-pass-${partner.partnerId}`, type: "password", autocomplete: "new-password" });
  const role = h("select", { id: `user-role-${partner.partnerId}` }, h("option", { value: "partner", text: "partner" }), h("option", { value: "admin", text: "admin" }));
  const form = h("form", { class: "inline", novalidate: true }, field("User name", name), field("Password", pass), field("Role", role),
    h("button", { type: "submit", text: "Add user" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    [name, pass].forEach((i) => setFieldError(i, ""));
    try {
      await post(`/v1/admin/partners/${encodeURIComponent(partner.partnerId)}/users`, { username: name.value.trim(), password: pass.value, role: role.value });
      ctx.navigate("#/admin");
    } catch (err) {
      if (/^password/.test(err.message)) setFieldError(pass, err.message);
      else if (/^username|exists/.test(err.message) || err.status === 409) setFieldError(name, err.message);
      else msg.append(notice("error", err.message));
    }
  });
  return h("div", {},
    users.length
      ? h("ul", { class: "plain" }, users.map((u) => h("li", {}, h("strong", { text: u.username }), ` · ${u.role} `,
        confirmButton("Remove", "Really remove?", async () => {
          try {
            await del(`/v1/admin/partners/${encodeURIComponent(partner.partnerId)}/users/${encodeURIComponent(u.username)}`);
            ctx.navigate("#/admin");
          } catch (err) {
            msg.append(notice("error", err.message));
          }
        }))))
      : h("p", { class: "muted", text: "No users." }),
    form, msg);
}

export async function adminScreen(ctx) {
  const { view } = ctx;
  const name = h("input", { id: "new-partner-name" });
  const email = h("input", { id: "new-partner-email", type: "email" });
  const out = h("div", { id: "new-partner-result" });
  const form = h("form", { class: "inline", id: "new-partner-form", novalidate: true }, field("Name", name), field("Contact email", email),
    h("button", { type: "submit", id: "new-partner-save", text: "Add partner" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    [name, email].forEach((i) => setFieldError(i, ""));
    if (!name.value.trim()) return setFieldError(name, "A name is required.");
    try {
      const body = { name: name.value.trim() };
      if (email.value.trim()) body.email = email.value.trim();
      const p = await post("/v1/admin/partners", body);
      out.append(secretNotice(`Partner ${p.name} created (id ${p.partnerId}); its client secret is for its build scripts.`, p.clientSecret));
      name.value = "";
      email.value = "";
      await loadPartners();
    } catch (err) {
      if (/^email/.test(err.message)) setFieldError(email, err.message);
      else if (/^name/.test(err.message)) setFieldError(name, err.message);
      else out.append(notice("error", err.message));
    }
  });
  const list = h("div", { id: "partners" });
  view.append(h("h1", { text: "Admin" }), h("section", { class: "card" }, h("h2", { text: "Add a partner" }), form, out), list);

  // Reloaded in place after a partner is added, so its secret stays on screen.
  async function loadPartners() {
    const partners = await get("/v1/admin/partners");
    if (!ctx.live()) return;
    const cards = [];
    for (const p of partners) {
      cards.push(await partnerCard(ctx, p));
      if (!ctx.live()) return;
    }
    clear(list).append(...cards);
  }
  await loadPartners();
}

// The DDI tenant name agents are configured with (the partner id until set).
function tenantForm(p) {
  const input = h("input", { id: `ddi-tenant-${p.partnerId}`, value: p.ddiTenant || p.partnerId, autocomplete: "off" });
  const msg = h("div");
  const form = h("form", { class: "inline", novalidate: true }, field("Tenant", input), h("button", { type: "submit", text: "Set tenant" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    setFieldError(input, "");
    try {
      const r = await put(`/v1/admin/partners/${encodeURIComponent(p.partnerId)}/ddiTenant`, { ddiTenant: input.value.trim() });
      msg.append(notice("ok", `DDI tenant set to ${r.ddiTenant}.`));
    } catch (err) {
      setFieldError(input, err.message);
    }
  });
  return h("div", {}, form, msg);
}

async function partnerCard(ctx, p) {
  const secretOut = h("div");
  const card = h("section", { class: "card partner-card", dataset: { partner: p.partnerId } },
    h("h2", { text: p.name }),
    h("p", { class: "muted" }, h("code", { text: p.partnerId }), p.email ? ` · ${p.email}` : ""),
    h("h3", { text: "Users" }));
  card.append(await usersCard(ctx, p));
  card.append(h("h3", { text: "hawkBit DDI tenant" }), tenantForm(p));
  card.append(h("div", { class: "buttons" }, confirmButton("Rotate client secret", "Really rotate? Scripts need the new one.", async () => {
    clear(secretOut);
    try {
      const r = await post(`/v1/admin/partners/${encodeURIComponent(p.partnerId)}/secret`);
      secretOut.append(secretNotice("New client secret.", r.clientSecret));
    } catch (err) {
      secretOut.append(notice("error", err.message));
    }
  })), secretOut);
  return card;
}
