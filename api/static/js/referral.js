// New referral: register a patient on a pathway (POST /patients) with the pathways and centres of
// GET /catalogue. Each problem the API finds is shown beside its field; a registered referral
// links to its page, where a schedule is proposed.

import { can, clear, el, api, run, startPage } from "./common.js";
import { newReferralForm } from "./referral-form.js";

async function main() {
  const who = await startPage("referral");
  const page = document.getElementById("page");
  if (!can(who.role, "refer")) {
    clear(
      page,
      el("p", { class: "empty", id: "no-referral" }, `Coordinators register referrals; as a ${who.role.replace("_", " ")} you can see them on the `, el("a", { href: "/ui/patients" }, "patients page"), "."),
    );
    return;
  }
  const catalogue = await api("GET", "/catalogue");
  const done = el("div", { id: "referral-done", class: "message success", role: "status", tabindex: "-1", hidden: true });
  const [form, box] = newReferralForm(catalogue, who.today, (patient) => {
    const link = `/ui/patients/${encodeURIComponent(patient.id)}`;
    clear(
      done,
      el("p", {}, el("strong", {}, `Referral ${patient.id} registered`), ` on ${patient.pathway} (${patient.status}). `, el("a", { href: link, id: "referral-link" }, `Open ${patient.id}'s page`), " to propose a schedule, or register another below."),
    );
    done.hidden = false;
    done.focus();
  });
  clear(
    page,
    el("p", { class: "muted" }, "A patient approved for a pathway. Only the pseudonymous id identifies them here; the NHS number, if given, is stored and never shown."),
    el("section", { class: "panel", "aria-label": "Referral" }, form, box),
    done,
  );
  form.querySelector("input")?.focus();
}

run(main);
