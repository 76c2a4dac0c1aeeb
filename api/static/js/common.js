// Shared by every page: the token, calls to the API, error messages, dates, the header.
//
// The token lives in sessionStorage (gone when the tab closes) and travels only in the
// Authorization header, never in a URL. Everything shown is built with textContent, so
// nothing the API returns is ever parsed as HTML.

const TOKEN_KEY = "v2v.token";
const WHO_KEY = "v2v.who";

/** What each role may do in the pages (admin may do everything, as in the API). */
const ACTIONS = {
  coordinator: new Set(["propose", "confirm", "defer", "out-of-specification", "replan", "refer", "edit-referral", "record"]),
  lab_manager: new Set(["capacity-change", "replan", "record"]),
  admin: null,
};

export function can(role, action) {
  if (role === "admin") return true;
  const allowed = ACTIONS[role];
  return Boolean(allowed && allowed.has(action));
}

/**
 * An answer of the API other than 2xx: the status and its detail (a string, or a list of {field, problem}).
 * A rule's refusal (409) also names the field it concerns (`field`), e.g. "outcome" or "scanned.din".
 */
export class ApiError extends Error {
  constructor(status, detail, field = null) {
    super(describeDetail(status, detail));
    this.status = status;
    this.detail = detail;
    this.field = field;
  }

  /** The 422 problems as [{field, problem}] (empty for other errors). */
  get problems() {
    return Array.isArray(this.detail) ? this.detail : [];
  }
}

function describeDetail(status, detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${fieldName(d.field)}: ${d.problem}`).join("; ");
  }
  if (typeof detail === "string" && detail) return detail;
  return `the server answered ${status}`;
}

/** "body.from_date" -> "from_date" (the name of the form's input). */
export function fieldName(field) {
  return String(field || "body").replace(/^(body|query|path)\./, "");
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(WHO_KEY);
  location.assign("/ui/sign-in");
}

/** Call the API with the token; resolves to the parsed JSON (or null for an empty body). */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached; check the connection and try again");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      data = text;
    }
  }
  if (response.status === 401 && path !== "/me") {
    // the token was revoked or the server's database changed: sign in again, then come back here
    sessionStorage.removeItem(TOKEN_KEY);
    location.assign(`/ui/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, "please sign in again");
  }
  if (!response.ok) {
    const answer = data && typeof data === "object" ? data : { detail: data };
    throw new ApiError(response.status, answer.detail, typeof answer.field === "string" ? answer.field : null);
  }
  return data;
}

/** Fetch a file that needs the token (e.g. the .ics calendar) and hand it to the browser as a download. */
export async function download(path, filename) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) throw new ApiError(response.status, `the download failed (${response.status})`);
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// -- DOM -------------------------------------------------------------------------------------

/** el("a", {href: "/x", class: "y"}, "text", child): attributes, then children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style" && typeof value === "object") Object.assign(node.style, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/**
 * Show an error in `box` (a role="alert" element). For a 422, each problem names its field, and
 * the input of that name in `form` (if any) is marked invalid with the problem beside it. A rule's
 * refusal (409 naming a field, e.g. the release gate's "outcome") is shown at its field the same way.
 */
export function showError(box, error, form) {
  if (form) clearFieldErrors(form);
  const problems = error instanceof ApiError ? error.problems : [];
  const refusal = error instanceof ApiError && error.status === 409 && error.field;
  if (problems.length) {
    clear(
      box,
      el("p", {}, "Please correct:"),
      el("ul", {}, problems.map((p) => el("li", {}, el("strong", {}, fieldName(p.field)), `: ${p.problem}`))),
    );
    if (form) for (const p of problems) markField(form, p.field, p.problem);
  } else if (refusal) {
    clear(box, el("p", {}, el("strong", {}, "Refused: "), error.message));
    if (form) markField(form, error.field, error.message);
  } else {
    const prefix = error instanceof ApiError && error.status === 409 ? "Not done, the plan changed: " : "";
    clear(box, el("p", {}, prefix + (error && error.message ? error.message : String(error))));
  }
  box.hidden = false;
  box.classList.remove("success");
  box.classList.add("error");
}

/**
 * The input a field path names: the whole name first ("scanned.din"), then shorter ones
 * ("blackouts[0].first_day" -> "blackouts[0]" -> "blackouts").
 */
function inputFor(form, field) {
  let name = fieldName(field);
  while (name) {
    const input = form.elements.namedItem(name);
    if (input && input.setAttribute) return input;
    const cut = Math.max(name.lastIndexOf("."), name.lastIndexOf("["));
    name = cut > 0 ? name.slice(0, cut) : "";
  }
  return null;
}

function markField(form, field, problem) {
  const input = inputFor(form, field);
  if (!input) return;
  // getAttribute: a control named "id" (the referral's) hides the form's own id property
  const id = `${form.getAttribute("id") || "form"}-${input.name.replace(/[^A-Za-z0-9_-]/g, "-")}-error`;
  const already = document.getElementById(id);
  if (already) {
    already.append(`; ${problem}`); // two problems with one field: both said
    return;
  }
  const note = el("span", { class: "field-error", id }, problem);
  if (!input.hasAttribute("aria-invalid")) input.dataset.describedBy = input.getAttribute("aria-describedby") || "";
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", `${input.dataset.describedBy} ${id}`.trim());
  input.insertAdjacentElement("afterend", note);
}

