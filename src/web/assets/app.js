// The OTA Manager shell: sign-in, the header (navigation, partner picker for admins, sign
// out), and the hash router that hands each screen its part of the page.

import { ApiError, get, session, setExpiredHandler, signIn, signOut } from "./api.js";
import { clear, h, notice } from "./dom.js";
import { typesScreen } from "./types.js";
import { wizardScreen } from "./wizard.js";
import { imagesScreen, imageScreen, deployScreen } from "./images.js";
import { devicesScreen, deviceScreen } from "./devices.js";
import { adminScreen } from "./admin.js";
import { dashboardScreen } from "./dashboard.js";
import { auditScreen } from "./audit.js";
import { accountScreen } from "./account.js";
import { signingScreen } from "./signing.js";
import { rolloutsScreen, rolloutScreen } from "./rollouts.js";

const main = document.getElementById("main");
// A message for the sign-in screen (e.g. after the session expired).
let flash = "";
// Bumped on every navigation: a screen's timers and late answers check it and stop.
let generation = 0;

setExpiredHandler(() => {
  // Parallel calls may all meet the 401: the first one signs out.
  if (!session.get()) return;
  session.clear();
  flash = "Your session has expired. Please sign in again.";
  navigate("#/signin");
});

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, q] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(q || "") };
}

// Shows `hash`: a changed hash renders through the hashchange event, the same one again
// directly (never both, so a screen renders once).
export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signInScreen() {
  document.getElementById("top").hidden = true;
  const user = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const msg = h("div", { id: "login-message", "aria-live": "polite" });
  // The message stays until the next sign-in, so a repeated render still shows it.
  if (flash) msg.append(notice("info", flash));
  const button = h("button", { id: "login-submit", type: "submit", class: "primary", text: "Sign in" });
  const form = h("form", { id: "login-form", class: "card signin", novalidate: true },
    h("h1", { text: "OTA Manager" }),
    h("p", { class: "muted", text: "Sign in with your user name and password." }),
    h("div", { class: "field" }, h("label", { for: user.id, text: "User name" }), user),
    h("div", { class: "field" }, h("label", { for: pass.id, text: "Password" }), pass),
    msg,
    button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    if (!user.value || !pass.value) {
      msg.append(notice("error", "Enter your user name and password."));
      return;
    }
    button.disabled = true;
    try {
      await signIn(user.value, pass.value);
      flash = "";
      navigate("#/dashboard");
    } catch (err) {
      const text = err instanceof ApiError && err.trace === "invalid_grant"
        ? "Wrong user name or password."
        : err.message;
      msg.append(notice("error", text));
      pass.value = "";
      pass.focus();
    } finally {
      button.disabled = false;
    }
  });
  clear(main).append(form);
  user.focus();
}

async function renderHeader(active) {
  const s = session.get();
  const top = document.getElementById("top");
  top.hidden = false;
  const nav = clear(document.getElementById("nav"));
  const links = [["dashboard", "Fleet"], ["types", "Image types"], ["images", "Images"], ["devices", "Devices"], ["rollouts", "Rollouts"], ["signing", "Signing keys"]];
  if (s.role === "admin") links.push(["admin", "Admin"]);
  if (s.role === "admin") links.push(["audit", "Audit"]);
  for (const [key, label] of links) {
    nav.append(h("a", { href: `#/${key}`, id: `nav-${key}`, text: label, "aria-current": key === active ? "page" : false }));
  }
  const who = clear(document.getElementById("who"));
  if (s.role === "admin") {
    const picker = h("select", { id: "partner-picker", "aria-label": "Partner shown" });
    who.append(picker);
    try {
      const partners = await get("/v1/admin/partners");
      for (const p of partners) {
        picker.append(h("option", { value: p.partnerId, text: p.name, selected: p.partnerId === (s.viewPartner || s.partnerId) }));
      }
    } catch {
      picker.append(h("option", { value: s.partnerId, text: s.partnerName }));
    }
    picker.addEventListener("change", () => {
      session.set({ ...session.get(), viewPartner: picker.value });
      route();
    });
  } else {
    who.append(h("span", { class: "partner", text: s.partnerName }));
  }
  who.append(
    h("a", { class: "user", id: "who-user", href: "#/account", title: "Your account", text: s.username || "" }),
    h("button", {
      type: "button", id: "signout", text: "Sign out",
      onclick: async () => {
        await signOut();
        flash = "You are signed out.";
        navigate("#/signin");
      },
    }));
}

async function route() {
  generation++;
  const s = session.get();
  const { parts, params } = parseHash();
  if (!s || (s.expires && s.expires < Date.now())) {
    if (s) {
      session.clear();
      flash = "Your session has expired. Please sign in again.";
    }
    signInScreen();
    return;
  }
  const [screen, ...rest] = parts.length ? parts : ["dashboard"];
  if (screen === "signin") {
    location.hash = "#/dashboard";
    return;
  }
  await renderHeader(screen === "upload" ? "images" : screen === "deploy" ? "images" : screen);
  const view = clear(main);
  const ctx = { view, params, generation, live: () => ctx.generation === generation, navigate };
  try {
    if (screen === "dashboard") await dashboardScreen(ctx);
    else if (screen === "audit" && s.role === "admin") await auditScreen(ctx);
    else if (screen === "account") await accountScreen(ctx);
    else if (screen === "types") await typesScreen(ctx);
    else if (screen === "upload") await wizardScreen(ctx);
    else if (screen === "images" && rest.length === 2) await imageScreen(ctx, Number(rest[0]), rest[1]);
    else if (screen === "images") await imagesScreen(ctx);
    else if (screen === "deploy" && rest.length === 2) await deployScreen(ctx, Number(rest[0]), rest[1]);
    else if (screen === "devices" && rest.length === 1) await deviceScreen(ctx, rest[0]);
    else if (screen === "devices") await devicesScreen(ctx);
    else if (screen === "signing") await signingScreen(ctx);
    else if (screen === "rollouts" && rest.length === 1) await rolloutScreen(ctx, rest[0]);
    else if (screen === "rollouts") await rolloutsScreen(ctx);
    else if (screen === "admin" && s.role === "admin") await adminScreen(ctx);
    else view.append(h("h1", { text: "Not found" }), h("p", { text: "There is no such page." }));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    if (ctx.live()) view.append(notice("error", err.message));
  }
}

window.addEventListener("hashchange", route);
route();
