// Sign-in: paste a bearer token (from `v2v token create` or `v2v demo`). GET /me checks it and
// tells the name and role; the token is then kept in sessionStorage for this tab only.

import { ApiError, HOME, api, clear, el, showError } from "./common.js";

function safeNext() {
  // only a page of this site, never another origin
  const next = new URLSearchParams(location.search).get("next") || "";
  return next.startsWith("/ui/") ? next : HOME;
}

function main() {
  const page = document.getElementById("page");
  const box = el("div", { class: "message error", role: "alert", hidden: true });
  const input = el("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const form = el(
    "form",
    { id: "sign-in-form", class: "inline", novalidate: true },
    el("div", { class: "field" }, el("label", { for: "token" }, "Bearer token"), input),
    el(
      "p",
      { id: "token-help", class: "muted" },
      "Your token comes from your administrator (v2v token create NAME --role ROLE) or from v2v demo. ",
      "It is kept in this browser tab only and is sent to the API, never put in a link.",
    ),
    el("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.hidden = true;
    const value = input.value.trim();
    if (!value) {
      showError(box, new ApiError(422, [{ field: "token", problem: "paste your token here" }]), form);
      input.focus();
      return;
    }
    sessionStorage.setItem("v2v.token", value);
    try {
      const who = await api("GET", "/me");
      sessionStorage.setItem("v2v.who", JSON.stringify(who));
      location.assign(safeNext());
    } catch (error) {
      sessionStorage.removeItem("v2v.token");
      const shown = error.status === 401 ? new ApiError(422, [{ field: "token", problem: "unknown or revoked token" }]) : error;
      showError(box, shown, form);
      input.focus();
    }
  });
  clear(page, el("section", { class: "panel sign-in" }, box, form));
  input.focus();
}

main();
