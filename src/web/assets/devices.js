// Devices: the list (search by id, filter by device type and by installed version, given
// as a number or a version string; an OTA-state column), registration (the token is shown
// once, with a copy button), device types (list and add), and a device's detail: installed
// version per image type, last seen, pending pushes and OTA history, every version number
// with its record's version string and name.

import { del, get, post, pp, query } from "./api.js";
import { clear, confirmButton, field, fmtTime, h, notice, setFieldError } from "./dom.js";
import { resultText } from "./images.js";
import { versionText } from "./versions.js";

const PAGE_SIZE = 50;

function deviceTypesCard(ctx, deviceTypes) {
  const name = h("input", { id: "new-dt-name", maxlength: 200 });
  const description = h("input", { id: "new-dt-description", maxlength: 1000 });
  const msg = h("div");
  const form = h("form", { class: "inline", id: "new-dt-form", novalidate: true }, field("Name", name), field("Description", description),
    h("button", { type: "submit", id: "new-dt-save", text: "Add device type" }), msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    setFieldError(name, "");
    if (!name.value.trim()) return setFieldError(name, "A name is required.");
    try {
      const body = { name: name.value.trim() };
      if (description.value.trim()) body.description = description.value.trim();
      await post(pp("deviceTypes"), body);
      ctx.navigate("#/devices");
    } catch (err) {
      if (/^name/.test(err.message)) setFieldError(name, err.message);
      else msg.append(notice("error", err.message));
    }
  });
  return h("section", { class: "card", id: "device-types" }, h("h2", { text: "Device types" }),
    deviceTypes.length
      ? h("ul", { class: "plain", id: "device-type-list" }, deviceTypes.map((d) => h("li", { dataset: { id: d.id } },
        h("strong", { text: d.name }), d.description ? h("span", { class: "muted", text: ` · ${d.description}` }) : null,
        h("code", { class: "small", text: ` ${d.id}` }))))
      : h("p", { class: "muted", text: "No device types yet." }),
    form);
}

function registerCard(deviceTypes, onRegistered) {
  const id = h("input", { id: "register-id", maxlength: 64, pattern: "[A-Za-z0-9._-]{1,64}" });
  const dt = h("select", { id: "register-type" }, deviceTypes.map((d) => h("option", { value: d.id, text: d.name })));
  const out = h("div", { id: "register-result", "aria-live": "polite" });
  const form = h("form", { class: "inline", id: "register-form", novalidate: true }, field("Device id", id, "1-64 of A-Z a-z 0-9 . _ -"), field("Device type", dt),
    h("button", { type: "submit", id: "register-save", text: "Register", disabled: !deviceTypes.length }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    setFieldError(id, "");
    if (!id.value.trim()) return setFieldError(id, "A device id is required.");
    try {
      const r = await post(pp("devices"), { deviceId: id.value.trim(), deviceTypeId: dt.value });
      const token = h("code", { id: "register-token", text: r.token });
      const copied = h("span", { class: "muted", "aria-live": "polite" });
      out.append(h("div", { class: "notice ok" },
        h("p", {}, "Registered ", h("strong", { text: r.deviceId }), ". Its token is shown only now; give it to the device:"),
        h("p", { class: "token" }, token, " ",
          h("button", { type: "button", id: "register-copy", text: "Copy", onclick: async () => {
            try {
              await navigator.clipboard.writeText(r.token);
              copied.textContent = "Copied.";
            } catch {
              // Clipboard refused (permissions): select the text for a manual copy.
              getSelection().selectAllChildren(token);
              copied.textContent = "Press Ctrl+C to copy.";
            }
          } }), " ", copied)));
      id.value = "";
      await onRegistered();
    } catch (err) {
      if (/device ?id|deviceId|exists/i.test(err.message) || err.status === 409) setFieldError(id, err.message);
      else out.append(notice("error", err.message));
    }
  });
  return h("section", { class: "card", id: "register" }, h("h2", { text: "Register a device" }), form, out);
}

// The current OTA state of each image type: "downloading 1.4.2 (type 150)".
function otaCell(d) {
  const list = d.ota || [];
  if (!list.length) return h("td", { class: "muted", text: "—" });
  return h("td", {}, list.map((o) => h("div", { class: "ota-state", dataset: { state: o.state } },
    h("span", { class: "state", text: o.state }), ` ${o.version || `#${o.versionNumber}`}`,
    h("span", { class: "small", text: ` type ${o.type}` }))));
}

