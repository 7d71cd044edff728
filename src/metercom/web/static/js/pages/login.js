// #/login: username and password; problems (401, 429 with Retry-After) shown in the form.

import { post } from "../api.js";
import { loggedIn } from "../app.js";
import { fill, h, problemBox } from "../ui.js";

export async function render({ main, message }) {
  document.title = "Log in \u00b7 metercom";
  const errors = h("div", { class: "form-errors", id: "login-errors" });
  if (message) errors.append(h("div", { class: "alert alert-info", role: "status" }, message));
  const username = h("input", {
    id: "username",
    name: "username",
    autocomplete: "username",
    required: true,
    autocapitalize: "none",
    spellcheck: "false",
  });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block" }, "Log in");
  const form = h(
    "form",
    { class: "login-form", novalidate: true, "aria-describedby": "login-errors" },
    h("div", { class: "field" }, h("label", { for: "username" }, "Username"), username),
    h("div", { class: "field" }, h("label", { for: "password" }, "Password"), password),
    errors,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(errors);
    if (!username.value.trim() || !password.value) {
      errors.append(h("div", { class: "alert alert-error", role: "alert" }, "Enter your username and password."));
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Logging in\u2026";
    try {
      const answer = await post("auth/login", { username: username.value.trim(), password: password.value });
      loggedIn(answer);
    } catch (error) {
      fill(errors, problemBox(error, { heading: "Login failed" }));
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Log in";
    }
  });
  main.append(
    h(
      "div",
      { class: "login-wrap" },
      h(
        "div",
        { class: "login-card card" },
        h(
          "div",
          { class: "login-brand" },
          h("img", { src: "favicon.svg", alt: "", width: 40, height: 40 }),
          h("div", {}, h("h1", {}, "metercom"), h("p", { class: "muted" }, "Meter head-end dashboard")),
        ),
        form,
      ),
      h("p", { class: "login-foot muted" }, "Operators, viewers and households sign in here. Sessions end after inactivity."),
    ),
  );
  username.focus();
}
