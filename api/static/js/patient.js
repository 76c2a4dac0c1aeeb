// One patient: a Gantt timeline of every step, the reason each date is what it is, the events,
// and (coordinators and admins only) the actions: propose, confirm, defer, report out of
// specification, withdraw (or, for a withdrawn patient, reinstate). Everything goes through the API; the page redraws from the API's answers.

import {
  addDays,
  api,
  busy,
  can,
  clear,
  dayRange,
  daysBetween,
  download,
  el,
  hideMessage,
  longDay,
  parseDay,
  run,
  shortDay,
  showError,
  showSuccess,
  startPage,
  stepName,
  timestamp,
} from "./common.js";
import { editReferralSection } from "./referral-form.js";
import { eventDetails, productsSection, replanNodes, stepsTable } from "./recording.js";

const patientId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
let who;
let timeline;
let preview = null; // {rank, bookings} of a proposal option drawn on the timeline

// -- facts ------------------------------------------------------------------------------------
function facts(patient) {
  const pairs = [
    ["Pathway", patient.pathway],
    ["Status", patient.status],
    ["Urgency", patient.urgency],
    ["Centre", patient.centre],
    ["Approved", longDay(patient.approval_date)],
    ["Earliest start", patient.earliest_start ? longDay(patient.earliest_start) : "approval"],
    ["Target infusion", patient.target_infusion_date ? longDay(patient.target_infusion_date) : "none"],
    ["Blackouts", patient.blackouts.length ? patient.blackouts.map((b) => dayRange(b.first_day, b.last_day)).join("; ") : "none"],
  ];
  return el("dl", { class: "facts", id: "facts" }, pairs.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", { id: k === "Status" ? "fact-status" : null }, v))));
}

// -- the Gantt --------------------------------------------------------------------------------
function gantt(steps, today) {
  const proposed = new Map((preview ? preview.bookings : []).map((b) => [b.step, b]));
  const days = [];
  for (const s of steps) if (s.first_day) days.push(s.first_day, s.last_day);
  for (const b of proposed.values()) days.push(b.first_day, b.last_day);
  if (!days.length) return el("p", { class: "empty", id: "gantt-empty" }, "No step is booked yet.");
  days.sort();
  const start = addDays(days[0] < today ? days[0] : today, -1);
  const last = days[days.length - 1];
  const end = addDays(last > today ? last : today, 2);
  const span = daysBetween(start, end);
  const at = (iso) => `${(daysBetween(start, iso) / span) * 100}%`;
  const width = (a, b) => `${((daysBetween(a, b) + 1) / span) * 100}%`;

  // one tick per Monday (every second one on long timelines)
  const ticks = [];
  const step = span > 120 ? 14 : 7;
  let monday = start;
  while (parseDay(monday).getUTCDay() !== 1) monday = addDays(monday, 1);
  for (let d = monday; d < end; d = addDays(d, step)) ticks.push(el("span", { class: "gantt-tick", style: { left: at(d) } }, shortDay(d)));

  const rows = steps.map((s) => {
    const bars = [];
    const both = s.first_day && proposed.has(s.step);
    if (s.first_day) {
      bars.push(
        el(
          "div",
          {
            class: `gantt-bar ${s.status.replace(/ /g, "-")}`,
            style: { left: at(s.first_day), width: width(s.first_day, s.last_day), bottom: both ? "52%" : null },
            title: `${stepName(s.step)}: ${dayRange(s.first_day, s.last_day)} (${s.status})`,
          },
          `${shortDay(s.first_day)}`,
        ),
      );
    }
    const p = proposed.get(s.step);
    if (p) {
      bars.push(
        el(
          "div",
          {
            class: "gantt-bar proposed",
            style: { left: at(p.first_day), width: width(p.first_day, p.last_day), top: both ? "52%" : null },
            title: `${stepName(s.step)}: ${dayRange(p.first_day, p.last_day)} (proposed, option ${preview.rank})`,
          },
          shortDay(p.first_day),
        ),
      );
    }
    return el("div", { class: "gantt-row", dataset: { step: s.step } }, el("div", { class: "gantt-label" }, stepName(s.step)), el("div", { class: "gantt-track" }, bars));
  });
  const todayMark = today >= start && today <= end ? el("div", { class: "gantt-today", style: { left: at(today) } }, el("span", { class: "gantt-today-label" }, "today")) : null;
  const booked = steps.filter((s) => s.first_day);
  const summaryText = `Timeline: ${booked.length} of ${steps.length} steps booked, from ${longDay(booked.length ? booked[0].first_day : days[0])}${preview ? `; option ${preview.rank} of the proposal drawn hatched` : ""}. The table below gives every date and its reason.`;
  return el(
    "div",
    { class: "gantt", id: "gantt", role: "img", "aria-label": summaryText },
    el("div", { class: "gantt-row gantt-axis", "aria-hidden": "true" }, el("div", { class: "gantt-label" }, ""), el("div", { class: "gantt-track" }, ticks, todayMark)),
    rows.map((row) => {
      const track = row.querySelector(".gantt-track");
      if (todayMark) track.append(el("div", { class: "gantt-today", style: { left: at(today) } }));
      return row;
    }),
  );
}

function ganttLegend() {
  return el(
    "ul",
    { class: "legend", "aria-label": "Timeline legend" },
    [["done", "done"], ["in-progress", "in progress"], ["due", "due"], ["overdue", "overdue"], ["confirmed", "confirmed"], ["planned", "planned (not confirmed)"], ["proposed", "proposed"]].map(([cls, text]) =>
      el("li", {}, el("span", { class: `swatch gantt-bar ${cls}`, style: { position: "static", display: "inline-block" }, "aria-hidden": "true" }), text),
    ),
  );
}

function eventsTable(events) {
  if (!events.length) return el("p", { class: "muted" }, "No events.");
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "data", id: "events" },
      el("thead", {}, el("tr", {}, ["When", "Event", "By", "Details"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, [...events].reverse().map((e) => el("tr", {}, el("td", {}, timestamp(e.at)), el("td", {}, e.kind.replace(/_/g, " ")), el("td", {}, e.by), el("td", {}, eventDetails(e.details))))),
    ),
  );
}

