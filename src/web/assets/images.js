// Images: the list (filters by image type, device type and tags, sort, paging), the detail
// view (hashes, size, associations added and removed, delete) and Deploy: choose devices by
// filter (device type, the version they run, part of the id) at any fleet size, push, and
// watch the OTA states: counted for all, live per device for the first ones.

import { ApiError, binaryInfo, del, get, post, pp, put, query } from "./api.js";
import { clear, confirmButton, field, fmtBytes, fmtTime, h, notice, tagChips } from "./dom.js";
import { versionText } from "./versions.js";

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
      record.url ? h("a", { class: "button primary", id: "deploy-button", href: `#/deploy/${type}/${vn}`, text: "Deploy" }) : null,
      record.url ? h("a", { class: "button", id: "rollout-button", href: `#/rollouts?image=${encodeURIComponent(record.id)}`, text: "Start rollout" }) : null),
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

// Devices whose push status is followed one by one; the rest are counted by the summary.
const WATCHED = 50;
// Device ids per push request (the server allows api.push_batch_max, 1,000 by default).
const PUSH_BATCH = 500;

export async function deployScreen(ctx, type, vn) {
  const { view } = ctx;
  const [record, associations] = await Promise.all([
    get(pp("pool", "types", type, "versionNumbers", vn)),
    get(pp("pool", "types", type, "versionNumbers", vn, "associations")),
  ]);
  if (!ctx.live()) return;
  const info = record.url ? await binaryInfo(record.url) : null;
  view.append(h("h1", {}, "Deploy ", h("span", { text: record.name }), ` ${record.version}`),
    h("p", {}, h("a", { href: `#/images/${type}/${vn}`, text: "Back to the image" }), h("span", { class: "muted", text: ` · image type ${type}, version number ${vn}` })));
  if (!associations.length) {
    view.append(notice("info", "Associate the image with a device type first: only devices of an associated device type can receive it."));
    return;
  }
  const dtSel = h("select", { id: "deploy-device-type" }, associations.map((a) => h("option", { value: a.deviceTypeId, text: a.deviceTypeName })));
  const runningSel = h("select", { id: "deploy-running" });
  const search = h("input", { id: "deploy-search", type: "search", placeholder: "part of a device id" });
  const matchBox = h("div", { id: "deploy-match", "aria-live": "polite" });
  const pushBtn = h("button", { type: "button", class: "primary", id: "push-now", text: "Push now" });
  const pushProgress = h("progress", { id: "deploy-progress", max: 100, value: 0, hidden: true });
  const pushText = h("span", { id: "deploy-progress-text", "aria-live": "polite" });
  const msg = h("div", { id: "deploy-message" });
  const summaryBox = h("div", { id: "deploy-summary" });
  const statusBody = h("tbody");
  const status = h("section", { class: "card", id: "deploy-status", hidden: true }, h("h2", { text: "Status" }), summaryBox,
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Device", "State", "Progress", "Updated"].map((c) => h("th", { scope: "col", text: c })))), statusBody)));
  let matched = 0;

  // The device-list query of the current filter.
  function filterQuery() {
    const q = { deviceTypeId: dtSel.value, search: search.value.trim() };
    if (runningSel.value !== "") Object.assign(q, { type, installedVersion: runningSel.value });
    return q;
  }

  // The versions devices of the chosen type run, from the fleet summary.
  async function loadVersions() {
    clear(runningSel).append(h("option", { value: "", text: "Any version (or none reported)" }));
    const fleet = await get(pp("fleet") + query({ deviceTypeId: dtSel.value }));
    const fw = fleet.deviceTypes[0] && fleet.deviceTypes[0].firmwareTypes.find((f) => f.type === type);
    for (const v of (fw ? fw.versions : [])) {
      runningSel.append(h("option", { value: v.versionNumber, text: `${versionText(v)} · ${v.devices} device(s)` }));
    }
  }

  let counting = 0;
  async function countMatches() {
    const mine = ++counting;
    const page = await get(pp("devices") + query({ ...filterQuery(), size: 10 }));
    if (mine !== counting || !ctx.live()) return;
    matched = page.totalElements;
    clear(matchBox).append(h("p", { id: "deploy-count", dataset: { count: String(matched) } },
      h("strong", { text: `${matched} device(s)` }), " match."),
    page.content.length
      ? h("p", { class: "muted", id: "deploy-preview" },
        page.content.map((d, i) => [i ? ", " : "", h("span", { class: "nowrap", text: d.deviceId })]),
        matched > page.content.length ? ` and ${matched - page.content.length} more` : "")
      : null);
    pushBtn.textContent = matched ? `Push to ${matched} device(s)` : "Push now";
    pushBtn.disabled = !matched;
  }
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(countMatches, 250);
  });
  dtSel.addEventListener("change", async () => {
    await loadVersions();
    await countMatches();
  });
  runningSel.addEventListener("change", countMatches);

  const rows = new Map();
  let polling = false;
  function statusRow(id) {
    if (!rows.has(id)) {
      const state = h("td", { class: "state", text: "pending" });
      const bar = h("progress", { max: 100, value: 0 });
      const when = h("td", { class: "when", text: "" });
      const tr = h("tr", { dataset: { device: id } }, h("td", { text: id }), state, h("td", {}, bar), when);
      // By id, whatever order the parallel pushes finished in.
      const after = [...statusBody.children].find((r) => r.dataset.device > id);
      statusBody.insertBefore(tr, after || null);
      rows.set(id, { tr, state, bar, when, done: false });
    }
    const row = rows.get(id);
    row.done = false;
    return row;
  }

  // The counts of this image's OTA states among the device type's devices.
  async function showSummary() {
    const fleet = await get(pp("fleet") + query({ deviceTypeId: dtSel.value }));
    const fw = fleet.deviceTypes[0] && fleet.deviceTypes[0].firmwareTypes.find((f) => f.type === type);
    const states = fw ? fw.otaStates.filter((x) => x.versionNumber === record.versionNumber) : [];
    const onIt = fw ? fw.versions.filter((v) => Number(v.versionNumber) >= Number(record.versionNumber)).reduce((n, v) => n + v.devices, 0) : 0;
    clear(summaryBox).append(h("ul", { class: "chips", id: "deploy-states" },
      h("li", { class: "chip state-confirmed", dataset: { state: "running" } }, h("strong", { text: String(onIt) }), ` run ${record.version} or newer`),
      states.map((x) => h("li", { class: `chip state-${x.state}`, dataset: { state: x.state } }, h("strong", { text: String(x.devices) }), ` ${x.state}`))));
  }

  // The counts keep refreshing while the screen is shown (the summary is cached on the
  // server for a moment, so this is cheap); the per-device rows stop when all are done.
  let summarizing = false;
  async function summarize() {
    summarizing = ctx.live();
    if (!summarizing) return;
    try {
      await showSummary();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
    }
    setTimeout(summarize, 2000);
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

  // Every device of the filter: a page of the device list at a time, each page pushed in
  // requests of PUSH_BATCH ids (one transaction each on the server).
  async function pushAll() {
    const target = matched;
    let done = 0;
    let ok = 0;
    const refused = new Map();
    pushProgress.hidden = false;
    const q = filterQuery();
    for (let page = 0; ctx.live(); page++) {
      const list = await get(pp("devices") + query({ ...q, page, size: 1000 }));
      const ids = list.content.map((d) => d.deviceId);
      for (let i = 0; i < ids.length; i += PUSH_BATCH) {
        const batch = ids.slice(i, i + PUSH_BATCH);
        const r = await put(pp("deviceTypes", q.deviceTypeId, "firmwareImages", record.id, "push"), { values: batch });
        ok += r.pushed.length;
        for (const id of r.pushed) if (rows.size < WATCHED) statusRow(id);
        for (const x of r.refused) {
          const why = x.trace === "would_downgrade" ? "already run this version or a newer one" : x.message;
          refused.set(why, (refused.get(why) || 0) + 1);
        }
        done += batch.length;
        pushProgress.value = target ? Math.floor((done / target) * 100) : 100;
        pushText.textContent = `Pushed ${done} of ${target}`;
      }
      if (page + 1 >= list.totalPages) break;
    }
    return { ok, refused };
  }

  pushBtn.addEventListener("click", async () => {
    clear(msg);
    if (!matched) {
      msg.append(notice("error", "No device matches the filter."));
      return;
    }
    pushBtn.disabled = true;
    try {
      const { ok, refused } = await pushAll();
      for (const [why, n] of refused) msg.append(notice("info", `Not pushed to ${n} device(s): ${why}.`));
      if (ok) {
        msg.append(notice("ok", `Pushed to ${ok} device(s).`));
        status.hidden = false;
        status.scrollIntoView({ block: "start" });
        if (!polling) poll();
        if (!summarizing) summarize();
      }
    } catch (err) {
      msg.append(notice("error", err.message));
    } finally {
      pushBtn.disabled = false;
    }
  });

  view.append(h("section", { class: "card" }, h("h2", { text: "Target devices" }),
    h("p", { class: "muted", text: "Every device that matches the filter receives the push; devices already on this version or a newer one are left alone." }),
    h("div", { class: "filters" }, field("Device type", dtSel), field("Currently running", runningSel), field("Search by id", search)),
    matchBox, msg, h("div", { class: "buttons progress-row" }, pushBtn, pushProgress, pushText)), status);
  await loadVersions();
  await countMatches();
}
