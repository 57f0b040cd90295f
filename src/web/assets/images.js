// Images: the list (filters by image type, device type and tags, sort, paging), the detail
// view (hashes, size, associations added and removed, delete) and Deploy: choose devices,
// push, and watch each device's OTA state update live.

import { ApiError, binaryInfo, del, get, post, pp, put, query } from "./api.js";
import { clear, confirmButton, field, fmtBytes, fmtTime, h, notice, tagChips } from "./dom.js";

const PAGE_SIZE = 20;
const SORTS = [
  ["updatedTimestamp,desc", "Recently updated"],
  ["createdTimestamp,desc", "Recently created"],
  ["name,asc", "Name"],
  ["versionNumber,desc", "Version number (high first)"],
  ["versionNumber,asc", "Version number (low first)"],
];

export async function imagesScreen(ctx) {
  const { view, params } = ctx;
  const [types, deviceTypes] = await Promise.all([get(pp("types")), get(pp("deviceTypes"))]);
  if (!ctx.live()) return;
  const typeName = new Map(types.map((t) => [t.type, t.name]));
  const type = params.get("type") || "";
  const dt = params.get("deviceType") || "";
  const tags = params.get("tags") || "";
  const sort = params.get("sort") || SORTS[0][0];
  const page = Math.max(0, Number(params.get("page") || 0));

  const typeSel = h("select", { id: "filter-type" }, h("option", { value: "", text: "All image types" }),
    types.filter((t) => t.type !== 4).sort((a, b) => a.type - b.type).map((t) => h("option", { value: t.type, text: `${t.type} · ${t.name}`, selected: String(t.type) === type })));
  const dtSel = h("select", { id: "filter-device-type" }, h("option", { value: "", text: "Any device type" }),
    deviceTypes.map((d) => h("option", { value: d.id, text: d.name, selected: d.id === dt })));
  const tagsIn = h("input", { id: "filter-tags", type: "search", value: tags, placeholder: "tags, comma-separated" });
  const sortSel = h("select", { id: "filter-sort" }, SORTS.map(([v, l]) => h("option", { value: v, text: l, selected: v === sort })));
  const go = (p) => {
    const q = query({ type: typeSel.value, deviceType: dtSel.value, tags: tagsIn.value.trim(), sort: sortSel.value, page: p || "" });
    ctx.navigate(`#/images${q}`);
  };
  const filters = h("form", { class: "filters", id: "image-filters" },
    field("Image type", typeSel), field("Device type", dtSel), field("Tags", tagsIn), field("Sort", sortSel),
    h("button", { type: "submit", text: "Apply" }));
  filters.addEventListener("submit", (e) => { e.preventDefault(); go(0); });
  [typeSel, dtSel, sortSel].forEach((s) => s.addEventListener("change", () => go(0)));

  view.append(h("div", { class: "title-row" }, h("h1", { text: "Images" }),
    h("a", { class: "button primary", id: "upload-button", href: `#/upload${query({ type })}`, text: "Upload an image" })), filters);

  const path = dt
    ? pp("deviceTypes", dt, "firmwareImages", ...(type ? ["types", type] : []))
    : pp("pool", ...(type ? ["types", type] : []));
  const result = await get(path + query({ page, size: PAGE_SIZE, sort, tags: tags.split(",").map((t) => t.trim()).filter(Boolean).join(",") }));
  if (!ctx.live()) return;
  if (!result.content.length) {
    view.append(h("p", { class: "muted", id: "images-empty", text: "No images match." }));
    return;
  }
  const table = h("table", { id: "images-table" },
    h("thead", {}, h("tr", {}, ["Name", "Version", "Image type", "No.", "Tags", "Updated"].map((c) => h("th", { scope: "col", text: c })))),
    h("tbody", {}, result.content.map((r) => h("tr", { dataset: { versionNumber: r.versionNumber, type: String(r.type) } },
      h("td", {}, h("a", { href: `#/images/${r.type}/${r.versionNumber}`, class: "image-link", text: r.name })),
      h("td", { text: r.version }),
      h("td", { text: typeName.get(r.type) || String(r.type) }),
      h("td", { text: r.versionNumber }),
      h("td", { class: "image-tags" }, tagChips(r.tags)),
      h("td", { text: fmtTime(r.updatedTimestamp) })))));
  view.append(h("div", { class: "table-wrap" }, table),
    h("nav", { class: "pager", "aria-label": "Pages" },
      h("button", { type: "button", id: "page-prev", text: "Previous", disabled: page === 0, onclick: () => go(page - 1) }),
      h("span", { id: "page-info", text: `Page ${page + 1} of ${Math.max(1, result.totalPages)} · ${result.totalElements} images` }),
      h("button", { type: "button", id: "page-next", text: "Next", disabled: page + 1 >= result.totalPages, onclick: () => go(page + 1) })));
}

