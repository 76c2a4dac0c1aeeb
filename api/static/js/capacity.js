// Capacity: a heatmap of resources x days from GET /capacity. Colour = utilisation; the numbers
// are in each cell's accessible name and in a tooltip on hover or keyboard focus; a click (or
// Enter) lists the patients booked there. Closures are hatched, the bottleneck row is marked.
// Lab managers (and admins) also get the form for closures and capacity changes.

import {
  ApiError,
  addDays,
  api,
  busy,
  can,
  clear,
  daysBetween,
  el,
  hideMessage,
  longDay,
  percent,
  run,
  shortDay,
  showError,
  showSuccess,
  startPage,
  stepName,
  weekday,
} from "./common.js";

const DEFAULT_DAYS = 31;
let who;
let range;
const page = () => document.getElementById("page");

// -- the range --------------------------------------------------------------------------------
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;

function rangeFromUrl(today) {
  // a hand-edited address with a bad date falls back to the default rather than breaking the page
  const query = new URLSearchParams(location.search);
  const asked = (name) => (ISO_DAY.test(query.get(name) || "") && !Number.isNaN(Date.parse(query.get(name))) ? query.get(name) : null);
  const from = asked("from") || today;
  const to = asked("to") || addDays(from, DEFAULT_DAYS - 1);
  return { from, to };
}

function rangeForm(onShow) {
  const box = el("div", { class: "message error", role: "alert", hidden: true });
  const form = el(
    "form",
    { id: "range-form", class: "inline", novalidate: true, "aria-label": "Days shown" },
    el("div", { class: "field" }, el("label", { for: "from" }, "From"), el("input", { id: "from", name: "from", type: "date", value: range.from, required: true })),
    el("div", { class: "field" }, el("label", { for: "to" }, "To"), el("input", { id: "to", name: "to", type: "date", value: range.to, required: true })),
    el("button", { type: "submit", class: "primary" }, "Show"),
    el("button", { type: "button", class: "secondary", onclick: () => shift(-DEFAULT_DAYS) }, "◀ Earlier"),
    el("button", { type: "button", class: "secondary", onclick: () => shift(DEFAULT_DAYS) }, "Later ▶"),
  );
  function shift(days) {
    form.elements.from.value = addDays(form.elements.from.value || range.from, days);
    form.elements.to.value = addDays(form.elements.to.value || range.to, days);
    form.requestSubmit();
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = { from: form.elements.from.value, to: form.elements.to.value };
    const missing = ["from", "to"].filter((name) => !wanted[name]).map((field) => ({ field, problem: "a date is required (YYYY-MM-DD)" }));
    if (missing.length) return showError(box, new ApiError(422, missing), form);
    try {
      await onShow(wanted);
      hideMessage(box, form);
    } catch (error) {
      showError(box, error, form); // the API's 422 names the field (e.g. "to: is before from")
    }
  });
  return [form, box];
}

// -- the heatmap ------------------------------------------------------------------------------
function level(cell) {
  if (cell.booked > cell.capacity) return cell.capacity === 0 && cell.note ? "over closed-over" : "over";
  if (cell.capacity === 0) return cell.note ? "closed" : "none";
  const u = cell.booked / cell.capacity;
  if (u === 0) return "u0";
  if (u <= 0.25) return "u1";
  if (u <= 0.5) return "u2";
  if (u <= 0.75) return "u3";
  if (u < 1) return "u4";
  return "u5";
}

function when(cell) {
  return cell.period === "week" ? `week of ${longDay(cell.day)}` : longDay(cell.day);
}

/** The numbers of one cell, in words (the accessible name and the tooltip say the same). */
export function describe(cell) {
  let text = `${cell.resource}, ${when(cell)}: ${cell.booked} booked of ${cell.capacity}, ${cell.free} free, utilisation ${percent(cell.utilisation)}`;
  if (cell.booked > cell.capacity) text += ", overbooked";
  if (cell.note) text += `; ${cell.capacity === 0 ? "closed" : "changed"}: ${cell.note}`;
  return text;
}

/** "liverpool/manufacturing_device" -> "manufacturing device" over "liverpool";
 *  "manufacturer_slot:axi-cel" -> "axi-cel" over "manufacturer slots a week". */