// hawkBit DDI (Linux update agents): the partner's tenant name and its gateway token,
// which is shown once when made; docs/ddi.md.
async function ddiCard(ctx) {
  const s = await get(pp("ddi"));
  const out = h("div", { id: "ddi-token-result" });
  const state = h("dd", { id: "ddi-gateway", text: s.gatewayToken ? `yes, since ${fmtTime(s.gatewayTokenCreatedTimestamp)}` : "none" });
  const make = h("button", { type: "button", id: "ddi-token-make", text: s.gatewayToken ? "Rotate gateway token" : "Create gateway token" });
  make.addEventListener("click", async () => {
    clear(out);
    try {
      const r = await post(pp("ddi", "gatewayToken"));
      out.append(h("div", { class: "notice ok" }, h("p", { text: "Gateway token. It is shown only now:" }),
        h("p", { class: "token" }, h("code", { class: "secret", id: "ddi-token", text: r.gatewayToken }))));
      state.textContent = "yes, just made";
      make.textContent = "Rotate gateway token";
    } catch (err) {
      out.append(notice("error", err.message));
    }
  });
  const withdraw = confirmButton("Withdraw gateway token", "Really withdraw? Agents using it stop updating.", async () => {
    clear(out);
    try {
      await del(pp("ddi", "gatewayToken"));
      ctx.navigate("#/devices");
    } catch (err) {
      out.append(notice("error", err.message));
    }
  });
  return h("section", { class: "card", id: "ddi-card" }, h("h2", { text: "hawkBit DDI agents" }),
    h("dl", { class: "facts" }, h("dt", { text: "Tenant" }), h("dd", {}, h("code", { id: "ddi-tenant", text: s.ddiTenant })),
      h("dt", { text: "Gateway token" }), state),
    h("div", { class: "buttons" }, make, s.gatewayToken ? withdraw : null), out);
}