function drawTimeline() {
  const area = document.getElementById("timeline-area");
  clear(
    area,
    timeline.unschedulable
      ? el("div", { class: "message error", id: "unschedulable" }, el("strong", {}, "Unschedulable: "), timeline.unschedulable.reason || "no schedule fits")
      : null,
    ganttLegend(),
    gantt(timeline.steps, who.today),
    el("h2", {}, "Steps: what happened and why each date is what it is"),
    stepsTable(timeline, recordingContext()),
    el("h2", { id: "products-title" }, "Products and chain of custody"),
    productsSection(timeline, recordingContext()),
    el("h2", {}, "Events"),
    eventsTable(timeline.events),
  );
  document.getElementById("status-line").textContent = `${timeline.pathway} · ${timeline.status}`;
  document.getElementById("fact-status").textContent = timeline.status; // a confirm or a release changes it
}

// -- recording what happened (recording.js) ---------------------------------------------------
function recordingContext() {
  return { who, patientId, today: who.today, after: afterRecord };
}

/** After a record: the answer's timeline redrawn, what was recorded and the re-plan it caused said. */
function afterRecord(answer, said) {
  timeline = answer.timeline;
  drawTimeline();
  const box = document.getElementById("record-message");
  showSuccess(box, said);
  box.append(...replanNodes(answer, patientId));
  box.focus();
}

/** Coordinators' "Edit referral" panel (referral-form.js), after the actions: proposing stays the first action. */
function editReferralPanel(patient, catalogue) {
  if (!catalogue || patient.status === "withdrawn") return null;
  return el(
    "section",
    { class: "panel", "aria-label": "Edit referral" },
    editReferralSection(catalogue, patient, async (saved) => {
      document.getElementById("facts").replaceWith(facts(saved));
      timeline = await api("GET", `/patients/${encodeURIComponent(patientId)}/timeline`); // the rules' reasons may have changed
      drawTimeline();
    }),
  );
}

// -- actions ----------------------------------------------------------------------------------
function showProposal(proposal, note) {
  const area = document.getElementById("proposal-area");
  preview = null;
  if (!proposal) {
    clear(area, note ? el("p", { class: "muted" }, note) : null);
    drawTimeline();
    return;
  }
  if (!proposal.options.length) {
    clear(area, el("div", { class: "message error", id: "proposal-none" }, el("strong", {}, "No schedule found: "), proposal.reason || "nothing fits in the horizon"));
    drawTimeline();
    return;
  }
  preview = { rank: proposal.options[0].rank, bookings: proposal.options[0].bookings };
  const cards = proposal.options.map((option) => {
    const confirm = el("button", { type: "button", class: "primary", dataset: { option: option.rank } }, `Confirm option ${option.rank}`);
    confirm.addEventListener("click", () => confirmOption(proposal, option, confirm));
    const show = el("button", { type: "button", class: "secondary" }, "Show on timeline");
    show.addEventListener("click", () => {
      preview = { rank: option.rank, bookings: option.bookings };
      drawTimeline();
    });
    return el(
      "article",
      { class: "option", "aria-labelledby": `option-${option.rank}-title` },
      el("h4", { id: `option-${option.rank}-title` }, `Option ${option.rank}: ${option.kind === "fast" ? "moves nobody" : "alternative"}`),
      el("p", {}, el("strong", {}, "Infusion "), longDay(option.infusion)),
      el("ul", {}, option.bookings.map((b) => el("li", {}, `${stepName(b.step)}: ${dayRange(b.first_day, b.last_day)}`))),
      option.moves.length
        ? el(
            "div",
            {},
            el("p", {}, el("strong", {}, `Moves ${option.moves.length} other booking${option.moves.length === 1 ? "" : "s"}`), ` (${option.disruption_days} days in all):`),
            el("ul", {}, option.moves.map((m) => el("li", {}, `${m.patient} ${stepName(m.step)}: ${shortDay(m.from_first_day)} → ${shortDay(m.to_first_day)}`))),
          )
        : el("p", { class: "muted" }, "Moves no other patient."),
      el("div", { class: "summary-line" }, confirm, show),
    );
  });
  clear(
    area,
    el("h3", { id: "proposal-title", tabindex: "-1" }, "Proposed schedules"),
    note ? el("p", { class: "muted" }, note) : null,
    el("div", { class: "options", id: "options" }, cards),
  );
  drawTimeline();
}