export function showSuccess(box, ...children) {
  clear(box, el("p", {}, ...children));
  box.hidden = false;
  box.classList.remove("error");
  box.classList.add("success");
}

export function hideMessage(box, form) {
  if (form) clearFieldErrors(form);
  box.hidden = true;
  box.replaceChildren();
}

function clearFieldErrors(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    // back to the help the field had before (if any)
    if (input.dataset.describedBy) input.setAttribute("aria-describedby", input.dataset.describedBy);
    else input.removeAttribute("aria-describedby");
    delete input.dataset.describedBy;
  }
}

/** Disable a button while `work` runs, with a busy label; returns work's result. */
export async function busy(button, label, work) {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = before;
  }
}

// -- dates (ISO strings, computed in UTC so that no time zone shifts a day) -------------------

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function parseDay(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function addDays(iso, days) {
  const date = parseDay(iso);
  date.setUTCDate(date.getUTCDate() + days);
  return isoDay(date);
}

export function daysBetween(first, last) {
  return Math.round((parseDay(last) - parseDay(first)) / 86400000);
}

export function weekday(iso) {
  return WEEKDAYS[parseDay(iso).getUTCDay()];
}

/** "Mon 04 Jan 2027" (as the command line writes dates). */
export function longDay(iso) {
  if (!iso) return "";
  const d = parseDay(iso);
  return `${WEEKDAYS[d.getUTCDay()]} ${String(d.getUTCDate()).padStart(2, "0")} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

/** "04 Jan" */
export function shortDay(iso) {
  const d = parseDay(iso);
  return `${String(d.getUTCDate()).padStart(2, "0")} ${MONTHS[d.getUTCMonth()]}`;
}

export function dayRange(first, last) {
  if (!first) return "not booked";
  return first === last ? longDay(first) : `${longDay(first)} to ${longDay(last)}`;
}

export function timestamp(iso) {
  if (!iso) return "";
  const at = new Date(iso.endsWith("Z") || /[+-]\d\d:\d\d$/.test(iso) ? iso : `${iso}Z`); // the API's times are UTC
  return `${at.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export function stepName(step) {
  return String(step).replace(/_/g, " ");
}

export function percent(value) {
  return value === null || value === undefined ? "no capacity" : `${Math.round(value * 100)}%`;
}

// -- the page frame ---------------------------------------------------------------------------

/** The pages in the header: [key, label, address, the action a role needs to see it (none: everyone)]. */
const NAV = [
  ["worklist", "Worklist", "/ui/worklist"],
  ["patients", "Patients", "/ui/patients"],
  ["referral", "New referral", "/ui/referral", "refer"],
  ["capacity", "Capacity", "/ui/capacity"],
  ["plan-changes", "Plan changes", "/ui/plan-changes"],
];

/** Where a signed-in user starts: the worklist (what is due today). */
export const HOME = "/ui/worklist";

/**
 * Every page but sign-in starts here: without a token go to sign-in (and come back); with one, ask
 * the API who it is (a revoked token signs out), draw the header and return {name, role, today}.
 */
export async function startPage(active) {
  if (!token()) {
    location.assign(`/ui/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    return new Promise(() => {}); // the page is going away
  }
  let who, health;
  try {
    [who, health] = await Promise.all([api("GET", "/me"), api("GET", "/health")]);
  } catch (error) {
    if (error.status !== 401) throw error;
    sessionStorage.removeItem(TOKEN_KEY); // revoked or unknown: sign in again, then come back
    location.assign(`/ui/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    return new Promise(() => {});
  }
  sessionStorage.setItem(WHO_KEY, JSON.stringify(who));
  drawHeader(active, who, health.today);
  document.body.dataset.role = who.role;
  return { ...who, today: health.today };
}

function drawHeader(active, who, today) {
  const header = document.getElementById("site-header");
  const links = NAV.filter(([, , , action]) => !action || can(who.role, action)).map(([key, label, href]) =>
    el("li", {}, el("a", { href, "aria-current": key === active ? "page" : null }, label)),
  );
  clear(
    header,
    el("a", { class: "brand", href: HOME }, "vein2vein"),
    el("nav", { "aria-label": "Pages" }, el("ul", {}, links)),
    el(
      "div",
      { class: "who" },
      el("span", { title: "planning date" }, `Today ${longDay(today)}`),
      el("span", { class: "who-name" }, `${who.name} (${who.role.replace("_", " ")})`),
      el("button", { type: "button", class: "link-button", onclick: signOut }, "Sign out"),
    ),
  );
}

/** Run a page's main function and show anything that goes wrong in the page's alert box. */
export function run(main) {
  main().catch((error) => {
    const box = document.getElementById("page-error");
    if (box) showError(box, error);
    console.error(error);
  });
}
