// The signed-in user's account: change the password (`POST /v1/me/password`). The current
// password is asked again; the user's other sessions end, this one stays.

import { post, session } from "./api.js";
import { clear, field, h, notice, setFieldError } from "./dom.js";

export async function accountScreen(ctx) {
  const { view } = ctx;
  const s = session.get();
  view.append(h("h1", { text: "Your account" }));
  if (!s.username) {
    view.append(notice("info", "This session belongs to a machine client, which has no password."));
    return;
  }
  const current = h("input", { id: "pw-current", type: "password", autocomplete: "current-password" });
  const next = h("input", { id: "pw-new", type: "password", autocomplete: "new-password" });
  const again = h("input", { id: "pw-again", type: "password", autocomplete: "new-password" });
  const msg = h("div", { id: "pw-message", "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "primary", id: "pw-save", text: "Change password" });
  const form = h("form", { class: "card", id: "pw-form", novalidate: true },
    h("h2", { text: "Change password" }),
    h("p", { class: "muted" }, "Signed in as ", h("strong", { text: s.username }), ". Your other sessions end when the password changes."),
    field("Current password", current), field("New password", next), field("New password again", again), msg, save);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    [current, next, again].forEach((i) => setFieldError(i, ""));
    if (!current.value) return setFieldError(current, "Enter your current password.");
    if (!next.value) return setFieldError(next, "Enter a new password.");
    if (next.value !== again.value) return setFieldError(again, "The two new passwords differ.");
    save.disabled = true;
    try {
      await post("/v1/me/password", { currentPassword: current.value, newPassword: next.value });
      form.reset();
      msg.append(notice("ok", "Your password is changed."));
    } catch (err) {
      if (err.trace === "wrong_password") setFieldError(current, "That is not your current password.");
      else if (/password/.test(err.trace) || err.status === 400) setFieldError(next, err.message);
      else msg.append(notice("error", err.message));
    } finally {
      save.disabled = false;
    }
  });
  view.append(form);
}
