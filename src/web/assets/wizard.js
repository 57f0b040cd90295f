// The upload wizard, in the three steps partners know: 1. the file and its image type (the
// upload starts at once, with real progress), 2. name, description, version and tags,
// 3. the device types that may receive it, then Done: moveToRepository, the pool record and
// its associations, the same calls a partner's build script makes. API validation
// messages are shown at the field they concern. Step 3 says how many devices will be
// offered the image and warns when its version string sorts below a version those device
// types run or were last given (from the fleet summary).

import { ApiError, get, partnerId, post, pp, uploadBinary } from "./api.js";
import { clear, field, fmtBytes, h, notice, setFieldError } from "./dom.js";
import { compareVersions } from "./versions.js";

// A file dropped on a type folder before the wizard opened.
let offered = null;
export function offerFile(file) {
  offered = file;
}

// Which wizard field an API error concerns: by trace, else by the message's first word
// (the API's validation messages start with the field name).
export function errorField(err) {
  if (!(err instanceof ApiError)) return null;
  if (err.trace === "version_exists") return "version";
  if (err.trace === "invalid_tag" || err.trace === "too_many_tags") return "tags";
  const first = (err.message.split(/\s/)[0] || "").toLowerCase();
  if (first === "tag") return "tags";
  return ["name", "description", "version", "tags", "type"].includes(first) ? first : null;
}

// What releasing version string `version` of image type `type` to the chosen device types
// means, from the fleet summary: how many devices will be offered it (those that report
// the type: the new image gets the highest number), and the higher version strings they
// run or were last given.
export function releaseImpact(fleet, chosen, type, version) {
  let offered = 0;
  let silent = 0;
  const above = new Map();
  for (const d of fleet.deviceTypes.filter((x) => chosen.includes(x.deviceTypeId))) {
    const fw = d.firmwareTypes.find((f) => f.type === type);
    const reporting = fw ? fw.reporting : 0;
    offered += reporting;
    silent += d.devices - reporting;
    if (!fw) continue;
    for (const v of fw.versions) {
      if (v.version && compareVersions(version, v.version) < 0) above.set(v.version, (above.get(v.version) || 0) + v.devices);
    }
    const newest = fw.newestAssociated;
    if (newest && newest.version && compareVersions(version, newest.version) < 0 && !above.has(newest.version)) above.set(newest.version, 0);
  }
  return { offered, silent, above: [...above.entries()].sort((a, b) => compareVersions(b[0], a[0])) };
}

