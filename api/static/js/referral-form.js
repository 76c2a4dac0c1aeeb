// The referral's fields, shared by the new-referral page (POST /patients) and the patient page's
// "Edit referral" form (PATCH /patients/{id}). Each input is named as the API names its field, so
// a 422 (or a 409 naming a field) is shown beside the input it concerns.

import { api, busy, clear, el, hideMessage, showError, showSuccess } from "./common.js";

const URGENCIES = [
  ["routine", "routine"],
  ["soon", "soon"],
  ["urgent", "urgent"],
];

function field(id, label, input, hint, wide = false) {
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return el("div", { class: `field${wide ? " wide" : ""}` }, el("label", { for: id }, label), input, hint ? el("span", { id: hintId, class: "muted" }, hint) : null);
}

function select(id, name, options, value) {
  return el(
    "select",
    { id, name },
    options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)),
  );
}

/** The pathways (templates) of GET /catalogue as [id, "name (id)"], with `current` kept even if no longer offered. */
function pathwayOptions(catalogue, current) {
  const templates = (catalogue.pathways.templates || []).map((t) => [t.id, t.name ? `${t.name} (${t.id})` : t.id]);
  if (current && !templates.some(([id]) => id === current)) templates.unshift([current, current]);
  return templates;
}

function centreOptions(catalogue, current) {
  const centres = (catalogue.site.centres || []).map((c) => [c, c]);
  if (current && !centres.some(([c]) => c === current)) centres.unshift([current, current]);
  return centres;
}

/**
 * The inputs of a referral, ids prefixed with `prefix`. `patient` (editing) gives the values;
 * for a new referral the approval date defaults to `today`.
 */
function referralFields(prefix, catalogue, { patient = null, today = "" } = {}) {
  const id = (name) => `${prefix}-${name.replace(/_/g, "-")}`;
  const fields = [];
  if (!patient) {
    fields.push(
      field(
        id("id"),
        "Patient id",
        el("input", { id: id("id"), name: "id", type: "text", required: true, maxlength: "32", autocomplete: "off", spellcheck: "false" }),
        "Pseudonymous: letters, digits, - and _ (3 to 32), e.g. R-0412. Never an NHS or hospital number.",
        true,
      ),
    );
  }
  fields.push(
    field(id("centre"), "Centre", select(id("centre"), "centre", centreOptions(catalogue, patient?.centre), patient?.centre)),
    field(id("pathway"), "Pathway", select(id("pathway"), "pathway", pathwayOptions(catalogue, patient?.pathway), patient?.pathway), null, true),
    field(id("approval_date"), "Approval date", el("input", { id: id("approval_date"), name: "approval_date", type: "date", required: true, value: patient ? patient.approval_date : today })),
    field(
      id("earliest_start"),
      "Earliest start",
      el("input", { id: id("earliest_start"), name: "earliest_start", type: "date", value: patient?.earliest_start || "" }),
      "Optional: empty means from the approval date.",
    ),
    field(id("urgency"), "Urgency", select(id("urgency"), "urgency", URGENCIES, patient?.urgency || "routine")),
    field(
      id("target_infusion_date"),
      "Target infusion date",
      el("input", { id: id("target_infusion_date"), name: "target_infusion_date", type: "date", value: patient?.target_infusion_date || "" }),
      "Optional.",
    ),
    field(
      id("nhs_number"),
      "NHS number",
      el("input", { id: id("nhs_number"), name: "nhs_number", type: "text", inputmode: "numeric", autocomplete: "off", maxlength: "14" }),
      patient?.nhs_number_recorded
        ? "One is recorded (never shown). Type another to replace it; leave empty to keep it."
        : "Optional. Stored, never shown again.",
    ),
  );
  if (patient?.nhs_number_recorded) {
    const box = el("input", { id: id("nhs-remove"), name: "nhs_remove", type: "checkbox" });
    fields.push(el("div", { class: "field" }, el("label", { for: id("nhs-remove") }, box, " Remove the recorded NHS number")));
  }
  return fields;
}

function value(form, name) {
  const input = form.elements.namedItem(name);
  return input ? input.value.trim() : "";
}

