// The fleet dashboard, the landing screen after sign-in: per device type, how many devices
// there are and were seen in the last hour and day, per image type the version
// distribution as an SVG bar chart (drawn here, no library), the OTA states and the recent
// failures with their reasons. Everything comes from one call, `GET …/fleet`.

import { get, pp, query } from "./api.js";
import { clear, fmtTime, h, notice } from "./dom.js";
import { versionShort, versionText } from "./versions.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const REFRESH_MS = 10000;

// An SVG element with attributes (textContent through `text`).
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

// Horizontal bars, one per version, highest version number first, and a grey one for the
// devices that have not reported the type; shares are of all the device type's devices.
// The chart's text also stands in a <title> and in each bar's label, so it reads without
// the picture.
export function versionChart(fw, typeName, devices) {
  const silent = Math.max(0, devices - fw.reporting);
  const rows = [...(fw.versions || []), ...(silent ? [{ devices: silent, silent: true }] : [])];
  const total = Math.max(devices, 1);
  const max = Math.max(1, ...rows.map((v) => v.devices));
  const rowH = 28;
  const labelW = 230;
  const barW = 420;
  const width = labelW + barW + 90;
  const height = Math.max(1, rows.length) * rowH + 8;
  const title = `Installed versions of image type ${fw.type}${typeName ? ` (${typeName})` : ""}: ${rows.map((v) => `${v.silent ? "not reported" : versionText(v)} on ${v.devices}`).join(", ") || "none reported"}`;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title, width: "100%", preserveAspectRatio: "xMinYMin meet" },
    svg("title", { text: title }));
  rows.forEach((v, i) => {
    const y = 4 + i * rowH;
    const w = Math.max(2, Math.round((v.devices / max) * barW));
    const label = v.silent ? "not reported yet"
      : v.version ? `${v.version}${v.name ? ` · ${v.name}` : ""} #${v.versionNumber}` : `#${v.versionNumber} · no image record`;
    const pct = Math.round((v.devices / total) * 100);
    chart.append(
      svg("text", { x: labelW - 8, y: y + 18, "text-anchor": "end", class: "chart-label", text: label.length > 34 ? `${label.slice(0, 33)}…` : label }),
      svg("rect", { x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 3, class: v.silent ? "bar silent" : i === 0 ? "bar newest" : "bar" }),
      svg("text", { x: labelW + w + 6, y: y + 18, class: "chart-count", text: `${v.devices} (${pct === 0 && v.devices ? "<1" : pct}%)` }));
  });
  if (!rows.length) chart.append(svg("text", { x: 8, y: 20, class: "chart-label", text: "No device reports this type yet." }));
  return chart;
}

function stateChips(fw) {
  const states = fw.otaStates || [];
  if (!states.length) return h("p", { class: "muted", text: "No updates under way or done." });
  return h("ul", { class: "chips" }, states.map((s) => h("li", { class: `chip state-${s.state}`, dataset: { state: s.state, versionNumber: s.versionNumber } },
    h("strong", { text: String(s.devices) }), ` ${s.state} · ${versionShort(s)}`)));
}

function failuresTable(d) {
  if (!d.failures.length) return null;
  return h("div", { class: "table-wrap" },
    h("h3", { text: d.failuresTotal > d.failures.length ? `Recent failures (newest ${d.failures.length} of ${d.failuresTotal})` : `Recent failures (${d.failuresTotal})` }),
    h("table", { class: "failures" },
      h("thead", {}, h("tr", {}, ["Device", "Image type", "Version", "Reason", "When"].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, d.failures.map((f) => h("tr", { dataset: { device: f.deviceId } },
        h("td", { class: "nowrap" }, h("a", { href: `#/devices/${encodeURIComponent(f.deviceId)}`, text: f.deviceId })),
        h("td", { text: String(f.type) }),
        h("td", { text: versionText(f) }),
        h("td", { class: "reason", text: `${f.reason} (${f.result})` }),
        h("td", { text: fmtTime(f.timestamp) }))))));
}

function deviceTypeCard(d, typeName) {
  const stat = (label, value, id) => h("div", { class: "stat", dataset: { stat: id } }, h("span", { class: "stat-value", text: String(value) }), h("span", { class: "stat-label", text: label }));
  return h("section", { class: "card fleet-type", dataset: { deviceType: d.deviceTypeId } },
    h("div", { class: "title-row" }, h("h2", { text: d.name }),
      h("a", { href: `#/devices${query({ deviceType: d.deviceTypeId })}`, text: "Devices" })),
    h("div", { class: "stats" },
      stat("devices", d.devices, "devices"),
      stat("seen in the last hour", d.seenLastHour, "hour"),
      stat("seen in the last day", d.seenLastDay, "day"),
      stat("never seen", d.neverSeen, "never")),
    d.firmwareTypes.length
      ? d.firmwareTypes.map((fw) => h("div", { class: "fleet-fw", dataset: { type: String(fw.type) } },
        h("h3", { text: `Image type ${fw.type}${typeName.get(fw.type) ? ` · ${typeName.get(fw.type)}` : ""}` }),
        h("p", { class: "muted" }, `${fw.reporting} of ${d.devices} devices report it.`,
          fw.newestAssociated ? ` Newest associated image: ${versionText(fw.newestAssociated)}.` : ""),
        versionChart(fw, typeName.get(fw.type), d.devices),
        stateChips(fw)))
      : h("p", { class: "muted", text: "No device of this type has reported yet, and no image is associated." }),
    failuresTable(d));
}

export async function dashboardScreen(ctx) {
  const { view, params } = ctx;
  const [fleet, types] = await Promise.all([get(pp("fleet")), get(pp("types"))]);
  if (!ctx.live()) return;
  const typeName = new Map(types.map((t) => [t.type, t.name]));
  const chosen = params.get("deviceType") || "";
  const picker = h("select", { id: "dashboard-device-type", "aria-label": "Device type shown" },
    h("option", { value: "", text: "All device types" }),
    fleet.deviceTypes.map((d) => h("option", { value: d.deviceTypeId, text: d.name, selected: d.deviceTypeId === chosen })));
  picker.addEventListener("change", () => ctx.navigate(`#/dashboard${query({ deviceType: picker.value })}`));
  const updated = h("span", { class: "muted", id: "dashboard-updated" });
  const body = h("div", { id: "dashboard" });
  view.append(h("div", { class: "title-row" }, h("h1", { text: "Fleet" }), h("div", { class: "filters" }, picker)), updated, body);

  function show(doc) {
    clear(body);
    updated.textContent = `${doc.devices} devices · updated ${fmtTime(doc.timestamp)}`;
    const shown = doc.deviceTypes.filter((d) => !chosen || d.deviceTypeId === chosen);
    if (!shown.length) {
      body.append(h("div", { class: "notice info", role: "status" }, "No device types yet: add one on the ",
        h("a", { href: "#/devices", text: "Devices screen" }), ", then register devices."));
      return;
    }
    for (const d of shown) body.append(deviceTypeCard(d, typeName));
  }
  show(fleet);
  // Refreshed while the screen is shown; one summary call each time.
  const tick = async () => {
    if (!ctx.live()) return;
    try {
      const doc = await get(pp("fleet"));
      if (ctx.live()) show(doc);
    } catch {
      // Shown again at the next tick; a 401 signs out through the API client.
    }
    if (ctx.live()) setTimeout(tick, REFRESH_MS);
  };
  setTimeout(tick, REFRESH_MS);
}
