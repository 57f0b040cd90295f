// Rollouts: the list with a form to start one (reached from an image's page with the image
// filled in), and a rollout's page: live per-group progress bars, the stop reason, the
// failed and timed-out devices with their reasons, and pause/resume/advance/cancel.
// The rules live on the server; this screen only shows and asks.

import { get, post, pp, query } from "./api.js";
import { append, clear, field, fmtTime, h, notice, setFieldError } from "./dom.js";

const FINISHED = new Set(["completed", "stopped", "cancelled"]);

function share(g) {
  return g.devices ? `canary (${g.devices.length})` : `${g.percent}%`;
}

export async function rolloutsScreen(ctx) {
  const { view, params } = ctx;
  const [list, deviceTypes] = await Promise.all([get(pp("rollouts") + query({ size: 100 })), get(pp("deviceTypes"))]);
  if (!ctx.live()) return;
  const dt = h("select", { id: "rollout-dt" }, deviceTypes.map((d) => h("option", { value: d.id, text: d.name })));
  const image = h("input", { id: "rollout-image", value: params.get("image") || "", inputmode: "numeric" });
  const groups = h("input", { id: "rollout-groups", value: "1,10,50,100" });
  const success = h("input", { id: "rollout-success", value: "0.95" });
  const error = h("input", { id: "rollout-error", value: "0.05" });
  const minFailures = h("input", { id: "rollout-min-failures", value: "1", inputmode: "numeric" });
  const days = h("input", { id: "rollout-window-days", placeholder: "mon,tue (empty: any time)" });
  const start = h("input", { id: "rollout-window-start", placeholder: "02:00" });
  const minutes = h("input", { id: "rollout-window-minutes", placeholder: "180", inputmode: "numeric" });
  const msg = h("div", { id: "rollout-message", "aria-live": "polite" });
  const form = h("form", { class: "card", id: "rollout-form", novalidate: true },
    h("h2", { text: "Start a rollout" }),
    field("Device type", dt), field("Image id", image, "the firmware image (record) id"),
    field("Groups", groups, "cumulative percents, ending at 100"),
    field("Success threshold", success, "share of a group that must confirm"),
    field("Error threshold", error, "share of a group whose failures stop the rollout"),
    field("Minimum failures", minFailures),
    field("Window days", days), field("Window start (UTC)", start), field("Window minutes", minutes),
    h("button", { type: "submit", class: "primary", id: "rollout-start", text: "Start rollout", disabled: !deviceTypes.length }),
    msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    setFieldError(image, "");
    if (!image.value.trim()) return setFieldError(image, "An image id is required.");
    const body = {
      deviceTypeId: dt.value,
      firmwareImageId: image.value.trim(),
      groups: groups.value.split(",").map((p) => p.trim()).filter(Boolean).map((p) => ({ percent: Number(p) })),
      successThreshold: Number(success.value),
      errorThreshold: Number(error.value),
      minFailures: Number(minFailures.value),
    };
    if (days.value.trim()) {
      body.window = {
        days: days.value.split(",").map((d) => d.trim()).filter(Boolean),
        start: start.value.trim(),
        durationMinutes: Number(minutes.value),
      };
    }
    try {
      const r = await post(pp("rollouts"), body);
      ctx.navigate(`#/rollouts/${r.id}`);
    } catch (err) {
      msg.append(notice("error", err.message));
    }
  });
  const rows = list.content.map((r) => h("tr", { dataset: { id: r.id } },
    h("td", {}, h("a", { href: `#/rollouts/${r.id}`, text: r.name })),
    h("td", { class: `state-${r.state}`, text: r.state }),
    h("td", { text: `${r.type} / ${r.versionNumber}` }),
    h("td", { text: deviceTypes.find((d) => d.id === r.deviceTypeId)?.name || r.deviceTypeId }),
    h("td", { text: fmtTime(r.createdTimestamp) })));
  append(view, [h("h1", { text: "Rollouts" }),
    h("section", { class: "card", id: "rollout-list" },
      rows.length
        ? h("table", {}, h("thead", {}, h("tr", {}, ["Name", "State", "Type / VN", "Device type", "Created"].map((t) => h("th", { text: t })))), h("tbody", {}, rows))
        : h("p", { class: "muted", text: "No rollouts yet." })),
    form]);
}