async function confirmOption(proposal, option, button) {
  const box = document.getElementById("action-message");
  try {
    const answer = await busy(button, "Confirming…", () => api("POST", `/proposals/${proposal.id}/confirm`, { option: option.rank }));
    timeline = answer.timeline;
    showProposal(null);
    showSuccess(box, `Confirmed option ${option.rank}: plan version ${answer.plan_version}, infusion on ${longDay(option.infusion)}.`);
    box.focus();
  } catch (error) {
    showError(box, error); // 409: the plan changed since the proposal; the message names the resource and day
    box.focus();
  }
}

async function propose(button) {
  const box = document.getElementById("action-message");
  hideMessage(box);
  try {
    const proposal = await busy(button, "Proposing…", () => api("POST", `/patients/${encodeURIComponent(patientId)}/proposals`));
    showProposal(proposal);
    document.getElementById("proposal-title")?.focus();
  } catch (error) {
    showError(box, error);
  }
}

/** A form that POSTs its fields and then shows the new timeline and the new proposal the API returns
 * (``after``, if given, runs first: e.g. redrawing the actions for the patient's new status). */
function releaseForm({ id, title, help, path, fields, submit, done, after }) {
  const box = el("div", { class: "message error", role: "alert", hidden: true });
  const form = el("form", { id, class: "inline panel", novalidate: true, "aria-labelledby": `${id}-title` }, el("h3", { id: `${id}-title` }, title), el("p", { class: "muted" }, help), fields, el("button", { type: "submit", class: "secondary" }, submit), box);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const input of form.querySelectorAll("input, select")) body[input.name] = input.value === "" && input.type === "date" ? null : input.value;
    try {
      const answer = await busy(form.querySelector("button[type=submit]"), "Working…", () => api("POST", `/patients/${encodeURIComponent(patientId)}/${path}`, body));
      hideMessage(box, form);
      form.reset();
      timeline = answer.timeline;
      if (after) after();
      showProposal(answer.proposal, answer.proposal_error || null);
      showSuccess(document.getElementById("action-message"), done(answer));
      document.getElementById("action-message").focus();
    } catch (error) {
      showError(box, error, form); // a 422 marks the field the API names
    }
  });
  return form;
}

function field(id, label, input) {
  return el("div", { class: "field" }, el("label", { for: id }, label), input);
}

function actions() {
  if (!can(who.role, "propose")) {
    return el("p", { class: "muted", id: "no-actions" }, `Coordinators propose, confirm, defer and report out-of-specification products; as a ${who.role.replace("_", " ")} you record what happened in the steps and products below.`);
  }
  if (timeline.status === "withdrawn") return withdrawnActions();
  const proposeButton = el("button", { type: "button", class: "primary", id: "propose" }, "Propose a schedule");
  proposeButton.addEventListener("click", () => propose(proposeButton));
  const defer = releaseForm({
    id: "defer-form",
    title: "Defer",
    help: "The patient cannot attend before a date: bookings not started are released and a new proposal is made.",
    path: "defer",
    fields: [
      field("defer-from", "Not before", el("input", { id: "defer-from", name: "from_date", type: "date", required: true })),
      field("defer-reason", "Reason", el("input", { id: "defer-reason", name: "reason", type: "text", maxlength: "500", required: true })),
    ],
    submit: "Defer",
    done: (a) => `Deferred (plan version ${a.plan_version ?? "unchanged"}). Choose a new schedule below.`,
  });
  const oos = releaseForm({
    id: "oos-form",
    title: "Report out of specification",
    help: "The product failed its release: collect again (re-apheresis) or make it again from retained cells (re-manufacture).",
    path: "out-of-specification",
    fields: [
      field("oos-redo", "Redo", el("select", { id: "oos-redo", name: "redo" }, el("option", { value: "re-apheresis" }, "re-apheresis"), el("option", { value: "re-manufacture" }, "re-manufacture"))),
      field("oos-reason", "Reason", el("input", { id: "oos-reason", name: "reason", type: "text", maxlength: "500", required: true })),
    ],
    submit: "Report out of specification",
    done: (a) => `Out of specification recorded (plan version ${a.plan_version ?? "unchanged"}). Choose a new schedule below.`,
  });
  return el(
    "div",
    { id: "actions" },
    el("div", { class: "summary-line" }, proposeButton),
    el("div", { id: "proposal-area" }),
    el("div", { class: "actions-grid" }, defer, oos, withdrawForm()),
  );
}