function resourceLabel(resource) {
  const [kind, product] = resource.split(":");
  if (product) return [el("span", {}, product), el("span", { class: "resource-where" }, `${kind.replace(/_/g, " ")}s a week`)];
  const slash = resource.indexOf("/");
  const centre = slash >= 0 ? resource.slice(0, slash) : "";
  const name = resource.slice(slash + 1).replace(/_/g, " ");
  return [el("span", {}, name), centre ? el("span", { class: "resource-where" }, centre) : null];
}

function byResource(cells) {
  const rows = new Map();
  for (const cell of cells) {
    if (!rows.has(cell.resource)) rows.set(cell.resource, []);
    rows.get(cell.resource).push(cell);
  }
  return rows;
}

function heatmap(table, onPick) {
  const days = daysBetween(table.first_day, table.last_day) + 1;
  const dayList = Array.from({ length: days }, (_, i) => addDays(table.first_day, i));
  const bottleneck = table.summary.bottleneck ? table.summary.bottleneck.resource : null;
  const head = el(
    "tr",
    {},
    el("th", { scope: "col", class: "resource" }, "Resource"),
    dayList.map((day) =>
      el(
        "th",
        { scope: "col", class: ["Sat", "Sun"].includes(weekday(day)) ? "weekend" : null, abbr: longDay(day) },
        weekday(day).slice(0, 2),
        el("br"),
        day.slice(8),
      ),
    ),
  );
  const body = [];
  for (const [resource, cells] of byResource(table.cells)) {
    const isBottleneck = resource === bottleneck;
    const label = el(
      "th",
      { scope: "row", class: "resource", title: resource },
      isBottleneck ? el("span", { class: "visually-hidden" }, "Bottleneck: ") : null,
      resourceLabel(resource),
      isBottleneck ? " ⚑" : null,
    );
    const tds = cells.map((cell) => {
      // a weekly resource (manufacturer slots) spans the days of its week inside the range
      const start = cell.day < table.first_day ? table.first_day : cell.day;
      const span = cell.period === "week" ? Math.min(daysBetween(start, addDays(cell.day, 6)), daysBetween(start, table.last_day)) + 1 : 1;
      const cls = level(cell);
      const button = el(
        "button",
        {
          type: "button",
          class: `cell ${cls}`,
          tabindex: "-1",
          "aria-label": describe(cell),
          "aria-pressed": "false",
          dataset: { resource: cell.resource, day: cell.day },
        },
        cls === "closed" ? "×" : cls === "none" ? "" : String(cell.booked), // closed but still booked: the count shows
      );
      button.addEventListener("click", () => onPick(cell, button));
      button.cellData = cell;
      return el("td", { colspan: span > 1 ? span : null }, button);
    });
    body.push(el("tr", { class: isBottleneck ? "bottleneck" : null, dataset: { resource } }, label, tds));
  }
  const grid = el(
    "table",
    { class: "heatmap", id: "heatmap", "aria-describedby": "heatmap-help" },
    el("caption", { class: "visually-hidden" }, `Utilisation per resource and day, ${longDay(table.first_day)} to ${longDay(table.last_day)}`),
    el("thead", {}, head),
    el("tbody", {}, body),
  );
  const first = grid.querySelector("button.cell");
  if (first) first.tabIndex = 0;
  grid.addEventListener("keydown", (event) => moveFocus(grid, event));
  attachTooltip(grid);
  return grid;
}

/** Arrow keys move between cells (one tab stop for the whole grid); Enter or Space opens one. */
function moveFocus(grid, event) {
  const current = event.target.closest("button.cell");
  if (!current) return;
  const rows = [...grid.tBodies[0].rows].map((row) => [...row.querySelectorAll("button.cell")]);
  const r = rows.findIndex((row) => row.includes(current));
  const c = rows[r].indexOf(current);
  let target = null;
  const nearest = (row) => {
    // the cell of that row covering the same day (weekly rows have fewer, wider cells)
    const day = current.dataset.day;
    let best = row[0];
    for (const cell of row) if (cell.dataset.day <= day) best = cell;
    return best;
  };
  switch (event.key) {
    case "ArrowRight": target = rows[r][c + 1]; break;
    case "ArrowLeft": target = rows[r][c - 1]; break;
    case "ArrowDown": target = rows[r + 1] && nearest(rows[r + 1]); break;
    case "ArrowUp": target = rows[r - 1] && nearest(rows[r - 1]); break;
    case "Home": target = rows[r][0]; break;
    case "End": target = rows[r][rows[r].length - 1]; break;
    default: return;
  }
  event.preventDefault();
  if (!target) return;
  current.tabIndex = -1;
  target.tabIndex = 0;
  target.focus();
}