function sha256Of(url) {
  const m = /\/binaries\/([0-9a-f]{64})$/.exec(url || "");
  return m ? m[1] : "";
}

function dl(rows) {
  return h("dl", { class: "facts" }, rows.filter(Boolean).map(([k, v, id]) => [h("dt", { text: k }), h("dd", { id, class: typeof v === "string" ? "mono-ok" : "" }, v)]));
}

export async function imageScreen(ctx, type, vn) {
  const { view } = ctx;
  const [record, associations, deviceTypes, types] = await Promise.all([
    get(pp("pool", "types", type, "versionNumbers", vn)),
    get(pp("pool", "types", type, "versionNumbers", vn, "associations")),
    get(pp("deviceTypes")),
    get(pp("types")),
  ]);
  const fwType = types.find((t) => t.type === type);
  if (!ctx.live()) return;
  const info = record.url ? await binaryInfo(record.url) : null;
  if (!ctx.live()) return;
  const reload = () => ctx.navigate(`#/images/${type}/${vn}`);
  const msg = h("div", { id: "image-message" });
  view.append(
    h("div", { class: "title-row" }, h("h1", { id: "image-name", text: record.name }),
      record.url ? h("a", { class: "button primary", id: "deploy-button", href: `#/deploy/${type}/${vn}`, text: "Deploy" }) : null),
    msg,
    h("section", { class: "card" }, dl([
      ["Version", record.version, "image-version"],
      ["Image type", fwType ? `${record.type} · ${fwType.name}` : String(record.type)],
      ["Version number", record.versionNumber, "image-vn"],
      record.description ? ["Description", record.description, "image-description"] : null,
      ["Tags", tagChips(record.tags), "image-tags"],
      ["Size", info ? fmtBytes(info.size) : "no binary", "image-size"],
      ["SHA-256", h("code", { text: sha256Of(record.url) || "—" }), "image-sha256"],
      ["BLAKE3", h("code", { text: info ? info.blake3 : "—" }), "image-blake3"],
      record.binary ? ["Filename", record.binary.filename, "image-filename"] : null,
      record.binary ? ["SHA-1", h("code", { text: record.binary.sha1 }), "image-sha1"] : null,
      record.binary ? ["MD5", h("code", { text: record.binary.md5 }), "image-md5"] : null,
      ["Created", fmtTime(record.createdTimestamp)],
      ["Updated", fmtTime(record.updatedTimestamp)],
    ])));

  const assocIds = new Set(associations.map((a) => a.deviceTypeId));
  const addSel = h("select", { id: "associate-select" },
    deviceTypes.filter((d) => !assocIds.has(d.id)).map((d) => h("option", { value: d.id, text: d.name })));
  const addForm = addSel.options.length
    ? h("form", { class: "inline", id: "associate-form" }, field("Device type", addSel),
      h("button", { type: "submit", id: "associate-add", text: "Associate" }))
    : h("p", { class: "muted", text: deviceTypes.length ? "Every device type is associated." : "There are no device types yet (Devices screen)." });
  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    try {
      await post(pp("deviceTypes", addSel.value, "firmwareImages"), record);
      reload();
    } catch (err) {
      msg.append(notice("error", err.message));
    }
  });
  view.append(h("section", { class: "card", id: "associations" }, h("h2", { text: "Device types that may receive it" }),
    associations.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["Device type", "Partner", ""].map((c) => h("th", { scope: "col", text: c })))),
        h("tbody", {}, associations.map((a) => h("tr", { dataset: { deviceType: a.deviceTypeId } },
          h("td", { class: "assoc-name", text: a.deviceTypeName }),
          h("td", { text: a.name }),
          h("td", {}, confirmButton("Remove", "Really remove?", async () => {
            clear(msg);
            try {
              await del(pp("deviceTypes", a.deviceTypeId, "firmwareImages", "types", type, "versionNumbers", vn));
              reload();
            } catch (err) {
              msg.append(notice("error", err.message));
            }
          }))))))
      : h("p", { class: "muted", id: "no-associations", text: "Not associated with any device type." }),
    addForm));

  view.append(h("section", { class: "card danger-zone" }, h("h2", { text: "Delete" }),
    h("p", { class: "muted", text: "An image can be deleted once no device type is associated with it." }),
    confirmButton("Delete image", "Really delete?", async () => {
      clear(msg);
      try {
        await del(pp("pool", "types", type, "versionNumbers", vn));
        ctx.navigate(`#/images?type=${type}`);
      } catch (err) {
        msg.append(notice("error", err.message));
      }
    }, { id: "delete-image" })));
}

