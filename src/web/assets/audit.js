// The audit log (appliance admins): who did what to which object, newest first, 50 a page,
// optionally only the last hour, day or week (`GET /v1/admin/audit`).

import { get, query } from "./api.js";
import { clear, field, fmtTime, h } from "./dom.js";

const PAGE_SIZE = 50;
const SPANS = [["", "Everything"], ["1h", "Last hour"], ["1d", "Last day"], ["7d", "Last week"]];
const SPAN_MS = { "1h": 3600e3, "1d": 86400e3, "7d": 7 * 86400e3 };

// Text that may break after each `sep` (a slash of an object path, the dot of an action),
// so ids and names stay whole where the column allows it.
function breakAfter(text, sep) {
  const parts = text.split(sep);
  return parts.flatMap((p, i) => (i < parts.length - 1 ? [`${p}${sep}`, h("wbr")] : [p]));
}

export async function auditScreen(ctx) {
  const { view, params } = ctx;
  const span = params.get("since") || "";
  const page = Math.max(0, Number(params.get("page") || 0));
  const spanSel = h("select", { id: "audit-since" }, SPANS.map(([v, l]) => h("option", { value: v, text: l, selected: v === span })));
  const go = (p) => ctx.navigate(`#/audit${query({ since: spanSel.value, page: p || "" })}`);
  spanSel.addEventListener("change", () => go(0));
  view.append(h("h1", { text: "Audit log" }), h("div", { class: "filters" }, field("Changes made", spanSel)));
  const since = SPAN_MS[span] ? Date.now() - SPAN_MS[span] : "";
  const result = await get(`/v1/admin/audit${query({ since, page, size: PAGE_SIZE })}`);
  if (!ctx.live()) return;
  const box = h("div", { id: "audit-list" });
  view.append(box);
  if (!result.content.length) {
    box.append(h("p", { class: "muted", text: "Nothing was changed in this time." }));
    return;
  }
  clear(box).append(h("div", { class: "table-wrap" }, h("table", { id: "audit-table" },
    h("thead", {}, h("tr", {}, ["When", "Who", "What", "Object", "Detail"].map((c) => h("th", { scope: "col", text: c })))),
    h("tbody", {}, result.content.map((e) => h("tr", { dataset: { seq: e.seq, action: e.action } },
      h("td", { text: fmtTime(e.timestamp) }),
      h("td", { class: "actor", text: e.actor }),
      h("td", { class: "action" }, h("code", {}, breakAfter(e.action, "."))),
      h("td", { class: "target" }, breakAfter(e.target, "/")),
      h("td", { text: e.detail || "" })))))),
  h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", text: "Newer", disabled: page === 0, onclick: () => go(page - 1) }),
    h("span", { text: `Page ${page + 1} of ${Math.max(1, result.totalPages)} · ${result.totalElements} entries` }),
    h("button", { type: "button", text: "Older", disabled: page + 1 >= result.totalPages, onclick: () => go(page + 1) })));
}
