// Worklist: what needs doing from today to the next few working days (GET /worklist), the first
// page after signing in. A coordinator's view and a lab manager's view (the steps each records);
// both show products awaited, conditioning at risk and patients moved since their dates were last
// confirmed. Every item links to the patient's page, at the step concerned.

import { addDays, api, clear, dayRange, daysBetween, el, hideMessage, longDay, run, showError, startPage, stepName, timestamp, weekday } from "./common.js";

const VIEWS = [
  ["coordinator", "Coordinator"],
  ["lab_manager", "Lab manager"],
];

function patientLink(patient, step) {
  const href = `/ui/patients/${encodeURIComponent(patient)}${step ? `#step-${encodeURIComponent(step)}` : ""}`;
  return el("a", { href }, patient);
}

function badge(text, cls = text) {
  return el("span", { class: `badge ${cls.replace(/ /g, "-")}` }, text);
}

function bookingBadge(status) {
  return status === "planned" ? badge("planned, not confirmed", "planned") : badge(status);
}

function table(id, caption, headers, rows) {
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "data stack-on-tablet", id },
      el("caption", { class: "visually-hidden" }, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows),
    ),
  );
}

function section(id, title, count, help, body, flagged = false) {
  return el(
    "section",
    { class: `panel${flagged ? " flagged" : ""}`, id, "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title` }, title, " ", el("span", { class: "count" }, `(${count})`)),
    help ? el("p", { class: "muted" }, help) : null,
    body,
  );
}

// -- due, by day ------------------------------------------------------------------------------
function dueSection(list) {
  const byDay = new Map();
  for (const item of list.due) {
    if (!byDay.has(item.first_day)) byDay.set(item.first_day, []);
    byDay.get(item.first_day).push(item);
  }
  const groups = [];
  for (let day = list.today; day <= list.until; day = addDays(day, 1)) {
    const items = byDay.get(day) || [];
    const weekend = ["Sat", "Sun"].includes(weekday(day));
    if (!items.length && weekend) continue; // a weekend with nothing booked is not a working day here
    const title = day === list.today ? `Today, ${longDay(day)}` : longDay(day);
    groups.push(
      el(
        "div",
        { class: "day-group", dataset: { day } },
        el("h3", { id: `due-${day}` }, title, " ", el("span", { class: "count" }, `(${items.length})`)),
        items.length
          ? table(
              `due-table-${day}`,
              `Due from ${longDay(day)}`,
              ["Patient", "Step", "Booked", "Booking"],
              items.map((i) =>
                el(
                  "tr",
                  { dataset: { patient: i.patient, step: i.step } },
                  el("th", { scope: "row" }, patientLink(i.patient, i.step)),
                  el("td", {}, stepName(i.step), i.kind !== i.step ? el("div", { class: "muted" }, i.kind) : null),
                  el("td", {}, dayRange(i.first_day, i.last_day)),
                  el("td", {}, bookingBadge(i.booking_status)),
                ),
              ),
            )
          : el("p", { class: "muted" }, "Nothing due."),
      ),
    );
  }
  return section(
    "due",
    `Due today and to ${longDay(list.until)}`,
    list.due.length,
    "Steps starting today and on the next working days, not yet recorded.",
    groups,
  );
}

// -- overdue to record ------------------------------------------------------------------------
function overdueSection(list) {
  const body = list.overdue.length
    ? table(
        "overdue-table",
        "Steps whose first day has passed with no record",
        ["Patient", "Step", "Booked", "Overdue", "Booking"],
        list.overdue.map((i) => {
          const late = daysBetween(i.first_day, list.today);
          return el(
            "tr",
            { class: "overdue", dataset: { patient: i.patient, step: i.step } },
            el("th", { scope: "row" }, patientLink(i.patient, i.step)),
            el("td", {}, stepName(i.step), i.kind !== i.step ? el("div", { class: "muted" }, i.kind) : null),
            el("td", {}, dayRange(i.first_day, i.last_day)),
            el("td", {}, badge("overdue"), ` ${late} day${late === 1 ? "" : "s"} since it was due to start`),
            el("td", {}, bookingBadge(i.booking_status)),
          );
        }),
      )
    : el("p", { class: "muted", id: "overdue-none" }, "Nothing is overdue: every step that should have started is recorded.");
  return section(
    "overdue",
    "Overdue to record",
    list.overdue.length,
    "Their booked day has passed and nobody has recorded what happened: a step is never assumed done. Record it on the patient's page.",
    body,
    list.overdue.length > 0,
  );
}

// -- products awaited -------------------------------------------------------------------------
function awaitedSection(list) {
  const body = list.products_awaited.length
    ? table(
        "awaited-table",
        "Products collected and not yet released",
        ["Patient", "Product", "Where it is", "Expected back", "Release booking"],
        list.products_awaited.map((p) => {
          const expected = p.state.expected_on;
          const release = p.next_step;
          const late = expected && release && expected > release.first_day;
          const passed = expected && expected < list.today;
          return el(
            "tr",
            { class: late || passed ? "overdue" : null, dataset: { patient: p.patient, product: p.id } },
            el("th", { scope: "row" }, patientLink(p.patient)),
            el("td", {}, `Product ${p.id}`, el("div", { class: "muted" }, p.din ? `DIN ${p.din}` : "no DIN recorded"), el("div", { class: "muted" }, `from ${stepName(p.collection_step)}`)),
            el("td", {}, p.state.summary),
            el("td", { class: "expected" }, expected ? longDay(expected) : "no date given", passed ? el("div", {}, badge("date passed", "late")) : null),
            el(
              "td",
              { class: "release" },
              release ? `${stepName(release.step)} ${longDay(release.first_day)}` : "no release booked",
              late ? el("div", {}, badge("expected after it", "late")) : null,
            ),
          );
        }),
      )
    : el("p", { class: "muted", id: "awaited-none" }, "No product is awaited.");
  return section(
    "awaited",
    "Products awaited",
    list.products_awaited.length,
    "Collected and not yet released at the centre: where each is, when it is expected back and the release booking it should meet.",
    body,
  );
}

// -- conditioning at risk ---------------------------------------------------------------------
function atRiskSection(list) {
  const body = list.at_risk.length
    ? table(
        "at-risk-table",
        "Conditioning booked soon whose product is not released",
        ["Patient", "Conditioning", "Why it is at risk", "Product expected back"],
        list.at_risk.map((i) =>
          el(
            "tr",
            { class: "overdue", dataset: { patient: i.patient, step: i.step } },
            el("th", { scope: "row" }, patientLink(i.patient, i.step)),
            el("td", {}, `${stepName(i.step)} from ${longDay(i.first_day)}`, el("div", {}, badge("at risk"))),
            el("td", { class: "why" }, i.why),
            el("td", {}, i.expected_on ? longDay(i.expected_on) : "no date given"),
          ),
        ),
      )
    : el("p", { class: "muted", id: "at-risk-none" }, "No conditioning is at risk: every one booked soon has its product released.");
  return section(
    "at-risk",
    "Conditioning at risk",
    list.at_risk.length,
    "Conditioning cannot be recorded as started until its product is released at the centre.",
    body,
    list.at_risk.length > 0,
  );
}

// -- patients moved since their dates were confirmed ------------------------------------------
function moveText(m) {
  const from = dayRange(m.from_first_day, m.from_last_day || m.from_first_day);
  if (!m.to_first_day) return `${stepName(m.step)}: ${from}, taken out of the plan`;
  return `${stepName(m.step)}: ${from} → ${dayRange(m.to_first_day, m.to_last_day || m.to_first_day)}`;
}

function movedSection(list) {
  const body = list.moved.length
    ? el(
        "ul",
        { class: "moved-list", id: "moved-list" },
        list.moved.map((patient) =>
          el(
            "li",
            { dataset: { patient: patient.patient } },
            patientLink(patient.patient),
            el(
              "ul",
              {},
              patient.moves.map((event) => {
                const details = event.details || {};
                const cause = details.cause || details.why || "";
                return el(
                  "li",
                  {},
                  event.at ? `${timestamp(event.at)}: ` : "",
                  cause ? el("strong", {}, cause) : "moved",
                  (details.moves || []).length ? el("ul", {}, details.moves.map((m) => el("li", {}, moveText(m)))) : null,
                );
              }),
            ),
          ),
        ),
      )
    : el("p", { class: "muted", id: "moved-none" }, "No patient has moved since their dates were last confirmed.");
  return section("moved", "Moved since their dates were confirmed", list.moved.length, "Tell these patients their new dates.", body);
}

// -- the page ---------------------------------------------------------------------------------
function viewSwitch(current, onChange) {
  return el(
    "form",
    { id: "view-form", class: "panel", "aria-label": "Worklist view", onsubmit: (e) => e.preventDefault() },
    el(
      "fieldset",
      { class: "worklist-view" },
      el("legend", {}, "View"),
      VIEWS.map(([value, label]) =>
        el(
          "label",
          {},
          el("input", { type: "radio", name: "view", value, checked: value === current, onchange: () => onChange(value) }),
          label,
        ),
      ),
    ),
  );
}

async function main() {
  const who = await startPage("worklist");
  const asked = new URLSearchParams(location.search).get("role");
  let role = VIEWS.some(([v]) => v === asked) ? asked : who.role === "lab_manager" ? "lab_manager" : "coordinator";
  const summary = el("p", { id: "worklist-summary", role: "status" });
  const sections = el("div", { id: "worklist" });
  let latest = 0;

  const load = async () => {
    const mine = ++latest;
    const list = await api("GET", `/worklist?role=${role}`);
    if (mine !== latest) return; // a newer view was asked for meanwhile
    const view = VIEWS.find(([v]) => v === list.role)[1].toLowerCase();
    summary.textContent = `The ${view}'s worklist for ${longDay(list.today)}, looking ahead to ${longDay(list.until)}.`;
    document.body.dataset.view = list.role;
    clear(sections, dueSection(list), overdueSection(list), awaitedSection(list), atRiskSection(list), movedSection(list));
  };

  clear(
    document.getElementById("page"),
    viewSwitch(role, (value) => {
      role = value;
      const url = new URL(location.href);
      url.searchParams.set("role", value);
      history.replaceState(null, "", url);
      const box = document.getElementById("page-error");
      load()
        .then(() => hideMessage(box))
        .catch((error) => showError(box, error));
    }),
    summary,
    sections,
  );
  await load();
}

run(main);