export function splitTags(text) {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

export async function wizardScreen(ctx) {
  const { view, params } = ctx;
  const [types, deviceTypes] = await Promise.all([get(pp("types")), get(pp("deviceTypes"))]);
  if (!ctx.live()) return;
  const state = { step: 1, file: null, upload: null, sha: null, uploadError: null };

  const typeSelect = h("select", { id: "wizard-type", required: true },
    types.filter((t) => t.type !== 4).sort((a, b) => a.type - b.type)
      .map((t) => h("option", { value: t.type, text: `${t.type} · ${t.name}`, selected: String(t.type) === params.get("type") })));
  const fileInput = h("input", { id: "wizard-file", type: "file" });
  const fileInfo = h("p", { id: "wizard-file-info", class: "muted", text: "No file chosen." });
  const progress = h("progress", { id: "wizard-progress", max: 100, value: 0 });
  const progressText = h("span", { id: "wizard-progress-text", "aria-live": "polite", text: "" });
  const drop = h("div", { class: "dropzone", id: "wizard-drop", tabindex: "0" },
    h("p", { text: "Drop the firmware file here, or pick it:" }), field("Firmware file", fileInput), fileInfo,
    h("div", { class: "progress-row" }, progress, progressText));

  const name = h("input", { id: "wizard-name", maxlength: 200, required: true });
  const description = h("textarea", { id: "wizard-description", rows: 3, maxlength: 1000 });
  const version = h("input", { id: "wizard-version", maxlength: 200, required: true, placeholder: "e.g. 1.4.2+7d" });
  const tags = h("input", { id: "wizard-tags", placeholder: "comma-separated, e.g. beta, eu" });
  const inputs = { name, description, version, tags, type: typeSelect };

  const dtBoxes = deviceTypes.map((d) => h("input", { type: "checkbox", value: d.id, id: `wizard-dt-${d.id}`, dataset: { name: d.name } }));
  const general = h("div", { id: "wizard-message" });
  const impact = h("div", { id: "wizard-impact", "aria-live": "polite" });
  // Instead of releasing to every device of the ticked types at once: keep the image
  // unassociated and open the rollout form with it (a rollout holds its own association).
  const staged = h("input", { type: "checkbox", id: "wizard-staged" });
  let fleet = null;

  // The consequence of Done for the ticked device types, shown before it is pressed.
  async function showImpact() {
    clear(impact);
    dtBoxes.forEach((b) => { b.disabled = staged.checked; });
    if (staged.checked) {
      impact.append(h("p", { id: "wizard-staged-note", text: "No device is offered it when you press Done: the rollout form opens next, where you choose the device type, the groups and when to stop." }));
      return;
    }
    const chosen = dtBoxes.filter((b) => b.checked).map((b) => b.value);
    if (!chosen.length) {
      impact.append(h("p", { class: "muted", text: "No device will be offered the image until it is associated with a device type." }));
      return;
    }
    try {
      fleet = fleet || await get(pp("fleet"));
    } catch (err) {
      impact.append(notice("error", `How many devices would get it is unknown: ${err.message}`));
      return;
    }
    const v = version.value.trim();
    const r = releaseImpact(fleet, chosen, Number(typeSelect.value), v);
    const n = r.offered === 1 ? "1 device" : `${r.offered} devices`;
    impact.append(h("p", { id: "wizard-offered-count", dataset: { count: String(r.offered) } },
      h("strong", { text: n }), ` will be offered ${v} at their next check-in.`,
      r.silent ? ` ${r.silent} other device(s) of these types have not reported image type ${typeSelect.value} yet; they are offered it once they do.` : ""));
    for (const [higher, devices] of r.above) {
      impact.append(h("div", { class: "notice warn", role: "alert", dataset: { higher } },
        h("strong", { text: `${v} will be offered to devices running ${higher}` }),
        devices ? ` (${devices} device(s)): its version string sorts below theirs, but its version number will be higher, so they will install it.`
          : `: ${higher} is the newest image associated with these device types, and ${v} sorts below it.`));
    }
  }
  dtBoxes.forEach((b) => b.addEventListener("change", showImpact));
  staged.addEventListener("change", showImpact);

  function startUpload(file) {
    if (state.upload) state.upload.abort();
    state.file = file;
    state.sha = null;
    state.uploadError = null;
    fileInfo.textContent = `${file.name} · ${fmtBytes(file.size)}`;
    progress.value = 0;
    progressText.textContent = "0%";
    if (!name.value) name.value = file.name.replace(/\.[^.]*$/, "");
    const up = uploadBinary(file, (loaded, total) => {
      // Leaving the wizard abandons the upload (the server sweeps staged bytes).
      if (!ctx.live()) {
        up.abort();
        return;
      }
      const pct = total ? Math.floor((loaded / total) * 100) : 0;
      progress.value = pct;
      progressText.textContent = `${pct}% (${fmtBytes(loaded)} of ${fmtBytes(total)})`;
    });
    state.upload = up;
    up.promise.then((sha) => {
      if (state.upload !== up) return;
      state.sha = sha;
      progressText.textContent = "Uploaded (100%)";
      progressText.dataset.done = "true";
    }, (err) => {
      if (state.upload !== up || err.trace === "aborted") return;
      state.uploadError = err;
      progressText.textContent = `Upload failed: ${err.message}`;
      setFieldError(fileInput, err.message);
    });
    setFieldError(fileInput, "");
    render();
  }
  fileInput.addEventListener("change", () => {
    if (fileInput.files[0]) startUpload(fileInput.files[0]);
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("drop"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("drop"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("drop");
    if (e.dataTransfer.files[0]) startUpload(e.dataTransfer.files[0]);
  });

  const steps = [
    h("section", { class: "step", id: "wizard-step-1" }, h("h2", { text: "1. File and image type" }), field("Image type", typeSelect), drop),
    h("section", { class: "step", id: "wizard-step-2" }, h("h2", { text: "2. Describe the image" }),
      field("Name", name), field("Description", description), field("Version", version, "Your version string; the version number is assigned by the server."),
      field("Tags", tags, "Separate tags with commas.")),
    h("section", { class: "step", id: "wizard-step-3" }, h("h2", { text: "3. Device types that may receive it" }),
      deviceTypes.length
        ? h("fieldset", { class: "checks" }, h("legend", { text: "Device types" }),
          deviceTypes.map((d, i) => h("label", { class: "check", for: dtBoxes[i].id }, dtBoxes[i], " ", d.name)))
        : h("p", { class: "muted", text: "There are no device types yet; you can associate the image later." }),
      h("label", { class: "check", for: staged.id }, staged, " Release it in stages instead: start a rollout next"),
      impact),
  ];
  const back = h("button", { type: "button", id: "wizard-back", text: "Back" });
  const next = h("button", { type: "button", id: "wizard-next", class: "primary", text: "Next" });
  const stepper = h("ol", { class: "stepper" }, ["File", "Details", "Device types"].map((s, i) => h("li", { dataset: { step: String(i + 1) }, text: s })));

  function render() {
    steps.forEach((s, i) => { s.hidden = i + 1 !== state.step; });
    [...stepper.children].forEach((li, i) => li.classList.toggle("current", i + 1 === state.step));
    back.disabled = state.step === 1;
    next.textContent = state.step === 3 ? "Done" : "Next";
  }

  async function finish() {
    clear(general);
    next.disabled = true;
    back.disabled = true;
    try {
      general.append(notice("info", "Waiting for the upload to finish…"));
      const sha = state.sha || await state.upload.promise;
      clear(general);
      const moved = await post(pp("binaries", "moveToRepository"), { value: sha });
      const chosen = staged.checked ? [] : dtBoxes.filter((b) => b.checked).map((b) => b.value);
      const body = {
        name: name.value.trim(),
        type: Number(typeSelect.value),
        version: version.value.trim(),
        url: moved.value,
        tags: splitTags(tags.value),
      };
      if (description.value.trim()) body.description = description.value.trim();
      if (chosen.length) body.associations = { [partnerId()]: chosen };
      const record = await post(pp("pool"), body);
      if (staged.checked) {
        ctx.navigate(`#/rollouts?image=${encodeURIComponent(record.id)}`);
        return;
      }
      const offered = chosen.length && fleet ? releaseImpact(fleet, chosen, record.type, record.version).offered : 0;
      // The wizard's own address again: navigate() renders it even when the hash is unchanged.
      const again = h("a", { class: "button", id: "wizard-again", href: `#/upload?type=${record.type}`, text: "Upload another" });
      again.addEventListener("click", (e) => {
        e.preventDefault();
        ctx.navigate(again.getAttribute("href"));
      });
      clear(view).append(h("h1", { text: "Upload wizard" }),
        h("section", { class: "card", id: "wizard-finished" },
          h("h2", { text: "Done" }),
          h("p", {}, "The image ", h("strong", { text: record.name }), ` (version ${record.version}) is number ${record.versionNumber} of type ${record.type}.`),
          h("p", { id: "wizard-finished-offered", text: chosen.length ? `Associated with ${chosen.length} device type(s): ${offered} device(s) will be offered it at their next check-in.` : "Not associated with any device type yet." }),
          h("a", { class: "button primary", id: "wizard-open-image", href: `#/images/${record.type}/${record.versionNumber}`, text: "Open the image" }),
          " ",
          again));
    } catch (err) {
      clear(general);
      const f = errorField(err);
      if (f === "type") {
        state.step = 1;
        setFieldError(typeSelect, err.message);
      } else if (f) {
        state.step = 2;
        setFieldError(inputs[f], err.message);
        render();
        inputs[f].focus();
      } else {
        general.append(notice("error", err.message));
      }
      render();
    } finally {
      next.disabled = false;
      back.disabled = state.step === 1;
    }
  }

  back.addEventListener("click", () => {
    if (state.step > 1) state.step--;
    render();
  });
  next.addEventListener("click", async () => {
    clear(general);
    if (state.step === 1) {
      if (!state.file) return setFieldError(fileInput, "Choose a file to upload.");
      if (state.uploadError) return setFieldError(fileInput, state.uploadError.message);
      state.step = 2;
      render();
      name.focus();
    } else if (state.step === 2) {
      Object.values(inputs).forEach((i) => setFieldError(i, ""));
      let ok = true;
      if (!name.value.trim()) { setFieldError(name, "A name is required."); ok = false; }
      if (!version.value.trim()) { setFieldError(version, "A version is required."); ok = false; }
      if (!ok) return;
      try {
        const exists = await get(pp("pool", "types", typeSelect.value, "names", name.value.trim(), "versions", version.value.trim(), "exists"));
        if (exists && exists.value) {
          setFieldError(version, `An image named ${name.value.trim()} with version ${version.value.trim()} already exists for this type.`);
          return;
        }
      } catch (err) {
        general.append(notice("error", err.message));
        return;
      }
      state.step = 3;
      render();
      await showImpact();
    } else {
      await finish();
    }
  });

  view.append(h("h1", { text: "Upload wizard" }), stepper,
    h("div", { class: "card wizard" }, steps, general, h("div", { class: "buttons" }, back, next)));
  render();
  if (offered) {
    const f = offered;
    offered = null;
    startUpload(f);
  }
}
