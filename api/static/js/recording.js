// Recording what actually happened, on the patient page: each step's status and latest record
// with its actions (started, done, missed, cancelled; an infusion with the bag's scanned
// identifiers), and the products with their chain of custody (register a product, record its
// next custody event). Every answer carries the new timeline and the re-plan the record caused;
// `after(answer, message)` (from patient.js) redraws the page with them.
//
// A refusal is shown at the field the API names: a 422 at its input, a rule's 409 too (the
// release gate at the conditioning's "What happened", an identity mismatch at the scanned DIN).

import { api, busy, can, dayRange, el, hideMessage, longDay, shortDay, showError, stepName } from "./common.js";

/** Steps nobody records at the bedside or in the lab: the high-risk window follows the infusion. */
const NOT_RECORDED = new Set(["monitoring"]);
// a lab manager records the product's steps; the bedside steps are the coordinators' (the API says the same)
const LAB_STEPS = new Set(["processing", "manufacture", "release"]);
const COLLECTION_KINDS = new Set(["apheresis", "donor_collection"]);
const OUTCOMES = ["started", "done", "missed", "cancelled"];
const FINISHED = new Set(["done", "missed", "cancelled", "ended", "not booked"]);

// -- step records -----------------------------------------------------------------------------

/** What a step can still be recorded as: nothing once done; only done once started; not missed before its day. */
function outcomesFor(step, today) {
  if (NOT_RECORDED.has(step.kind) || !step.first_day || FINISHED.has(step.status)) return [];
  // a step under way is done, or stopped part-way (cancelled: the days given stay, it is planned again)
  if (step.recorded && step.recorded.outcome === "started") return ["done", "cancelled"];
  return step.first_day > today ? OUTCOMES.filter((o) => o !== "missed") : OUTCOMES;
}

function recordText(record) {
  if (!record) return el("span", { class: "muted" }, "nothing recorded");
  const days = record.first_day ? ` ${dayRange(record.first_day, record.last_day || record.first_day)}` : "";
  const started = record.outcome === "started" && record.first_day ? ` ${longDay(record.first_day)}` : days;
  return el(
    "div",
    { class: "latest-record" },
    el("strong", {}, record.outcome), record.outcome === "started" ? started : days,
    record.reason ? el("div", {}, `Reason: ${record.reason}`) : null,
    record.note ? el("div", {}, `Note: ${record.note}`) : null,
    el("div", { class: "muted" }, `recorded ${longDay(record.recorded_on)} by ${record.by}`),
  );
}

function statusBadge(status) {
  const text = status === "overdue" ? "overdue: record it" : status;
  return el("span", { class: `badge ${status.replace(/ /g, "-")}` }, text);
}

function fieldBox(id, label, input, hint) {
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return el("div", { class: "field", dataset: { for: input.name } }, el("label", { for: id }, label), input, hint ? el("span", { id: hintId, class: "muted" }, hint) : null);
}

/** The fields each outcome needs (the others are hidden and not sent). */
function visibleFor(outcome, step) {
  const started = step.recorded && step.recorded.outcome === "started";
  const scanned = step.kind === "infusion" && !started && (outcome === "started" || outcome === "done");
  return new Set([
    ...(outcome === "started" || (outcome === "done" && !started) ? ["first_day"] : []),
    ...(outcome === "done" ? ["last_day"] : []),
    ...(outcome === "missed" || outcome === "cancelled" ? ["reason"] : []),
    ...(scanned ? ["scanned.din", "scanned.chain_of_identity"] : []),
    "note",
  ]);
}