function attachTooltip(grid) {
  let tip = document.getElementById("heatmap-tooltip");
  const first = !tip;
  if (first) {
    tip = el("div", { class: "tooltip", id: "heatmap-tooltip", role: "tooltip", hidden: true });
    document.body.append(tip);
  }
  const show = (button) => {
    const cell = button.cellData;
    clear(
      tip,
      el("strong", {}, `${cell.resource}, ${when(cell)}`),
      el("br"),
      `${cell.booked} booked of ${cell.capacity} · ${cell.free} free · ${percent(cell.utilisation)}`,
      cell.booked > cell.capacity ? el("div", {}, "overbooked") : null,
      cell.note ? el("div", {}, `${cell.capacity === 0 ? "Closed" : "Changed"}: ${cell.note}`) : null,
      cell.patients.length ? el("div", {}, `${cell.patients.length} booking${cell.patients.length === 1 ? "" : "s"}; select the cell for the list`) : null,
    );
    tip.hidden = false;
    const box = button.getBoundingClientRect();
    const left = Math.min(box.left, window.innerWidth - tip.offsetWidth - 8);
    const top = box.bottom + 6 + tip.offsetHeight > window.innerHeight ? box.top - tip.offsetHeight - 6 : box.bottom + 6;
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  };
  const hide = () => { tip.hidden = true; };
  grid.addEventListener("mouseover", (e) => { const b = e.target.closest("button.cell"); if (b) show(b); else hide(); });
  grid.addEventListener("mouseleave", hide);
  grid.addEventListener("focusin", (e) => { const b = e.target.closest("button.cell"); if (b) show(b); });
  grid.addEventListener("focusout", hide);
  if (first) {
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") hide(); });
    document.addEventListener("scroll", hide, true);
  }
}

function legend() {
  const items = [
    ["u0", "empty"], ["u1", "up to 25%"], ["u2", "up to 50%"], ["u3", "up to 75%"], ["u4", "under 100%"],
    ["u5", "full"], ["over", "overbooked"], ["closed", "closed"], ["over closed-over", "closed, bookings still on it"], ["none", "no capacity that day"],
  ];
  return el(
    "ul",
    { class: "legend", "aria-label": "Colour legend" },
    items.map(([cls, text]) => el("li", {}, el("span", { class: `swatch cell ${cls}`, "aria-hidden": "true" }), text)),
    el("li", {}, "⚑ bottleneck resource (highest mean utilisation)"),
  );
}

function summary(table) {
  const s = table.summary;
  const parts = [];
  parts.push(
    s.bottleneck
      ? el("p", { id: "bottleneck" }, el("strong", {}, "Bottleneck: "), `${s.bottleneck.resource}, mean utilisation ${percent(s.bottleneck.mean_utilisation)}`)
      : el("p", { id: "bottleneck" }, "No bookings in these days."),
  );
  if (s.overbooked.length) {
    parts.push(
      el("p", { class: "field-error" }, `Overbooked: ${s.overbooked.map((o) => `${o.resource} on ${longDay(o.day)} (${o.booked} of ${o.capacity})`).join("; ")}`),
    );
  }
  if (s.busiest.length) {
    parts.push(el("p", { class: "muted" }, `Busiest: ${s.busiest.slice(0, 3).map((b) => `${b.resource} ${shortDay(b.day)} (${b.booked} of ${b.capacity})`).join(", ")}`));
  }
  return el("div", { class: "summary-line" }, parts);
}

