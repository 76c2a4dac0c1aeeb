// The "Calendar feed" section of a patient's page, for coordinators and admins: make a secret link
// to the patient's calendar feed (its address is shown once, with a copy button), list the
// patient's links and revoke one. The section is its own part of patient.html; the timeline and
// the other actions are patient.js's.

import { api, busy, clear, el, hideMessage, showError, showSuccess, timestamp, token } from "./common.js";

const patientId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const LINKS = `/patients/${encodeURIComponent(patientId)}/calendar-links`;
const MANAGERS = new Set(["coordinator", "admin"]); // the roles the API lets make and revoke links

const byId = (id) => document.getElementById(id);

function linksTable(links) {
  if (!links.length) return el("p", { class: "muted", id: "calendar-feed-none" }, "No link has been made for this patient.");
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "data", id: "calendar-feed-table" },
      el("caption", { class: "visually-hidden" }, "Links to this patient's calendar feed"),
      el("thead", {}, el("tr", {}, ["Link", "Made", "State", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, links.map(linkRow)),
    ),
  );
}

function linkRow(link) {
  const revoked = link.revoked_at !== null;
  let action = null;
  if (!revoked) {
    action = el("button", { type: "button", class: "danger", "aria-label": `Revoke link ${link.id}` }, "Revoke");
    action.addEventListener("click", () => revoke(link, action));
  }
  return el(
    "tr",
    { dataset: { link: link.id, state: revoked ? "revoked" : "active" } },
    el("th", { scope: "row" }, `Link ${link.id}`),
    el("td", {}, `${timestamp(link.created_at)} by ${link.created_by}`),
    el("td", {}, el("span", { class: `badge ${revoked ? "withdrawn" : "confirmed"}` }, revoked ? `revoked ${timestamp(link.revoked_at)}` : "active")),
    el("td", {}, action),
  );
}

async function drawLinks() {
  clear(byId("calendar-feed-links"), linksTable(await api("GET", LINKS)));
}

async function create(button) {
  const box = byId("calendar-feed-message");
  hideMessage(box);
  try {
    const link = await busy(button, "Creating…", () => api("POST", LINKS));
    byId("calendar-feed-url").value = `${location.origin}${link.feed}`;
    byId("calendar-feed-new").hidden = false;
    showSuccess(box, `Link ${link.id} created. Copy its address now: it cannot be shown again.`);
    await drawLinks();
    byId("calendar-feed-url").select();
    byId("calendar-feed-url").focus();
  } catch (error) {
    showError(box, error);
  }
}

async function revoke(link, button) {
  const box = byId("calendar-feed-message");
  try {
    await busy(button, "Revoking…", () => api("DELETE", `${LINKS}/${link.id}`));
    showSuccess(box, `Link ${link.id} revoked: its feed no longer opens.`);
    await drawLinks();
    box.focus();
  } catch (error) {
    showError(box, error);
    box.focus();
  }
}

async function copy() {
  const input = byId("calendar-feed-url");
  const box = byId("calendar-feed-message");
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (error) {
    // no clipboard API (a page served over plain http): the browser's own copy of the selection
    if (!document.execCommand("copy")) {
      showError(box, new Error("copying was refused by the browser: the address is selected, copy it with Ctrl+C"));
      return;
    }
  }
  showSuccess(box, "Feed address copied.");
}

async function main() {
  if (!token()) return; // patient.js sends the browser to sign in
  let who;
  try {
    who = await api("GET", "/me");
  } catch (error) {
    return; // patient.js shows the same failure in the page's alert box
  }
  if (!MANAGERS.has(who.role)) return;
  const createButton = byId("calendar-feed-create");
  createButton.addEventListener("click", () => create(createButton));
  byId("calendar-feed-copy").addEventListener("click", copy);
  try {
    await drawLinks();
  } catch (error) {
    if (error.status === 404) return; // no such patient: patient.js says so
    showError(byId("calendar-feed-message"), error);
  }
  byId("calendar-feed").hidden = false;
}

main();