function stepRecordForm(step, outcome, ctx, close) {
  const id = `record-${step.step}`;
  const started = step.recorded && step.recorded.outcome === "started";
  const box = el("div", { class: "message error form-message", role: "alert", hidden: true });
  const outcomeSelect = el(
    "select",
    { id: `${id}-outcome`, name: "outcome" },
    outcomesFor(step, ctx.today).map((o) => el("option", { value: o, selected: o === outcome }, o)),
  );
  const fields = [
    fieldBox(`${id}-first`, "First day", el("input", { id: `${id}-first`, name: "first_day", type: "date", value: step.first_day }), "as booked unless it was another day"),
    fieldBox(`${id}-last`, "Last day", el("input", { id: `${id}-last`, name: "last_day", type: "date", value: step.last_day }), "as booked unless it took other days"),
    fieldBox(`${id}-reason`, "Reason", el("input", { id: `${id}-reason`, name: "reason", type: "text", maxlength: "500" }), "required: why it did not happen"),
    fieldBox(`${id}-din`, "Scanned DIN (bag)", el("input", { id: `${id}-din`, name: "scanned.din", type: "text", maxlength: "24", autocomplete: "off", spellcheck: "false" }), "the donation identification number on the bag, with its check character"),
    fieldBox(`${id}-coi`, "Scanned chain of identity (cassette)", el("input", { id: `${id}-coi`, name: "scanned.chain_of_identity", type: "text", maxlength: "64", autocomplete: "off", spellcheck: "false" })),
    fieldBox(`${id}-note`, "Note (optional)", el("input", { id: `${id}-note`, name: "note", type: "text", maxlength: "500" })),
  ];
  const submit = el("button", { type: "submit", class: "primary" });
  const cancel = el("button", { type: "button", class: "secondary", onclick: close }, "Close");
  const form = el(
    "form",
    { id, class: "record-form", novalidate: true, "aria-labelledby": `${id}-title`, dataset: { step: step.step } },
    el("h3", { id: `${id}-title` }, `Record ${stepName(step.step)}`, el("span", { class: "muted" }, ` (booked ${dayRange(step.first_day, step.last_day)})`)),
    started ? el("p", { class: "help muted" }, `Started ${longDay(step.recorded.first_day)}: record it as done when it is over.`) : null,
    fieldBox(`${id}-outcome`, "What happened", outcomeSelect),
    fields,
    el("div", { class: "field" }, el("div", { class: "summary-line" }, submit, cancel)),
    box,
  );
  const show = () => {
    const wanted = visibleFor(outcomeSelect.value, step);
    for (const wrapper of form.querySelectorAll(".field[data-for]")) {
      if (wrapper.dataset.for === "outcome") continue;
      wrapper.hidden = !wanted.has(wrapper.dataset.for);
    }
    submit.textContent = `Record ${outcomeSelect.value}`;
  };
  outcomeSelect.addEventListener("change", show);
  show();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = outcomeSelect.value;
    const wanted = visibleFor(chosen, step);
    const body = { outcome: chosen };
    const val = (name) => form.elements.namedItem(name).value.trim();
    for (const name of ["first_day", "last_day", "reason", "note"]) if (wanted.has(name) && val(name)) body[name] = val(name);
    if (wanted.has("scanned.din") && (val("scanned.din") || val("scanned.chain_of_identity"))) {
      body.scanned = { din: val("scanned.din") };
      if (val("scanned.chain_of_identity")) body.scanned.chain_of_identity = val("scanned.chain_of_identity");
    }
    try {
      const answer = await busy(submit, "Recording…", () => api("POST", `/patients/${encodeURIComponent(ctx.patientId)}/steps/${encodeURIComponent(step.step)}/records`, body));
      hideMessage(box, form);
      const days = body.first_day || body.last_day ? ` (${dayRange(body.first_day || step.first_day, body.last_day || body.first_day || step.first_day)})` : "";
      ctx.after(answer, `${stepName(step.step)} recorded as ${chosen}${days}.`);
    } catch (error) {
      showError(box, error, form); // the gate's 409 at "What happened", a mismatch at the scanned DIN
    }
  });
  return form;
}

/**
 * The steps table: dates, status (overdue flagged), latest record, why each date is what it is,
 * and (for those who record) the actions of each step that can still be recorded.
 */
