// The login form, shown when the API answers 401 (ENABLE_AUTH is on and there is no valid session cookie).

import { api } from "./api.js";
import { fill, h } from "./dom.js";

/** Render the form into `root`; resolves with the user once the server has set the session cookie. */
export function showLogin(root) {
  return new Promise((resolve) => {
    const username = h("input", { id: "login-username", class: "input", name: "username", autocomplete: "username", required: true });
    const password = h("input", { id: "login-password", class: "input", name: "password", type: "password",
      autocomplete: "current-password", required: true });
    const error = h("p", { class: "error-text", role: "alert" });
    const submit = h("button", { type: "submit", class: "button primary", text: "Log in" });
    const form = h("form", { class: "login panel", "aria-labelledby": "login-title" },
      h("h1", { id: "login-title", text: "Log in" }),
      h("p", { class: "muted", text: "This dashboard asks for a login." }),
      h("div", { class: "field" }, h("label", { for: "login-username", text: "Username" }), username),
      h("div", { class: "field" }, h("label", { for: "login-password", text: "Password" }), password),
      error, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.textContent = "";
      try {
        const answer = await api("api/auth/login", { method: "POST",
          body: { username: username.value, password: password.value, session: true } });
        resolve(answer.user);
      } catch (failure) {
        error.textContent = failure.status === 401 ? "Wrong username or password." : failure.message;
        submit.disabled = false;
        password.select();
      }
    });
    fill(root, form);
    username.focus();
  });
}