export async function devicesScreen(ctx) {
  const { view, params } = ctx;
  const [deviceTypes, types] = await Promise.all([get(pp("deviceTypes")), get(pp("types"))]);
  if (!ctx.live()) return;
  const dtName = new Map(deviceTypes.map((d) => [d.id, d.name]));
  const dt = params.get("deviceType") || "";
  const type = params.get("type") || "";
  const installed = params.get("installed") || params.get("installedVersion") || "";
  const search = params.get("search") || "";
  const page = Math.max(0, Number(params.get("page") || 0));
  const searchIn = h("input", { id: "devices-search", type: "search", value: search, placeholder: "part of a device id" });
  const dtSel = h("select", { id: "devices-filter-type" }, h("option", { value: "", text: "Any device type" }),
    deviceTypes.map((d) => h("option", { value: d.id, text: d.name, selected: d.id === dt })));
  const typeSel = h("select", { id: "devices-filter-fwtype" }, h("option", { value: "", text: "—" }),
    types.sort((a, b) => a.type - b.type).map((t) => h("option", { value: t.type, text: `${t.type} · ${t.name}`, selected: String(t.type) === type })));
  const vnIn = h("input", { id: "devices-filter-version", value: installed, placeholder: "1.4.2 or 7" });
  const go = (p) => ctx.navigate(`#/devices${query({ search: searchIn.value.trim(), deviceType: dtSel.value, type: typeSel.value, installed: vnIn.value.trim(), page: p || "" })}`);
  const filters = h("form", { class: "filters", id: "device-filters" }, field("Search by id", searchIn), field("Device type", dtSel), field("Image type", typeSel),
    field("Installed version or number", vnIn), h("button", { type: "submit", text: "Apply" }));
  filters.addEventListener("submit", (e) => { e.preventDefault(); go(0); });
  view.append(h("h1", { text: "Devices" }), filters);
  const msg = h("div");
  view.append(msg);
  if ((type === "") !== (installed === "")) {
    msg.append(notice("info", "Choose both an image type and an installed version to filter by version."));
  }
  // Digits only: a version number; anything else: a version string.
  const byNumber = /^\d+$/.test(installed);
  const filterQuery = type !== "" && installed !== ""
    ? (byNumber ? { type, installedVersion: installed } : { type, installedVersionString: installed })
    : {};
  const listBox = h("div", { id: "devices-list" });
  view.append(listBox, registerCard(deviceTypes, () => loadList()), deviceTypesCard(ctx, deviceTypes), await ddiCard(ctx));

  // Reloaded after a registration too, so the new device shows without losing its token.
  async function loadList() {
    const result = await get(pp("devices") + query({ deviceTypeId: dt, search, ...filterQuery, page, size: PAGE_SIZE }));
    if (!ctx.live()) return;
    clear(listBox);
    if (!result.content.length) {
      listBox.append(h("p", { class: "muted", id: "devices-empty", text: "No devices match." }));
      return;
    }
    listBox.append(h("div", { class: "table-wrap" }, h("table", { id: "devices-table" },
      h("thead", {}, h("tr", {}, ["Device", "Device type", "Installed", "OTA state", "Last seen"].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, result.content.map((d) => h("tr", { dataset: { device: d.deviceId } },
        h("td", { class: "nowrap" }, h("a", { href: `#/devices/${encodeURIComponent(d.deviceId)}`, text: d.deviceId })),
        h("td", { text: dtName.get(d.deviceTypeId) || d.deviceTypeId }),
        h("td", { class: "installed" }, (d.installed || []).length
          ? d.installed.map((i) => h("div", {}, versionText(i), h("span", { class: "small", text: ` type ${i.type}` })))
          : "—"),
        otaCell(d),
        h("td", { text: fmtTime(d.lastSeenTimestamp) })))))),
    h("nav", { class: "pager", "aria-label": "Pages" },
      h("button", { type: "button", text: "Previous", disabled: page === 0, onclick: () => go(page - 1) }),
      h("span", { text: `Page ${page + 1} of ${Math.max(1, result.totalPages)} · ${result.totalElements} devices` }),
      h("button", { type: "button", text: "Next", disabled: page + 1 >= result.totalPages, onclick: () => go(page + 1) })));
  }
  await loadList();
}

export async function deviceScreen(ctx, id) {
  const { view } = ctx;
  const [d, deviceTypes, types] = await Promise.all([get(pp("devices", id)), get(pp("deviceTypes")), get(pp("types"))]);
  if (!ctx.live()) return;
  const typeName = new Map(types.map((t) => [t.type, t.name]));
  const dtName = new Map(deviceTypes.map((x) => [x.id, x.name]));
  const msg = h("div");
  view.append(h("h1", { id: "device-id", text: d.deviceId }), msg,
    h("section", { class: "card" }, h("dl", { class: "facts" },
      h("dt", { text: "Device type" }), h("dd", { text: dtName.get(d.deviceTypeId) || d.deviceTypeId }),
      h("dt", { text: "Registered" }), h("dd", { text: fmtTime(d.createdTimestamp) }),
      h("dt", { text: "Last seen" }), h("dd", { id: "device-last-seen", text: fmtTime(d.lastSeenTimestamp) }),
      h("dt", { text: "Attributes" }), h("dd", { id: "device-attributes",
        text: Object.entries(d.attributes || {}).map(([k, v]) => `${k}=${v}`).join(" ") || "—" }))),
    h("section", { class: "card" }, h("h2", { text: "Installed versions" }),
      (d.installed || []).length
        ? h("table", { id: "device-installed" }, h("thead", {}, h("tr", {}, ["Image type", "Version"].map((c) => h("th", { scope: "col", text: c })))),
          h("tbody", {}, d.installed.map((i) => h("tr", {}, h("td", { text: `${i.type} · ${typeName.get(i.type) || ""}` }), h("td", { text: versionText(i) })))))
        : h("p", { class: "muted", text: "The device has not reported yet." }),
      (d.pushes || []).length
        ? h("p", { id: "device-pushes", text: `Pending pushes: ${d.pushes.map((p) => `type ${p.type} → ${p.versionNumber ? versionText(p) : `image ${p.firmwareImageId}`}`).join(", ")}` })
        : null),
    h("section", { class: "card", id: "device-ota" }, h("h2", { text: "OTA history" }),
      (d.ota || []).length
        ? d.ota.map((o) => h("div", { class: "ota" },
          h("h3", { text: `Type ${o.type} · ${typeName.get(o.type) || ""}` }),
          h("table", {}, h("thead", {}, h("tr", {}, ["When", "Version", "State", "Bytes", "Result"].map((c) => h("th", { scope: "col", text: c })))),
            h("tbody", {}, [o, ...[...(o.history || [])].reverse()].map((e, i) => h("tr", { class: i === 0 ? "current" : "" },
              h("td", { text: fmtTime(e.timestamp) }), h("td", { text: versionText(e) }), h("td", { class: "state", text: e.state }),
              h("td", { text: String(e.bytesDone) }), h("td", { text: e.state === "failed" || e.state === "deferred" ? resultText(e.result) : "" }))))),
          o.reason ? h("p", { class: "reason", text: `Reason: ${o.reason}` }) : null))
        : h("p", { class: "muted", text: "No updates yet." })),
    h("section", { class: "card danger-zone" }, h("h2", { text: "Remove" }),
      confirmButton("Remove device", "Really remove?", async () => {
        try {
          await del(pp("devices", id));
          ctx.navigate("#/devices");
        } catch (err) {
          msg.append(notice("error", err.message));
        }
      })));
}