export function stepsTable(timeline, ctx) {
  const recording = can(ctx.who.role, "record") && timeline.status !== "withdrawn";
  const headers = ["Step", "Dates", "Status", "Latest record", "Why this date", ...(recording ? ["Record"] : [])];
  const tbody = el("tbody", {});
  const columns = headers.length;
  for (const s of timeline.steps) {
    const row = el(
      "tr",
      { id: `step-${s.step}`, class: s.status === "overdue" ? "overdue" : null, dataset: { step: s.step, status: s.status, first: s.first_day || "" } },
      el("th", { scope: "row" }, stepName(s.step), s.kind !== s.step ? el("div", { class: "muted" }, s.kind) : null),
      el("td", { class: "dates" }, dayRange(s.first_day, s.last_day)),
      el("td", { class: "status" }, statusBadge(s.status)),
      el("td", { class: "recorded" }, recordText(s.recorded)),
      el(
        "td",
        {},
        s.fixed_by ? el("div", { class: "muted" }, s.fixed_by) : null,
        s.why.length ? el("ul", { class: "why" }, s.why.map((w) => el("li", {}, w))) : s.first_day ? null : "not booked in the current plan",
      ),
    );
    tbody.append(row);
    if (!recording) continue;
    const cell = el("td", { class: "record-actions-cell" });
    row.append(cell);
    if (ctx.who.role === "lab_manager" && !LAB_STEPS.has(s.kind)) {
      cell.append(el("span", { class: "muted" }, "recorded by a coordinator"));
      continue;
    }
    const outcomes = outcomesFor(s, ctx.today);
    if (!outcomes.length) {
      cell.append(el("span", { class: "muted" }, NOT_RECORDED.has(s.kind) ? "follows the infusion" : ""));
      continue;
    }
    const open = (outcome, opener) => {
      const next = row.nextElementSibling;
      if (next && next.classList.contains("record-row")) next.remove();
      const formRow = el("tr", { class: "record-row", dataset: { recordStep: s.step } });
      const close = () => {
        formRow.remove();
        opener.focus();
      };
      formRow.append(el("td", { colspan: columns }, stepRecordForm(s, outcome, ctx, close)));
      row.insertAdjacentElement("afterend", formRow);
      formRow.querySelector("select").focus();
    };
    cell.append(
      el(
        "div",
        { class: "record-actions" },
        outcomes.map((o) => {
          const button = el("button", { type: "button", class: o === "missed" || o === "cancelled" ? "danger" : "secondary", "aria-label": `Record ${stepName(s.step)} ${o}` }, o);
          button.addEventListener("click", () => open(o, button));
          return button;
        }),
      ),
    );
  }
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "data", id: "steps" },
      el("caption", { class: "visually-hidden" }, "Every step, its dates, its status, what was recorded and why the dates are what they are"),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      tbody,
    ),
  );
}

// -- the re-plan a record caused ----------------------------------------------------------------

function changeText(c) {
  const span = (d) => (d ? dayRange(d.first_day, d.last_day) : "");
  if (c.change === "added") return `${stepName(c.step)}: booked ${span(c.to)}`;
  if (c.change === "removed") return `${stepName(c.step)}: taken out (was ${span(c.from)})`;
  return `${stepName(c.step)}: moved from ${span(c.from)} to ${span(c.to)}`;
}

/** What the answer's re-plan moved, in words: nodes for the message shown after a record. */
export function replanNodes(answer, patientId) {
  if (answer.replan_error) {
    return [el("p", { id: "replan-error" }, el("strong", {}, "Not re-planned yet: "), `${answer.replan_error}. The record stands; the nightly run (or a re-plan) books the rest.`)];
  }
  const replan = answer.replan;
  if (!replan) return [];
  const mine = (replan.diff?.patients || []).find((p) => p.patient === patientId);
  const changes = mine ? mine.changes : [];
  return [
    el(
      "div",
      { class: "replan", id: "replan" },
      el("p", {}, el("strong", {}, `Re-planned (plan version ${replan.plan_version}): `), changes.length ? `${changes.length} booking${changes.length === 1 ? "" : "s"} changed.` : "no booking had to change."),
      changes.length ? el("ul", {}, changes.map((c) => el("li", { dataset: { step: c.step, change: c.change } }, changeText(c), c.why ? el("span", { class: "muted" }, ` (${c.why})`) : null))) : null,
    ),
  ];
}