// -- one cell's patients ----------------------------------------------------------------------
function showCell(region, cell) {
  const list = cell.patients.length
    ? el(
        "ul",
        { class: "booked" },
        cell.patients.map((p) =>
          el("li", { dataset: { patient: p.patient } }, el("a", { href: `/ui/patients/${encodeURIComponent(p.patient)}` }, p.patient), ` · ${stepName(p.step)}`, p.amount !== 1 ? ` × ${p.amount}` : ""),
        ),
      )
    : el("p", { class: "muted" }, "Nobody is booked here.");
  clear(
    region,
    el("h2", { id: "cell-title", tabindex: "-1" }, `${cell.resource}, ${when(cell)}`),
    el("p", {}, `${cell.booked} booked of ${cell.capacity} · ${cell.free} free · utilisation ${percent(cell.utilisation)}`),
    cell.note ? el("p", {}, el("strong", {}, cell.capacity === 0 ? "Closed: " : "Capacity changed: "), cell.note) : null,
    list,
  );
  region.hidden = false;
}

// -- closures and capacity changes ------------------------------------------------------------
function changesSection(site, changes, onChanged) {
  const section = el("section", { class: "panel", "aria-labelledby": "changes-title" }, el("h2", { id: "changes-title", tabindex: "-1" }, "Closures and capacity changes"));
  const manage = can(who.role, "capacity-change");
  const box = el("div", { class: "message", role: "status", hidden: true });
  const rows = [
    ...site.capacity_changes.map((c) => ({ ...c, source: "site calendar" })),
    ...changes.map((c) => ({ ...c, source: `added by ${c.created_by}` })),
  ].sort((a, b) => (a.first_day < b.first_day ? -1 : 1));
  const table = rows.length
    ? el(
        "div",
        { class: "table-scroll" },
        el(
          "table",
          { class: "data", id: "changes" },
          el("thead", {}, el("tr", {}, ["Resource", "Days", "Capacity", "Reason", "Source", manage ? "Action" : null].filter(Boolean).map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            rows.map((c) =>
              el(
                "tr",
                {},
                el("td", {}, c.centre ? `${c.centre}/${c.resource}` : c.resource),
                el("td", {}, c.first_day === c.last_day ? longDay(c.first_day) : `${longDay(c.first_day)} to ${longDay(c.last_day)}`),
                el("td", {}, c.capacity === 0 ? "closed" : String(c.capacity)),
                el("td", {}, c.reason),
                el("td", {}, c.source),
                manage
                  ? el(
                      "td",
                      {},
                      c.id
                        ? el("button", {
                            type: "button",
                            class: "danger",
                            onclick: async (event) => {
                              try {
                                await busy(event.target, "Withdrawing…", () => api("DELETE", `/capacity/changes/${c.id}`));
                                await onChanged();
                                const stale = document.getElementById("change-result"); // it described a change that is gone
                                if (stale) hideMessage(stale);
                                document.getElementById("changes-title")?.focus();
                              } catch (error) {
                                showError(box, error);
                              }
                            },
                          }, "Withdraw")
                        : "",
                    )
                  : null,
              ),
            ),
          ),
        ),
      )
    : el("p", { class: "muted" }, "None.");
  section.append(table, box);
  if (manage) section.append(changeForm(site, box, onChanged));
  return section;
}

function changeForm(site, box, onChanged) {
  const options = site.resources.map((r) => {
    const id = r.centre ? `${r.centre}/${r.kind}` : r.kind;
    return el("option", { value: JSON.stringify({ resource: r.kind, centre: r.centre || null }) }, `${id} (usually ${r.capacity} ${r.unit || ""})`.trim());
  });
  const form = el(
    "form",
    { id: "change-form", class: "inline", novalidate: true },
    el("h3", { style: { flexBasis: "100%", margin: "0.5rem 0 0" } }, "Add a closure or capacity change"),
    el("div", { class: "field" }, el("label", { for: "change-resource" }, "Resource"), el("select", { id: "change-resource", name: "resource" }, options)),
    el("div", { class: "field" }, el("label", { for: "change-first" }, "First day"), el("input", { id: "change-first", name: "first_day", type: "date", required: true })),
    el("div", { class: "field" }, el("label", { for: "change-last" }, "Last day"), el("input", { id: "change-last", name: "last_day", type: "date", required: true })),
    el("div", { class: "field" }, el("label", { for: "change-capacity" }, "Capacity (0 = closed)"), el("input", { id: "change-capacity", name: "capacity", type: "number", min: "0", value: "0", required: true })),
    el("div", { class: "field wide" }, el("label", { for: "change-reason" }, "Reason"), el("input", { id: "change-reason", name: "reason", type: "text", maxlength: "500", required: true })),
    el("button", { type: "submit", class: "primary" }, "Add change"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const target = JSON.parse(f.resource.value);
    const body = {
      ...target,
      first_day: f.first_day.value || null,
      last_day: f.last_day.value || null,
      capacity: f.capacity.value === "" ? null : Number(f.capacity.value),
      reason: f.reason.value,
    };
    try {
      const added = await busy(form.querySelector("button[type=submit]"), "Adding…", () => api("POST", "/capacity/changes", body));
      hideMessage(box, form);
      await onChanged();
      const result = document.getElementById("change-result");
      reportBroken(result, added);
      result.setAttribute("tabindex", "-1");
      result.focus(); // the form was redrawn: keyboard users continue from the answer
    } catch (error) {
      showError(box, error, form);
    }
  });
  return form;
}

function reportBroken(box, added) {
  if (!added.broken.length) {
    showSuccess(box, `Change ${added.id} added. No booking is broken by it.`);
    return;
  }
  const replan = el("button", { type: "button", class: "primary" }, `Re-plan these ${added.broken.length} patients`);
  replan.addEventListener("click", async () => {
    try {
      const answer = await busy(replan, "Re-planning…", () => api("POST", `/capacity/changes/${added.id}/replan`));
      showSuccess(box, `Re-planned as plan version ${answer.plan_version}: ${answer.diff ? answer.diff.bookings_moved : 0} bookings moved.`);
      await load(range);
    } catch (error) {
      showError(box, error);
    }
  });
  clear(
    box,
    el("p", {}, `Change ${added.id} added. It breaks the bookings of:`),
    el("ul", {}, added.broken.map((b) => el("li", { dataset: { patient: b.patient } }, el("a", { href: `/ui/patients/${encodeURIComponent(b.patient)}` }, b.patient), ` · ${b.steps.map(stepName).join(", ")} on ${b.days.map(shortDay).join(", ")}`))),
    can(who.role, "replan") ? replan : null,
  );
  box.hidden = false;
  box.classList.remove("success");
  box.classList.add("error");
}

// -- the page ---------------------------------------------------------------------------------
async function load(wanted) {
  const query = new URLSearchParams({ from: wanted.from, to: wanted.to });
  const [table, changes, catalogue] = await Promise.all([
    api("GET", `/capacity?${query}`),
    api("GET", "/capacity/changes"),
    api("GET", "/catalogue"),
  ]);
  range = wanted;
  history.replaceState(null, "", `/ui/capacity?${query}`);
  const map = document.getElementById("heatmap-area");
  const detail = el("section", { id: "cell-detail", class: "panel cell-detail", "aria-live": "polite", hidden: true });
  let pressed = null;
  const grid = heatmap(table, (cell, button) => {
    if (pressed) pressed.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-pressed", "true");
    pressed = button;
    showCell(detail, cell);
  });
  clear(
    map,
    summary(table),
    legend(),
    el("p", { id: "heatmap-help", class: "muted" }, "Numbers show the bookings. Use Tab to reach the grid, the arrow keys to move, Enter to list the patients booked in a cell."),
    el("div", { class: "heatmap-scroll" }, grid),
    detail,
  );
  clear(document.getElementById("changes-area"), changesSection(catalogue.site, changes, () => load(range)));
}

async function main() {
  who = await startPage("capacity");
  range = rangeFromUrl(who.today);
  const [form, box] = rangeForm(load);
  clear(
    page(),
    el("section", { class: "panel", "aria-label": "Days shown" }, form, box),
    el("div", { id: "change-result", class: "message", role: "status", hidden: true }),
    el("div", { id: "heatmap-area" }),
    el("div", { id: "changes-area" }),
  );
  try {
    await load(range);
  } catch (error) {
    showError(box, error, form);
  }
}

run(main);
