// Patients: the referrals a page at a time (by id), with pathway, status, next step and infusion day.
// GET /patients filters and pages in the database: the status and the start of the id are sent as
// query parameters, "Show more" asks for the page after the last one shown (`next_after`).

import { api, busy, clear, el, hideMessage, longDay, run, showError, startPage, stepName } from "./common.js";

const PAGE = 50;
const STATUSES = ["unschedulable", "referred", "scheduled", "withdrawn"];

function statusBadge(status) {
  return el("span", { class: `badge ${status.replace(/ /g, "-")}` }, status);
}

function nextStepText(p, today) {
  const next = p.next_step;
  if (next) return `${stepName(next.step)}: ${next.first_day <= today ? "in progress" : longDay(next.first_day)}${next.status === "planned" ? " (planned, not confirmed)" : ""}`;
  if (p.status === "referred") return "propose a schedule";
  if (p.status === "unschedulable") return "no schedule found";
  return "nothing ahead";
}

function row(p, today) {
  return el(
    "tr",
    { class: p.status === "unschedulable" ? "unschedulable" : null, dataset: { patient: p.id, status: p.status } },
    el("th", { scope: "row" }, el("a", { href: `/ui/patients/${encodeURIComponent(p.id)}` }, p.id)),
    el("td", {}, p.pathway),
    el("td", {}, p.urgency),
    el("td", {}, statusBadge(p.status)),
    el("td", { class: "next-step" }, nextStepText(p, today)),
    el("td", {}, p.infusion ? longDay(p.infusion) : ""),
  );
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  return `/patients?${search}`;
}

async function main() {
  const who = await startPage("patients");
  const statusFilter = el("select", { id: "status-filter", name: "status" }, el("option", { value: "" }, "all"), STATUSES.map((s) => el("option", { value: s }, s)));
  const search = el("input", { id: "id-filter", name: "q", type: "search", placeholder: "e.g. R-004", autocomplete: "off", maxlength: "32" });
  const form = el(
    "form",
    { id: "patient-filters", class: "panel inline", role: "search", "aria-label": "Filter patients", onsubmit: (e) => e.preventDefault() },
    el("div", { class: "field" }, el("label", { for: "status-filter" }, "Status"), statusFilter),
    el("div", { class: "field wide" }, el("label", { for: "id-filter" }, "Patient id starts with"), search),
  );
  const message = el("div", { id: "filter-message", class: "message error", role: "alert", hidden: true });
  const attention = el("p", { id: "unschedulable-note" });
  const count = el("p", { id: "patient-count", class: "muted", role: "status" });
  const tbody = el("tbody", {});
  const more = el("button", { type: "button", id: "more", class: "secondary", hidden: true }, `Show ${PAGE} more`);

  let shown = 0;
  let nextAfter = null;
  let asked = 0; // the latest request wins: an older answer arriving late is dropped

  const filters = () => ({ status: statusFilter.value, q: search.value.trim(), limit: PAGE });
  const show = (answer, append) => {
    if (!append) {
      tbody.replaceChildren();
      shown = 0;
    }
    tbody.append(...answer.patients.map((p) => row(p, who.today)));
    shown += answer.patients.length;
    nextAfter = answer.next_after;
    more.hidden = nextAfter === null;
    count.textContent = `${shown} of ${answer.total} patient${answer.total === 1 ? "" : "s"} shown, by id`;
  };
  const load = async (append) => {
    const mine = ++asked;
    try {
      const answer = await api("GET", query({ ...filters(), after: append ? nextAfter : "" }));
      if (mine !== asked) return;
      hideMessage(message, form);
      show(answer, append);
    } catch (error) {
      if (mine === asked) showError(message, error, form);
    }
  };

  // unschedulable patients need a coordinator: say how many there are, one click away
  const unschedulable = await api("GET", query({ status: "unschedulable", limit: 1 }));
  if (unschedulable.total) {
    clear(
      attention,
      el("strong", {}, `${unschedulable.total} unschedulable patient${unschedulable.total === 1 ? "" : "s"}`),
      " need a coordinator. ",
      el("button", { type: "button", id: "show-unschedulable", class: "secondary", onclick: () => { statusFilter.value = "unschedulable"; load(false); } }, "Show them"),
    );
  }

  let typing = null;
  statusFilter.addEventListener("change", () => load(false));
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(false), 250);
  });
  more.addEventListener("click", () => busy(more, "Loading…", () => load(true)));

  clear(
    document.getElementById("page"),
    form,
    message,
    attention,
    count,
    el(
      "div",
      { class: "table-scroll" },
      el(
        "table",
        { class: "data stack-on-tablet", id: "patients" },
        el("caption", { class: "visually-hidden" }, "Patients, by id"),
        el("thead", {}, el("tr", {}, ["Patient", "Pathway", "Urgency", "Status", "Next step", "Infusion"].map((h) => el("th", { scope: "col" }, h)))),
        tbody,
      ),
    ),
    more,
  );
  await load(false);
}

run(main);