// -- products and their chain of custody --------------------------------------------------------

const KINDS = [
  ["collected", "collected"],
  ["shipped", "shipped (to the manufacturer, or a donor's graft to the centre)"],
  ["received", "received by the manufacturer or the lab"],
  ["manufacture_started", "manufacture started"],
  ["expected_back", "expected back at the centre (a forecast)"],
  ["shipped_back", "shipped back"],
  ["received_at_centre", "received at the centre"],
  ["released", "released"],
  ["out_of_specification", "out of specification"],
  ["exceptional_release", "released by exception (out of specification)"],
  ["issued", "issued for infusion"],
  ["lost", "lost"],
];
const KIND_WORDS = Object.fromEntries([...KINDS, ["infused", "infused"]]);
/** The details each kind needs (the API refuses the event without them). */
const DETAILS = {
  shipped: ["courier_reference"],
  received_at_centre: ["storage_location"],
  out_of_specification: ["reason"],
  exceptional_release: ["clinician", "reason"],
  lost: ["reason"],
};
const DETAIL_LABELS = {
  courier_reference: "Courier reference",
  storage_location: "Storage location",
  clinician: "Authorising clinician",
  reason: "Reason",
  note: "Note",
  cause: "Cause",
};

/** The usual next event after the product's latest one (a suggestion: any kind can be chosen). */
function nextKind(product) {
  const done = new Set(product.custody.map((e) => e.kind));
  const last = product.state.last;
  if (!last) return "collected";
  const away = done.has("shipped");
  return (
    {
      collected: "shipped",
      shipped: "received",
      received: away ? "manufacture_started" : "released",
      manufacture_started: away ? "shipped_back" : "released",
      shipped_back: "received_at_centre",
      received_at_centre: "released",
      released: "issued",
      out_of_specification: "exceptional_release",
      exceptional_release: "issued",
    }[last] || ""
  );
}

function detailsText(details) {
  const entries = Object.entries(details || {}).filter(([, v]) => v);
  if (!entries.length) return "";
  return entries.map(([k, v]) => `${DETAIL_LABELS[k] || k.replace(/_/g, " ")}: ${v}`).join("; ");
}

function custodyTable(product) {
  if (!product.custody.length) return el("p", { class: "muted" }, "No custody event yet: record its collection first.");
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "data", id: `custody-${product.id}` },
      el("caption", { class: "visually-hidden" }, `Chain of custody of product ${product.id}`),
      el("thead", {}, el("tr", {}, ["Event", "Day", "Details", "Recorded"].map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        product.custody.map((e) =>
          el(
            "tr",
            { dataset: { kind: e.kind } },
            el("th", { scope: "row" }, KIND_WORDS[e.kind] || e.kind.replace(/_/g, " ")),
            el("td", {}, longDay(e.day)),
            el("td", {}, detailsText(e.details)),
            el("td", { class: "muted" }, `${longDay(e.recorded_on)} by ${e.by}`),
          ),
        ),
      ),
    ),
  );
}

function productBadge(state) {
  if (state.infused) return el("span", { class: "badge infused" }, "infused");
  if (state.lost) return el("span", { class: "badge lost" }, "lost");
  if (state.out_of_specification && !state.exceptional) return el("span", { class: "badge out-of-specification" }, "out of specification");
  if (state.last === "issued") return el("span", { class: "badge released" }, "issued");
  if (state.exceptional) return el("span", { class: "badge released" }, "released by exception");
  if (state.released_on) return el("span", { class: "badge released" }, "released");
  if (state.awaited) return el("span", { class: "badge awaited" }, "awaited");
  return el("span", { class: "badge not-booked" }, "registered");
}