/** A new referral's body: every field filled in (an empty optional field is left out). */
function newReferralBody(form) {
  const body = {};
  for (const name of ["id", "centre", "pathway", "approval_date", "earliest_start", "urgency", "target_infusion_date", "nhs_number"]) {
    const v = value(form, name);
    if (v !== "") body[name] = v;
  }
  return body;
}

/** An edit's body: only the fields changed from `patient` (an emptied optional date is removed: null). */
function editBody(form, patient) {
  const body = {};
  for (const name of ["centre", "pathway", "approval_date", "earliest_start", "urgency", "target_infusion_date"]) {
    const v = value(form, name);
    const before = patient[name] || "";
    if (v !== before) body[name] = v === "" ? null : v; // an emptied approval date: the API says it cannot be removed
  }
  const remove = form.elements.namedItem("nhs_remove");
  if (remove && remove.checked) body.nhs_number = null;
  else if (value(form, "nhs_number")) body.nhs_number = value(form, "nhs_number");
  return body;
}

/**
 * The new-referral form (POST /patients). `onRegistered(patient)` runs after a 201; the form is
 * then emptied for the next referral.
 */
export function newReferralForm(catalogue, today, onRegistered) {
  const box = el("div", { class: "message error", role: "alert", hidden: true, id: "referral-problems" });
  const submit = el("button", { type: "submit", class: "primary" }, "Register referral");
  const form = el("form", { id: "referral-form", class: "inline", novalidate: true, "aria-label": "New referral" }, referralFields("referral", catalogue, { today }), el("div", { class: "field" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const patient = await busy(submit, "Registering…", () => api("POST", "/patients", newReferralBody(form)));
      hideMessage(box, form);
      form.reset();
      onRegistered(patient);
    } catch (error) {
      showError(box, error, form); // each 422 problem at its field
    }
  });
  return [form, box];
}

/**
 * The patient page's "Edit referral" section (PATCH /patients/{id}): a disclosure holding the
 * referral's fields. After a save, `onSaved(patient)` redraws the facts; the rules the current
 * bookings now break (the answer's `violations`) are listed.
 */
export function editReferralSection(catalogue, patient, onSaved) {
  const box = el("div", { class: "message", id: "edit-referral-message", role: "status", tabindex: "-1", hidden: true });
  const submit = el("button", { type: "submit", class: "primary" }, "Save referral");
  const fieldsArea = el("div", { class: "record-form" });
  const form = el("form", { id: "edit-referral-form", class: "inline", novalidate: true, "aria-label": "Edit referral" }, fieldsArea, el("div", { class: "field" }, submit));
  let current = patient;
  const fill = () => clear(fieldsArea, referralFields("edit", catalogue, { patient: current }));
  fill();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = editBody(form, current);
    if (!Object.keys(body).length) {
      hideMessage(box, form);
      showSuccess(box, "Nothing changed: the referral is as it was.");
      return;
    }
    try {
      const answer = await busy(submit, "Saving…", () => api("PATCH", `/patients/${encodeURIComponent(current.id)}`, body));
      hideMessage(box, form);
      const { violations, ...saved } = answer;
      current = saved;
      fill();
      onSaved(saved);
      const changed = Object.keys(body).map((k) => k.replace(/_/g, " "));
      if (violations.length) {
        clear(
          box,
          el("p", {}, el("strong", {}, `Referral saved (${changed.join(", ")}). `), "The current bookings now break these rules; propose a new schedule:"),
          el("ul", { id: "edit-violations" }, violations.map((v) => el("li", {}, v))),
        );
        box.hidden = false;
        box.classList.remove("success");
        box.classList.add("error");
      } else {
        showSuccess(box, `Referral saved (${changed.join(", ")}). The current bookings break no rule.`);
      }
      box.focus();
    } catch (error) {
      showError(box, error, form);
    }
  });
  return el(
    "details",
    { class: "edit-referral", id: "edit-referral" },
    el("summary", {}, "Edit referral"),
    el("p", { class: "muted" }, "Change what is wrong or has changed and save; only the fields changed are sent. Blackouts, last doses and durations stay as they are."),
    form,
    box,
  );
}
