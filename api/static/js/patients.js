// Patients: every referral with its pathway, status, next step and infusion date.
// GET /patients gives the referrals, GET /plans/current the bookings of the current plan.

import { api, clear, el, longDay, run, startPage, stepName } from "./common.js";

function nextStep(bookings, today) {
  const ahead = bookings.filter((b) => b.last_day >= today).sort((a, b) => (a.first_day < b.first_day ? -1 : a.first_day > b.first_day ? 1 : 0));
  return ahead[0] || null;
}

function infusion(bookings) {
  // infusion, reinfusion, infusion_dose_1 (a split dose: the first one)
  const days = bookings.filter((b) => b.step.includes("infusion")).map((b) => b.first_day).sort();
  return days[0] || null;
}

function statusBadge(status) {
  return el("span", { class: `badge ${status.replace(/ /g, "-")}` }, status);
}

function rows(patients, bookingsOf, today) {
  return patients.map((p) => {
    const bookings = bookingsOf.get(p.id) || [];
    const next = nextStep(bookings, today);
    const infused = infusion(bookings);
    return el(
      "tr",
      { class: p.status === "unschedulable" ? "unschedulable" : null, dataset: { patient: p.id, status: p.status } },
      el("th", { scope: "row" }, el("a", { href: `/ui/patients/${encodeURIComponent(p.id)}` }, p.id)),
      el("td", {}, p.pathway),
      el("td", {}, p.urgency),
      el("td", {}, statusBadge(p.status)),
      el(
        "td",
        { class: "next-step" },
        next
          ? `${stepName(next.step)}: ${next.first_day <= today ? "in progress" : longDay(next.first_day)}${next.status === "planned" ? " (planned, not confirmed)" : ""}`
          : p.status === "referred"
            ? "propose a schedule"
            : p.status === "unschedulable"
              ? "no schedule found"
              : "nothing ahead",
      ),
      el("td", {}, infused ? longDay(infused) : ""),
    );
  });
}

async function main() {
  const who = await startPage("patients");
  const [patients, plan] = await Promise.all([
    api("GET", "/patients"),
    api("GET", "/plans/current").catch((error) => (error.status === 404 ? { bookings: [] } : Promise.reject(error))),
  ]);
  const bookingsOf = new Map();
  for (const b of plan.bookings) {
    if (!bookingsOf.has(b.patient)) bookingsOf.set(b.patient, []);
    bookingsOf.get(b.patient).push(b);
  }
  // unschedulable patients first: they need a coordinator
  const order = { unschedulable: 0, referred: 1, scheduled: 2, withdrawn: 3 };
  patients.sort((a, b) => (order[a.status] ?? 9) - (order[b.status] ?? 9) || (a.id < b.id ? -1 : 1));

  const statusFilter = el(
    "select",
    { id: "status-filter", name: "status" },
    el("option", { value: "" }, "all"),
    ["unschedulable", "referred", "scheduled", "withdrawn"].map((s) => el("option", { value: s }, s)),
  );
  const search = el("input", { id: "id-filter", name: "id", type: "search", placeholder: "e.g. R-0042", autocomplete: "off" });
  const count = el("p", { id: "patient-count", class: "muted", role: "status" });
  const tbody = el("tbody", {});
  const render = () => {
    const wanted = statusFilter.value;
    const text = search.value.trim().toLowerCase();
    const shown = patients.filter((p) => (!wanted || p.status === wanted) && (!text || p.id.toLowerCase().includes(text) || p.pathway.includes(text)));
    clear(tbody, rows(shown, bookingsOf, who.today));
    const counts = patients.reduce((acc, p) => ({ ...acc, [p.status]: (acc[p.status] || 0) + 1 }), {});
    count.textContent = `${shown.length} of ${patients.length} patients shown (${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ")})`;
  };
  statusFilter.addEventListener("change", render);
  search.addEventListener("input", render);
  clear(
    document.getElementById("page"),
    el(
      "form",
      { class: "panel inline", role: "search", "aria-label": "Filter patients", onsubmit: (e) => e.preventDefault() },
      el("div", { class: "field" }, el("label", { for: "status-filter" }, "Status"), statusFilter),
      el("div", { class: "field wide" }, el("label", { for: "id-filter" }, "Patient id or pathway"), search),
    ),
    count,
    el(
      "div",
      { class: "table-scroll" },
      el(
        "table",
        { class: "data stack-on-tablet", id: "patients" },
        el("caption", { class: "visually-hidden" }, "Patients, unschedulable first"),
        el("thead", {}, el("tr", {}, ["Patient", "Pathway", "Urgency", "Status", "Next step", "Infusion"].map((h) => el("th", { scope: "col" }, h)))),
        tbody,
      ),
    ),
  );
  render();
}

run(main);