// Why an update failed: the LwM2M firmware-update result codes devices report (OCP/1).
const RESULTS = {
  2: "not enough flash",
  3: "out of RAM",
  4: "connection lost during download",
  5: "integrity check failure",
  6: "unsupported package type",
  7: "invalid URI",
  8: "update failed",
  9: "unsupported protocol",
  10: "cancelled",
  11: "deferred by the device",
};

export function resultText(code) {
  return RESULTS[code] ? `${RESULTS[code]} (${code})` : `result ${code}`;
}

// The line shown for a device's OTA state of one image.
export function describeOta(ota, size) {
  if (!ota) return { state: "pending", text: "pending: waiting for the device" };
  const s = ota.state;
  if (s === "downloading") {
    const pct = size ? Math.min(100, Math.floor((ota.bytesDone / size) * 100)) : null;
    return { state: s, text: pct === null ? "downloading" : `downloading ${pct}%`, pct };
  }
  if (s === "failed") return { state: s, text: `failed: ${resultText(ota.result)}` };
  if (s === "deferred") return { state: s, text: "deferred by the device" };
  return { state: s, text: s };
}

export async function deployScreen(ctx, type, vn) {
  const { view } = ctx;
  const [record, associations] = await Promise.all([
    get(pp("pool", "types", type, "versionNumbers", vn)),
    get(pp("pool", "types", type, "versionNumbers", vn, "associations")),
  ]);
  if (!ctx.live()) return;
  const info = record.url ? await binaryInfo(record.url) : null;
  view.append(h("h1", {}, "Deploy ", h("span", { text: record.name }), ` ${record.version}`),
    h("p", {}, h("a", { href: `#/images/${type}/${vn}`, text: "Back to the image" })));
  if (!associations.length) {
    view.append(notice("info", "Associate the image with a device type first: only devices of an associated device type can receive it."));
    return;
  }
  const dtSel = h("select", { id: "deploy-device-type" }, associations.map((a) => h("option", { value: a.deviceTypeId, text: a.deviceTypeName })));
  const search = h("input", { id: "deploy-search", type: "search", placeholder: "device id contains…" });
  const list = h("div", { id: "deploy-devices", class: "checks" });
  const pushBtn = h("button", { type: "button", class: "primary", id: "push-now", text: "Push now" });
  const msg = h("div", { id: "deploy-message" });
  const statusBody = h("tbody");
  const status = h("section", { class: "card", id: "deploy-status", hidden: true }, h("h2", { text: "Status" }),
    h("table", {}, h("thead", {}, h("tr", {}, ["Device", "State", "Progress", "Updated"].map((c) => h("th", { scope: "col", text: c })))), statusBody));
  let devices = [];

  async function loadDevices() {
    const page = await get(pp("devices") + query({ deviceTypeId: dtSel.value, size: 1000 }));
    devices = page.content;
    showDevices();
  }
  function showDevices() {
    clear(list);
    const needle = search.value.trim().toLowerCase();
    const shown = devices.filter((d) => d.deviceId.toLowerCase().includes(needle));
    if (!shown.length) list.append(h("p", { class: "muted", text: "No devices." }));
    for (const d of shown) {
      const box = h("input", { type: "checkbox", value: d.deviceId, id: `deploy-dev-${d.deviceId}`, class: "deploy-device" });
      list.append(h("label", { class: "check", for: box.id }, box, " ", d.deviceId));
    }
  }
  dtSel.addEventListener("change", loadDevices);
  search.addEventListener("input", showDevices);

  const rows = new Map();
  let polling = false;
  function statusRow(id) {
    if (!rows.has(id)) {
      const state = h("td", { class: "state", text: "pending" });
      const bar = h("progress", { max: 100, value: 0 });
      const when = h("td", { class: "when", text: "" });
      const tr = h("tr", { dataset: { device: id } }, h("td", { text: id }), state, h("td", {}, bar), when);
      statusBody.append(tr);
      rows.set(id, { tr, state, bar, when, done: false });
    }
    const row = rows.get(id);
    row.done = false;
    return row;
  }

  async function poll() {
    polling = ctx.live();
    if (!polling) return;
    const pending = [...rows.entries()].filter(([, r]) => !r.done);
    await Promise.all(pending.map(async ([id, r]) => {
      try {
        const d = await get(pp("devices", id));
        const ota = (d.ota || []).find((o) => o.type === type && o.versionNumber === record.versionNumber);
        const shown = describeOta(ota, info && info.size);
        r.state.textContent = shown.text;
        r.tr.dataset.state = shown.state;
        r.bar.value = shown.state === "confirmed" || shown.state === "installed" || shown.state === "downloaded" ? 100 : shown.pct || 0;
        r.when.textContent = ota ? fmtTime(ota.timestamp) : "";
        r.done = shown.state === "confirmed" || shown.state === "failed";
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return;
        r.state.textContent = `unknown: ${err.message}`;
      }
    }));
    polling = ctx.live() && [...rows.values()].some((r) => !r.done);
    if (polling) setTimeout(poll, 1000);
  }

  pushBtn.addEventListener("click", async () => {
    clear(msg);
    const chosen = [...list.querySelectorAll("input.deploy-device:checked")].map((b) => b.value);
    if (!chosen.length) {
      msg.append(notice("error", "Choose at least one device."));
      return;
    }
    pushBtn.disabled = true;
    const failed = [];
    for (const id of chosen) {
      try {
        await put(pp("deviceTypes", dtSel.value, "firmwareImages", record.id, "push"), { value: id });
        statusRow(id);
      } catch (err) {
        failed.push(`${id}: ${err.message}`);
      }
    }
    pushBtn.disabled = false;
    if (failed.length) msg.append(notice("error", `Not pushed to ${failed.join("; ")}`));
    const ok = chosen.length - failed.length;
    if (ok) {
      msg.append(notice("ok", `Pushed to ${ok} device(s).`));
      status.hidden = false;
      status.scrollIntoView({ block: "start" });
      if (!polling) poll();
    }
  });

  view.append(h("section", { class: "card" }, h("h2", { text: "Target devices" }),
    h("div", { class: "filters" }, field("Device type", dtSel), field("Search", search)),
    h("div", { class: "buttons" },
      h("button", { type: "button", id: "deploy-select-all", text: "Select all shown", onclick: () => list.querySelectorAll("input.deploy-device").forEach((b) => { b.checked = true; }) })),
    list, msg, h("div", { class: "buttons" }, pushBtn)), status);
  await loadDevices();
}