function custodyForm(product, ctx) {
  const id = `custody-form-${product.id}`;
  const box = el("div", { class: "message error form-message", role: "alert", hidden: true });
  const suggested = nextKind(product);
  const kind = el(
    "select",
    { id: `${id}-kind`, name: "kind" },
    suggested ? null : el("option", { value: "", selected: true }, "choose the event"),
    KINDS.map(([value, words]) => el("option", { value, selected: value === suggested }, words)),
  );
  const input = (name, attrs = {}) => el("input", { id: `${id}-${name.replace(/_/g, "-")}`, name, type: "text", maxlength: name === "reason" || name === "note" ? "500" : "64", ...attrs });
  const dayHint = el("span", { id: `${id}-day-hint`, class: "muted" });
  const day = el("input", { id: `${id}-day`, name: "day", type: "date", value: ctx.today, "aria-describedby": `${id}-day-hint` });
  const submit = el("button", { type: "submit", class: "primary" }, "Record event");
  const form = el(
    "form",
    { id, class: "record-form", novalidate: true, "aria-labelledby": `${id}-title`, dataset: { product: product.id } },
    el("h4", { id: `${id}-title`, class: "help" }, `Record the next event of product ${product.id}`),
    fieldBox(`${id}-kind`, "Event", kind),
    el("div", { class: "field", dataset: { for: "day" } }, el("label", { for: `${id}-day` }, "Day"), day, dayHint),
    ["courier_reference", "storage_location", "clinician", "reason"].map((name) => fieldBox(`${id}-${name.replace(/_/g, "-")}`, DETAIL_LABELS[name], input(name))),
    fieldBox(`${id}-note`, "Note (optional)", input("note")),
    el("div", { class: "field" }, submit),
    box,
  );
  const show = () => {
    const needed = new Set(DETAILS[kind.value] || []);
    for (const wrapper of form.querySelectorAll(".field[data-for]")) {
      const name = wrapper.dataset.for;
      if (["kind", "day", "note"].includes(name)) continue;
      wrapper.hidden = !needed.has(name);
    }
    dayHint.textContent = kind.value === "expected_back" ? "the day it is expected back at the centre (may be ahead)" : "when it happened (not in the future)";
  };
  kind.addEventListener("change", show);
  show();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { kind: kind.value, day: day.value };
    for (const name of [...(DETAILS[kind.value] || []), "note"]) {
      const v = form.elements.namedItem(name).value.trim();
      if (v) body[name] = v;
    }
    if (!body.kind) delete body.kind;
    if (!body.day) delete body.day;
    try {
      const answer = await busy(submit, "Recording…", () => api("POST", `/products/${product.id}/custody`, body));
      hideMessage(box, form);
      ctx.after(answer, `Product ${product.id}: ${KIND_WORDS[body.kind]} ${body.kind === "expected_back" ? "on" : "recorded for"} ${longDay(body.day)}.`);
    } catch (error) {
      showError(box, error, form); // out of order at "Event", a future day at "Day", a missing detail at its field
    }
  });
  return form;
}

function productCard(product, ctx, recording) {
  const s = product.state;
  const facts = [
    ["DIN", product.din || "not recorded"],
    ["Product code", product.product_code || "not recorded"],
    ["Chain of identity", product.chain_of_identity || "not recorded"],
    ["Order reference", product.order_reference || "none"],
    ["Bags", product.bags ?? "not recorded"],
    ["Where it is", s.summary],
    ...(s.expected_on ? [["Expected back", longDay(s.expected_on)]] : []),
    ...(s.released_on ? [["Released", longDay(s.released_on)]] : []),
  ];
  const ended = s.infused || s.lost;
  return el(
    "article",
    { class: "product", id: `product-${product.id}`, dataset: { product: product.id }, "aria-labelledby": `product-${product.id}-title` },
    el("h3", { id: `product-${product.id}-title` }, `Product ${product.id} from ${stepName(product.collection_step)} `, productBadge(s)),
    el("dl", { class: "facts" }, facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v))))),
    el("h4", {}, "Chain of custody"),
    custodyTable(product),
    recording && !ended ? custodyForm(product, ctx) : null,
    recording && !ended && s.last === "issued" ? el("p", { class: "muted" }, "Issued: record the infusion on the infusion step, with the bag's scanned identifiers.") : null,
  );
}