function groupCard(g) {
  const bar = h("progress", { max: Math.max(g.size, 1), value: g.confirmed, "aria-label": `group ${g.index + 1} confirmed` });
  return h("div", { class: "progress-row group", id: `group-${g.index}`, dataset: { state: g.state } },
    h("strong", { text: `Group ${g.index + 1} · ${share(g)}` }), bar,
    h("span", { class: "group-counts", text: `${g.state}: ${g.confirmed}/${g.size} confirmed, ${g.offered + g.downloading + g.installed} in progress, ${g.failed} failed, ${g.timedOut} timed out, ${g.waiting} waiting` }));
}

export async function rolloutScreen(ctx, id) {
  const { view } = ctx;
  const msg = h("div", { id: "rollout-message", "aria-live": "polite" });
  const head = h("div");
  const groups = h("section", { class: "card", id: "rollout-groups" });
  const failures = h("section", { class: "card", id: "rollout-failures" });
  view.append(head, msg, groups, failures);
  const act = (verb) => async () => {
    clear(msg);
    try {
      await post(pp("rollouts", id, verb), {});
      await draw();
    } catch (err) {
      msg.append(notice("error", err.message));
    }
  };
  async function draw() {
    const [r, failed, timedOut] = await Promise.all([
      get(pp("rollouts", id)),
      get(pp("rollouts", id, "devices") + query({ outcome: "failed", size: 50 })),
      get(pp("rollouts", id, "devices") + query({ outcome: "timedOut", size: 50 })),
    ]);
    if (!ctx.live()) return null;
    const button = (verb, label, show) => (show ? h("button", { type: "button", id: `rollout-${verb}`, text: label, onclick: act(verb) }) : null);
    const awaiting = r.groups.some((g) => g.state === "succeeded");
    append(clear(head), [
      h("div", { class: "title-row" }, h("h1", { id: "rollout-name", text: r.name }),
        h("span", { class: `badge state-${r.state}`, id: "rollout-state", text: r.state })),
      h("p", { class: "muted", text: `Image type ${r.type}, version number ${r.versionNumber} · created ${fmtTime(r.createdTimestamp)}` }),
      r.stopReason ? h("div", { class: "notice error", id: "rollout-stop-reason", text: `Stopped: ${r.stopReason}` }) : null,
      h("div", { class: "inline", id: "rollout-actions" },
        button("pause", "Pause", r.state === "running" || r.state === "scheduled"),
        button("resume", "Resume", r.state === "paused"),
        button("advance", awaiting ? "Start next group" : "Advance", r.state === "scheduled" || awaiting),
        button("cancel", "Cancel", !FINISHED.has(r.state)))]);
    append(clear(groups), [h("h2", { text: "Groups" }), r.groups.map(groupCard)]);
    const bad = [...failed.content, ...timedOut.content];
    append(clear(failures), [h("h2", { text: "Failed devices" }),
      bad.length
        ? h("table", {}, h("thead", {}, h("tr", {}, ["Device", "Group", "Outcome", "Reason"].map((t) => h("th", { text: t })))),
          h("tbody", {}, bad.map((d) => h("tr", { dataset: { device: d.deviceId } },
            h("td", {}, h("a", { href: `#/devices/${encodeURIComponent(d.deviceId)}`, text: d.deviceId })),
            h("td", { text: String(d.group + 1) }), h("td", { text: d.outcome }), h("td", { class: "reason", text: d.reason || "" })))))
        : h("p", { class: "muted", text: "None." })]);
    return r;
  }
  const first = await draw();
  // Live while it runs: redraw every second until it ends or the user leaves.
  if (first && !FINISHED.has(first.state)) {
    const timer = setInterval(async () => {
      if (!ctx.live()) return clearInterval(timer);
      try {
        const r = await draw();
        if (!r || FINISHED.has(r.state)) clearInterval(timer);
      } catch (err) {
        clearInterval(timer);
        if (ctx.live()) msg.append(notice("error", err.message));
      }
    }, 1000);
  }
}
