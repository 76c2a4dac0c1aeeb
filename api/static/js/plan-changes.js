// Plan changes: the last nightly re-solve (GET /jobs/nightly/report): the run, then the
// unschedulable patients with their reasons, then every patient's moved, added or removed steps
// in the order the API gives (unschedulable first). Admins can start a run and see the history.

import { api, busy, clear, dayRange, el, longDay, run, showError, showSuccess, startPage, stepName, timestamp } from "./common.js";

let who;

function badge(text) {
  return el("span", { class: `badge ${String(text).replace(/ /g, "-")}` }, text);
}

function runFacts(nightly) {
  const r = nightly.run;
  const pairs = [
    ["Night of", longDay(r.run_date)],
    ["Status", badge(r.status)],
    ["Started by", r.trigger],
    ["Started", timestamp(r.started_at)],
    ["Finished", r.finished_at ? timestamp(r.finished_at) : "still running"],
    ["Plan version", r.plan_version ?? "none written"],
    ["Bookings moved", String(r.bookings_moved)],
  ];
  return el("dl", { class: "facts", id: "run-facts" }, pairs.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
}

function unschedulableList(report) {
  if (!(report.unschedulable ?? []).length) return el("p", { id: "unschedulable-none", class: "muted" }, "Every patient has a schedule.");
  return el(
    "div",
    { class: "message error", id: "unschedulable" },
    el("h2", { style: { marginTop: 0 } }, `Unschedulable (${report.unschedulable.length})`),
    el(
      "ul",
      {},
      report.unschedulable.map((u) => el("li", { dataset: { patient: u.patient } }, el("a", { href: `/ui/patients/${encodeURIComponent(u.patient)}` }, u.patient), `: ${u.reason}`)),
    ),
  );
}

function changeText(c) {
  if (c.change === "added") return dayRange(c.to.first_day, c.to.last_day);
  if (c.change === "removed") return `was ${dayRange(c.from.first_day, c.from.last_day)}`;
  return `${dayRange(c.from.first_day, c.from.last_day)} → ${dayRange(c.to.first_day, c.to.last_day)}`;
}

function changesTable(report) {
  if (!report.patients.length) return el("p", { class: "muted", id: "no-changes" }, "No booking changed.");
  const unschedulable = new Set(report.unschedulable.map((u) => u.patient));
  const rows = [];
  for (const p of report.patients) {
    p.changes.forEach((c, i) => {
      rows.push(
        el(
          "tr",
          { class: unschedulable.has(p.patient) ? "unschedulable" : null, dataset: { patient: p.patient } },
          i === 0
            ? el("th", { scope: "rowgroup", rowspan: p.changes.length }, el("a", { href: `/ui/patients/${encodeURIComponent(p.patient)}` }, p.patient), unschedulable.has(p.patient) ? el("div", {}, badge("unschedulable")) : null)
            : null,
          el("td", {}, stepName(c.step)),
          el("td", {}, badge(c.change)),
          el("td", {}, changeText(c)),
          el("td", {}, c.why || ""),
        ),
      );
    });
  }
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "data", id: "plan-changes" },
      el("caption", { class: "visually-hidden" }, "Changed bookings per patient, unschedulable patients first"),
      el("thead", {}, el("tr", {}, ["Patient", "Step", "Change", "Dates", "Why"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows),
    ),
  );
}

async function adminPanel(onRun) {
  const box = el("div", { class: "message", role: "status", hidden: true });
  const button = el("button", { type: "button", class: "primary", id: "run-now" }, "Run the re-solve now");
  button.addEventListener("click", async () => {
    try {
      const started = await busy(button, "Starting…", () => api("POST", "/jobs/nightly/runs"));
      showSuccess(box, `Run ${started.id ?? ""} started (${started.status ?? "running"}). This page refreshes when it ends.`);
      await busy(button, "Running…", () => waitFor(started.id));
      await onRun();
    } catch (error) {
      showError(box, error);
    }
  });
  let history = el("p", { class: "muted" }, "No runs yet.");
  let schedule = null;
  try {
    const runs = await api("GET", "/jobs/nightly/runs");
    const list = Array.isArray(runs) ? runs : runs.runs || [];
    if (runs.schedule) {
      schedule = el(
        "p",
        { id: "schedule" },
        runs.enabled === false ? `The nightly schedule (${runs.schedule}) is switched off: runs start only from here.` : `Every night at ${runs.schedule}; next run ${runs.next_run ? timestamp(runs.next_run) : "not scheduled"}.`,
      );
    }
    if (list.length) {
      history = el(
        "div",
        { class: "table-scroll" },
        el(
          "table",
          { class: "data", id: "run-history" },
          el("thead", {}, el("tr", {}, ["Run", "Night of", "Started by", "Status", "Plan version", "Moved", "Started", "Finished"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, list.slice(0, 20).map((r) => el("tr", {}, el("td", {}, String(r.id)), el("td", {}, longDay(r.run_date)), el("td", {}, r.trigger), el("td", {}, badge(r.status)), el("td", {}, r.plan_version ?? ""), el("td", {}, String(r.bookings_moved ?? "")), el("td", {}, timestamp(r.started_at)), el("td", {}, timestamp(r.finished_at))))),
        ),
      );
    }
  } catch (error) {
    history = el("p", { class: "muted" }, `The run history cannot be read: ${error.message}`);
  }
  return el("section", { class: "panel", "aria-labelledby": "admin-title", id: "admin-panel" }, el("h2", { id: "admin-title" }, "Runs (admin)"), schedule, el("div", { class: "summary-line" }, button), box, el("h3", {}, "History"), history);
}

/** Poll the run history until run `id` is no longer running (at most about five minutes). */
async function waitFor(id) {
  for (let i = 0; i < 300; i += 1) {
    const runs = await api("GET", "/jobs/nightly/runs");
    const list = Array.isArray(runs) ? runs : runs.runs || [];
    const found = list.find((r) => r.id === id);
    if (!found || found.status !== "running") return found;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return null;
}

async function load() {
  const area = document.getElementById("report-area");
  let nightly;
  try {
    nightly = await api("GET", "/jobs/nightly/report");
  } catch (error) {
    if (error.status !== 404) throw error;
    clear(area, el("div", { class: "empty", id: "no-report" }, el("h2", { style: { marginTop: 0 } }, "No nightly run yet"), el("p", {}, "The re-solve runs every night; its changes to the plan will be listed here.")));
    return;
  }
  const report = nightly.report;
  clear(
    area,
    el("section", { class: "panel", "aria-labelledby": "run-title" }, el("h2", { id: "run-title" }, "Last nightly run"), runFacts(nightly)),
    report && !Array.isArray(report.patients)
      ? el("p", { id: "report-summary", class: "message error" }, report.summary || "This run has no report.") // a failed run: no diff
      : report
      ? [
          el("p", { id: "report-summary" }, report.summary || ""),
          el("p", { class: "muted" }, `Plan version ${report.from_version} → ${report.to_version ?? "kept"}, ${report.bookings_moved} bookings moved.`),
          unschedulableList(report),
          el("h2", {}, "Changed bookings"),
          changesTable(report),
        ]
      : el("p", { class: "muted" }, "This run has no report (yet)."),
  );
}

async function main() {
  who = await startPage("plan-changes");
  clear(document.getElementById("page"), el("div", { id: "report-area" }), el("div", { id: "admin-area" }));
  await load();
  if (who.role === "admin") {
    const drawAdmin = async () => clear(document.getElementById("admin-area"), await adminPanel(async () => { await load(); await drawAdmin(); }));
    await drawAdmin();
  }
}

run(main);