function registerForm(timeline, ctx) {
  const collections = timeline.steps.filter((s) => COLLECTION_KINDS.has(s.kind));
  if (!collections.length) return null;
  const id = "product-form";
  const box = el("div", { class: "message error form-message", role: "alert", hidden: true });
  const text = (name, attrs = {}) => el("input", { id: `${id}-${name.replace(/_/g, "-")}`, name, type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
  const submit = el("button", { type: "submit", class: "secondary" }, "Register product");
  const form = el(
    "form",
    { id, class: "record-form", novalidate: true, "aria-labelledby": `${id}-title` },
    el("h3", { id: `${id}-title`, class: "visually-hidden" }, "Register a product"),
    el("p", { class: "help muted" }, "The identifiers on its labels, as the lab or the manufacturer issued them (nothing here is made up)."),
    fieldBox(`${id}-collection-step`, "Collected at", el("select", { id: `${id}-collection-step`, name: "collection_step" }, collections.map((s) => el("option", { value: s.step }, `${stepName(s.step)}${s.first_day ? ` (${shortDay(s.first_day)})` : ""}`)))),
    fieldBox(`${id}-din`, "DIN", text("din", { maxlength: "24" }), "ISBT 128 donation identification number: 13 characters and the check character"),
    fieldBox(`${id}-product-code`, "Product code", text("product_code", { maxlength: "8" }), "S and 4 characters (e.g. S1234), with or without the type code"),
    fieldBox(`${id}-chain-of-identity`, "Chain of identity", text("chain_of_identity", { maxlength: "64" })),
    fieldBox(`${id}-order-reference`, "Order reference", text("order_reference", { maxlength: "64" }), "the manufacturer's order or slot"),
    fieldBox(`${id}-bags`, "Bags", el("input", { id: `${id}-bags`, name: "bags", type: "number", min: "1", max: "50", step: "1", inputmode: "numeric" })),
    el("div", { class: "field" }, submit),
    box,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const name of ["collection_step", "din", "product_code", "chain_of_identity", "order_reference"]) {
      const v = form.elements.namedItem(name).value.trim();
      if (v) body[name] = v;
    }
    const bags = form.elements.namedItem("bags").value.trim();
    if (bags) body.bags = /^\d+$/.test(bags) ? Number(bags) : bags; // anything else: the API says what is wrong
    try {
      const product = await busy(submit, "Registering…", () => api("POST", `/patients/${encodeURIComponent(ctx.patientId)}/products`, body));
      hideMessage(box, form);
      const timelineNow = await api("GET", `/patients/${encodeURIComponent(ctx.patientId)}/timeline`);
      ctx.after({ timeline: timelineNow }, `Product ${product.id} registered${product.din ? ` (DIN ${product.din})` : ""}: record its collection next.`);
    } catch (error) {
      showError(box, error, form);
    }
  });
  // open at first; once a product is recorded, another (a second collection) is one click away
  return el(
    "details",
    { class: "panel register-product", open: !timeline.products.length },
    el("summary", {}, timeline.products.length ? "Register another product" : "Register a product"),
    form,
  );
}

/** The products section: each product with its state and custody, the next-event form, and registering one. */
export function productsSection(timeline, ctx) {
  const recording = can(ctx.who.role, "record") && timeline.status !== "withdrawn";
  const products = timeline.products || [];
  return el(
    "div",
    { id: "products" },
    products.length
      ? el("div", { class: "products" }, products.map((p) => productCard(p, ctx, recording)))
      : el("p", { class: "muted", id: "no-products" }, "No product is recorded for this patient."),
    recording ? registerForm(timeline, ctx) : null,
  );
}

// -- events -------------------------------------------------------------------------------------

/** An event's details for the events table: its cause first (when it has one), then the rest in words. */
export function eventDetails(details) {
  const d = details || {};
  const rest = Object.entries(d)
    .filter(([k, v]) => k !== "cause" && v !== null && v !== "" && typeof v !== "object")
    .map(([k, v]) => `${k.replace(/_/g, " ")}: ${v}`)
    .join("; ");
  return [d.cause ? el("div", { class: "cause" }, el("strong", {}, "Cause: "), String(d.cause)) : null, rest ? el("div", {}, rest) : null];
}