// -- withdrawal and reinstatement -------------------------------------------------------------
/** "withdrawn" or "deceased", as the patient's latest withdrawal event says. */
function withdrawalCause() {
  const withdrawal = [...timeline.events].reverse().find((e) => e.kind === "withdrawal");
  return (withdrawal && withdrawal.details.cause) || "withdrawn";
}

function drawActions() {
  clear(document.getElementById("actions-body"), actions());
}

function withdrawForm() {
  return releaseForm({
    id: "withdraw-form",
    title: "Withdraw",
    help: "The patient leaves the pathway: bookings from today on are released; what has happened stays in the history.",
    path: "withdraw",
    fields: [
      field("withdraw-cause", "Cause", el("select", { id: "withdraw-cause", name: "cause" }, el("option", { value: "withdrawn" }, "withdrawn"), el("option", { value: "deceased" }, "deceased"))),
      field("withdraw-reason", "Reason", el("input", { id: "withdraw-reason", name: "reason", type: "text", maxlength: "500", required: true })),
    ],
    submit: "Withdraw",
    done: (a) => `Recorded as ${withdrawalCause()} (plan version ${a.plan_version ?? "unchanged"}).`,
    after: drawActions,
  });
}

/** A withdrawn patient: no action but reinstating them; none at all for a deceased one. */
function withdrawnActions() {
  if (withdrawalCause() === "deceased") {
    return el("div", { id: "actions" }, el("p", { class: "muted", id: "no-actions" }, "The patient is recorded as deceased: nothing more can be planned."), el("div", { id: "proposal-area" }));
  }
  const reinstate = releaseForm({
    id: "reinstate-form",
    title: "Reinstate",
    help: "The patient is referred again: steps done stay done, what the withdrawal interrupted is planned again.",
    path: "reinstate",
    fields: [field("reinstate-reason", "Reason", el("input", { id: "reinstate-reason", name: "reason", type: "text", maxlength: "500", required: true }))],
    submit: "Reinstate",
    done: () => "Reinstated. Choose a new schedule below.",
    after: drawActions,
  });
  return el("div", { id: "actions" }, el("p", { class: "muted", id: "withdrawn-note" }, "The patient is withdrawn: reinstating them is the only action."), el("div", { id: "proposal-area" }), reinstate);
}

async function main() {
  who = await startPage("patients");
  const [patient, loaded, catalogue] = await Promise.all([
    api("GET", `/patients/${encodeURIComponent(patientId)}`),
    api("GET", `/patients/${encodeURIComponent(patientId)}/timeline`),
    can(who.role, "edit-referral") ? api("GET", "/catalogue") : null,
  ]);
  timeline = loaded;
  document.title = `${patient.id} · vein2vein`;
  clear(document.getElementById("page-title"), `Patient ${patient.id}`);
  const calendar = el("button", { type: "button", class: "secondary" }, "Download calendar (.ics)");
  calendar.addEventListener("click", () => download(`/patients/${encodeURIComponent(patientId)}/calendar.ics`, `${patientId}.ics`).catch((e) => showError(document.getElementById("action-message"), e)));
  clear(
    document.getElementById("page"),
    el("p", { id: "status-line", class: "muted" }),
    el("section", { class: "panel", "aria-label": "Referral" }, facts(patient)),
    el("div", { id: "action-message", class: "message", role: "status", tabindex: "-1", hidden: true }),
    el("section", { class: "panel", "aria-labelledby": "actions-title" }, el("h2", { id: "actions-title" }, "Actions"), el("div", { id: "actions-body" }, actions())),
    editReferralPanel(patient, catalogue),
    el("section", { class: "panel", "aria-labelledby": "timeline-title" }, el("div", { class: "summary-line" }, el("h2", { id: "timeline-title", style: { margin: 0 } }, "Timeline"), calendar), el("div", { id: "record-message", class: "message", role: "status", tabindex: "-1", hidden: true }), el("div", { id: "timeline-area" })),
  );
  drawTimeline();
  // a link to a step (from the worklist: #step-conditioning) lands on it once it is drawn
  if (location.hash) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
}

run(main);
