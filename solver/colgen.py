"""Column generation: a proven bound and a plan, with exact per-patient pricing.

A column is one patient's complete schedule. The master LP (HiGHS) chooses a
mix of columns: one convexity row per patient (its columns and an
"unscheduled" column at the unscheduled penalty add up to one, so the master is
always feasible) and one capacity row per resource cell, day by day (manufacturer
slots week by week, as ``solver.model`` counts them), at the capacity left once
frozen bookings have taken theirs (``residual_after_frozen``).

Each round prices every patient with the master's duals: the capacity rows'
duals are per-cell prices, and ``solver.pricing`` finds the patient's cheapest
schedule at those prices exactly. Whatever the LP's accuracy, the Lagrangian
bound ``sum_p min(penalty, price_p) - prices . capacity`` is a valid lower bound
on every plan, so the best one seen is kept. Rounds stop when no column prices
below its patient's convexity dual (the LP is optimal over all columns).

The plan is a MIP over the generated columns (started from the greedy plan).
Where it is above the bound, the exact phase lists, for every patient, every
schedule whose priced cost is within ``plan - bound`` of the patient's best:
no plan better than the incumbent can use any other (its cost is at least the
bound plus each patient's excess over their best). The MIP over those columns
then proves the optimum, or raises the bound to its own.

The nightly re-solve (``Stability``) adds, per patient, the move penalty of each
current booking as a cost per step and start day in the pricing (``StepMove``),
"keep as is" as a first column, and leaves patients who must stay scheduled
without an "unscheduled" column; an unscheduled column costs the penalty plus
moving every booking. Frozen steps are a domain of one day in the pricing.

Propose's alternatives (``solver.propose``) replace some patients' cost and
allowed start days (``Override``): a moved patient costs only its disruption
(a cost per day moved, as a ``StepMove``) and may not slip past a cap nor move
into the freeze window; the proposed patient's infusion is capped at the day
before the previous option's. Every patient keeps an "unscheduled" column at
the (artificial) penalty, so the master is feasible before any plan with the
proposed patient is known.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import highspy
import numpy as np

from solver.baseline import Schedule, residual_after_frozen
from solver.instance import Instance, PatientSpec
from solver.objective import CostTerms, StepMove, cost_terms
from solver.pricing import TAIL, CellPrices, PatientPricer, column_cells

REDUCED_COST_TOLERANCE = 1e-6


def integer_bound(value: float) -> int:
    """The integer objective bound implied by a real one: rounded up, after allowing for the floating-point
    error of sums near ``value`` (relative, so that large penalties never round a bound up past the truth;
    a looser bound is still a bound)."""
    return math.ceil(value - 1e-9 * max(1.0, abs(value)) - 1e-6)


FIRST_STAGE_SHARE = 0.3  # of the time limit, for the first stage on an over-subscribed cohort
FIRST_MIP_SHARE = 0.5  # of the time left after the rounds, for the first MIP over the generated columns
ROUNDS_SHARE = 0.5  # of the time limit, for the LP rounds when they do not converge sooner
ENUMERATION_LIMIT = 200_000  # columns the exact phase may add in all; beyond that the bound stays the Lagrangian one


@dataclass
class ColgenResult:
    schedules: dict[str, Schedule | None]
    objective: int
    bound: int
    proven: bool
    bound_method: str  # "lagrangian", "exact" (every column that could improve listed), or "mip"
    time_to_bound: float  # seconds from ``started`` to the best bound
    time_to_plan: float  # seconds from ``started`` to the returned plan
    rounds: int
    columns: int
    choice: dict[int, int] = field(default_factory=dict)  # patient index -> master column index
    fewest_unscheduled: int = 0  # proven by the first stage (over-subscribed cohorts), else 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TailGuard:
    """Fair waiting's tail guard (``pathway.site.WaitingPolicy``), in days from approval to infusion:
    each patient's longest allowed wait, and at most ``above`` patients waiting more than ``p90``."""

    longest: dict[str, int]
    p90: int
    above: int
    exempt: frozenset[str] = frozenset()  # left out by first come, first served: their wait was "never"

    def infusion_days(self, spec: PatientSpec) -> list[int]:
        step = spec.steps[spec.infusion]
        if step.frozen is not None:
            return [step.frozen]
        return [d for d in step.starts if d - spec.approval <= self.longest[spec.id]]

    def say(self) -> str:
        return (
            f"nobody waits longer than {max(self.longest.values(), default=0)} days (first come, first served's "
            f"longest, or their own wait alone), at most {self.above} beyond {self.p90} days (its 90th percentile)"
        )

    def counts(self, spec: PatientSpec, starts: list[int]) -> bool:
        """Whether this schedule is one of the ``above`` allowed beyond ``p90``: a patient first come, first
        served left out counts never (scheduling them at all shortens their wait)."""
        return spec.id not in self.exempt and starts[spec.infusion] - spec.approval > self.p90


@dataclass(frozen=True)
class Stability:
    """The nightly re-solve's part (``solver.resolve``): what moving each current booking costs, and who
    must stay scheduled (no "unscheduled" column: nobody loses their place to someone else)."""

    moves: dict[str, tuple[StepMove, ...]]  # patient id -> the move cost of each booked, not-frozen step
    required: frozenset[str] = frozenset()

    def as_is(self, spec: PatientSpec) -> list[int] | None:
        """The patient's current schedule (frozen steps on their day), if every step is booked."""
        was = {m.step: m.was for m in self.moves.get(spec.id, ())}
        starts = [s.frozen if s.frozen is not None else was.get(s.index) for s in spec.steps]
        return None if None in starts else starts


@dataclass(frozen=True)
class Override:
    """A caller's own view of one patient, in place of the site's (propose's alternatives): its cost
    terms and its allowed start days per step (a frozen step: its one day)."""

    terms: CostTerms
    domains: list[list[int]]


@dataclass
class _Column:
    patient: int
    starts: list[int] | None  # None: the patient's "unscheduled" column
    cost: int


class Master:
    """The restricted master: one HiGHS model, columns only ever added (HiGHS warm-starts from the last basis)."""

    def __init__(
        self,
        instance: Instance,
        specs: list[PatientSpec],
        unscheduled: list[int | None],
        guard: TailGuard | None = None,
        threads=1,
    ):
        """``unscheduled``: per patient, the cost of its "unscheduled" column (None: it has none)."""
        self.instance = instance
        self.specs = specs
        self.unscheduled = unscheduled
        self.guard = guard
        self.capacity = residual_after_frozen(instance).left
        self.highs = _new_highs(threads)
        n = len(specs)
        # Rows 0..n-1: convexity; then one per resource cell.
        self.cell_row: dict[tuple[str, int], int] = {}
        lower, upper = [1.0] * n, [1.0] * n
        for rid, caps in self.capacity.items():
            for cell, cap in enumerate(caps):
                self.cell_row[rid, cell] = n + len(self.cell_row)
                lower.append(-highspy.kHighsInf)
                upper.append(float(cap))
        self.tail_row = None
        if guard is not None:  # at most ``guard.above`` patients wait beyond ``guard.p90``
            self.tail_row = len(lower)
            lower.append(-highspy.kHighsInf)
            upper.append(float(guard.above))
        rows = len(lower)
        self.highs.addRows(
            rows,
            np.array(lower),
            np.array(upper),
            0,
            np.zeros(rows, dtype=np.int32),
            np.array([], dtype=np.int32),
            np.array([], dtype=float),
        )
        self.columns: list[_Column] = []
        self._seen: set[tuple[int, tuple[int, ...]]] = set()
        self._pending: list[tuple[_Column, dict[int, float]]] = []
        for p, cost in enumerate(unscheduled):
            if cost is not None:
                self._queue(_Column(p, None, cost), {p: 1.0})
        self.flush()

    def value(self, p: int, priced: tuple[float, list[int]] | None) -> float:
        """Patient ``p``'s term of the Lagrangian bound: the cheaper of its best priced schedule and
        leaving it out (-inf if it has neither: no valid bound at these prices)."""
        out = self.unscheduled[p]
        if priced is not None:
            out = priced[0] if out is None else min(out, priced[0])
        return -math.inf if out is None else out

    def _queue(self, column: _Column, entries: dict[int, float]) -> None:
        self._pending.append((column, entries))

    def add(self, patient: int, starts: list[int], cost: int) -> bool:
        """Queue a schedule of ``patient`` as a column (False if it is already in)."""
        key = (patient, tuple(starts))
        if key in self._seen:
            return False
        self._seen.add(key)
        entries = {patient: 1.0}
        for cell, amount in column_cells(self.instance, self.specs[patient], starts).items():
            entries[self.cell_row[cell]] = float(amount)
        if self.guard is not None and self.guard.counts(self.specs[patient], starts):
            entries[self.tail_row] = 1.0
        self._queue(_Column(patient, starts, cost), entries)
        return True

    def flush(self) -> None:
        if not self._pending:
            return
        starts, index, value = [], [], []
        for _, entries in self._pending:
            starts.append(len(index))
            index.extend(entries)
            value.extend(entries.values())
        count = len(self._pending)
        self.highs.addCols(
            count,
            np.array([float(c.cost) for c, _ in self._pending]),
            np.zeros(count),
            np.full(count, highspy.kHighsInf),
            len(index),
            np.array(starts, dtype=np.int32),
            np.array(index, dtype=np.int32),
            np.array(value, dtype=float),
        )
        self.columns.extend(c for c, _ in self._pending)
        self._pending = []

    def solve_lp(self) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """(LP objective, per-cell prices >= 0 by resource, convexity duals)."""
        self.flush()
        self.highs.run()
        duals = np.asarray(self.highs.getSolution().row_dual)
        n = len(self.specs)
        prices = CellPrices()
        for rid, caps in self.capacity.items():
            rows = [self.cell_row[rid, cell] for cell in range(len(caps))]
            prices[rid] = np.maximum(0.0, -duals[rows])
        if self.tail_row is not None:
            prices[TAIL] = np.maximum(0.0, -duals[[self.tail_row]])
        return self.highs.getInfo().objective_function_value, prices, duals[:n]

    def capacity_value(self, prices: dict[str, np.ndarray]) -> float:
        """``prices . capacity`` over every relaxed row (the tail guard's too)."""
        value = float(sum(np.dot(prices[rid], np.asarray(caps, dtype=float)) for rid, caps in self.capacity.items()))
        if self.tail_row is not None:
            value += float(prices[TAIL][0]) * self.guard.above
        return value

    def solve_mip(self, start: dict[int, int], time_limit: float) -> tuple[dict[int, int], int, float, bool]:
        """The best integer choice of columns: (patient -> column index, objective, dual bound, optimal?).

        ``start``: a column index per patient, a feasible choice to start from (the incumbent).
        """
        self.flush()
        mip = _new_highs(1)
        mip.passModel(self.highs.getLp())
        count = len(self.columns)
        mip.changeColsIntegrality(
            count, np.arange(count, dtype=np.int32), np.full(count, highspy.HighsVarType.kInteger)
        )
        mip.setOptionValue("mip_rel_gap", 0.0)
        mip.setOptionValue("mip_abs_gap", 0.999)  # the objective is an integer
        mip.setOptionValue("time_limit", max(0.1, time_limit))
        incumbent = highspy.HighsSolution()
        values = np.zeros(count)
        values[list(start.values())] = 1.0
        incumbent.col_value = list(values)
        incumbent.value_valid = True
        mip.setSolution(incumbent)
        mip.run()
        chosen = dict(start)
        objective = self.objective_of(start)
        solution = mip.getSolution()
        if solution.value_valid:
            picked = {}
            for k, v in enumerate(solution.col_value):
                if v > 0.5:
                    picked[self.columns[k].patient] = k
            if len(picked) == len(self.specs) and self.objective_of(picked) < objective:
                chosen, objective = picked, self.objective_of(picked)
        info = mip.getInfo()
        optimal = mip.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return chosen, objective, info.mip_dual_bound, optimal

    def objective_of(self, choice: dict[int, int]) -> int:
        return sum(self.columns[k].cost for k in choice.values())

    def column_index(self) -> dict[tuple[int, tuple[int, ...] | None], int]:
        return {(c.patient, None if c.starts is None else tuple(c.starts)): k for k, c in enumerate(self.columns)}


def _new_highs(threads: int):
    # The bare binding: ``highspy.Highs`` enables callbacks in its constructor, which prints HiGHS's
    # banner to stdout before ``output_flag`` can be set; the binding is silent once it is.
    highs = highspy._Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", threads)
    highs.setOptionValue("random_seed", 0)
    return highs


def column_generation(
    instance: Instance,
    specs: list[PatientSpec],
    start: dict[str, Schedule | None],
    penalty: int,
    started: float,
    deadline: float,
    reproducible: bool = False,
    guard: TailGuard | None = None,
    max_rounds: int = 500,
    stability: Stability | None = None,
    overrides: dict[str, Override] | None = None,
    first_stage: bool = True,
    exact_phase: bool = True,
) -> ColgenResult:
    """Bound and plan for ``specs`` (the patients who can be scheduled alone).

    ``start``: a feasible plan (the greedy one) to begin from and never do worse than.
    ``deadline``: a ``time.perf_counter()`` by which to stop. ``reproducible``: the LP rounds run
    to their end whatever the clock says (the deadline stays a safety net for the MIPs), so the
    same input gives the same plan on any machine load; HiGHS runs on one thread either way.
    ``guard``: the tail guard, if the site's waiting policy has it (``start`` must keep to it).
    ``stability``: the nightly re-solve's move costs and required patients (``start`` must schedule them).
    ``overrides``: per patient id, cost terms and allowed start days replacing the site's (``start``
    must keep to them). ``first_stage``: where ``start`` leaves someone out, first fit as many patients
    as possible (off: the cost stage alone, where the penalty already puts that first). ``exact_phase``:
    list every column that could still improve an unproven plan (off: the caller polishes with CP-SAT,
    as propose does, whose "unscheduled" start leaves too wide a gap to list).
    """
    weights = instance.problem.site.objective
    terms = [cost_terms(spec, weights) for spec in specs]
    required: frozenset[str] = frozenset()
    if stability is not None:
        terms = [
            dataclasses.replace(t, moves=stability.moves.get(spec.id, ())) for spec, t in zip(specs, terms, strict=True)
        ]
        required = stability.required
    overrides = overrides or {}
    terms = [overrides[spec.id].terms if spec.id in overrides else t for spec, t in zip(specs, terms, strict=True)]
    domains = [overrides[spec.id].domains if spec.id in overrides else None for spec in specs]
    pricers = [_pricer(instance, spec, t, guard, d) for spec, t, d in zip(specs, terms, domains, strict=True)]
    left_out = [None if spec.id in required else penalty + t.dropping() for spec, t in zip(specs, terms, strict=True)]
    master = Master(instance, specs, left_out, guard)
    most = None
    if first_stage and any(
        start.get(spec.id) is None for spec in specs
    ):  # over-subscribed: fit as many as possible first
        stage_end = time.perf_counter() + FIRST_STAGE_SHARE * max(0.0, deadline - time.perf_counter())
        most = _most_scheduled(instance, specs, guard, start, stage_end, reproducible, max_rounds, required, domains)
        for p, starts in most.columns:
            master.add(p, starts, terms[p].evaluate(starts))
    for p, spec in enumerate(specs):
        schedule = start.get(spec.id)
        if schedule is not None:
            master.add(p, schedule.starts, terms[p].evaluate(schedule.starts))
        alone = pricers[p].best()
        if alone is not None:
            master.add(p, alone[1], terms[p].evaluate(alone[1]))
        kept = stability.as_is(spec) if stability is not None else None
        if kept is not None and pricers[p].allows(kept):  # "keep as is", where it still keeps the patient's rules
            master.add(p, kept, terms[p].evaluate(kept))

    # The LP rounds may take half the time left; the MIP and the exact phase need the rest.
    rounds_end = time.perf_counter() + ROUNDS_SHARE * max(0.0, deadline - time.perf_counter())
    lagrange = _rounds(master, pricers, terms, rounds_end, reproducible, max_rounds, started)
    best_bound, best_prices, best_values = lagrange.bound, lagrange.prices, lagrange.values
    time_to_bound, rounds = lagrange.time_to_bound, lagrange.rounds

    bound = integer_bound(best_bound)
    index = master.column_index()
    incumbent = {
        p: index[p, None if start.get(spec.id) is None else tuple(start[spec.id].starts)]
        for p, spec in enumerate(specs)
    }
    if most is not None and most.plan is not None:
        fitted = {p: index[p, None if starts is None else tuple(starts)] for p, starts in most.plan.items()}
        if master.objective_of(fitted) < master.objective_of(incumbent):
            incumbent = fitted

    def remaining() -> float:
        return deadline - time.perf_counter()

    # Half the time left at most: the exact phase, which can prove the plan, needs the rest.
    choice, objective, _, _ = master.solve_mip(incumbent, FIRST_MIP_SHARE * remaining())
    time_to_plan = time.perf_counter() - started
    result = ColgenResult(
        {}, objective, bound, objective <= bound, "lagrangian", time_to_bound, time_to_plan, rounds, 0
    )
    if most is not None:
        result.fewest_unscheduled = most.fewest
    if exact_phase and not result.proven and best_prices is not None and remaining() > 0:
        _exact_phase(master, pricers, terms, best_prices, best_values, best_bound, choice, objective, remaining, result)
        choice = result.choice
        result.time_to_plan = time.perf_counter() - started
        if result.bound_method != "lagrangian":
            result.time_to_bound = result.time_to_plan
    result.columns = len(master.columns)
    result.schedules = {spec.id: None for spec in specs}
    for p, k in choice.items():
        column = master.columns[k]
        if column.starts is not None:
            result.schedules[specs[p].id] = Schedule(column.starts, column.cost)
    return result


@dataclass
class _Lagrange:
    bound: float
    prices: dict[str, np.ndarray] | None
    values: np.ndarray | None  # per patient: min(penalty, priced best) at ``prices``
    time_to_bound: float
    rounds: int


def _rounds(master: Master, pricers, terms, end: float, reproducible: bool, max_rounds: int, started) -> _Lagrange:
    """LP rounds until no column prices below its patient's convexity dual (or ``end``): the best bound."""
    best = _Lagrange(-math.inf, None, None, 0.0, 0)
    # One round at least, whatever the clock: it gives a valid bound.
    while best.rounds < max_rounds and (best.rounds == 0 or reproducible or time.perf_counter() < end):
        best.rounds += 1
        _, prices, convexity = master.solve_lp()
        found = [pricer.best(prices) for pricer in pricers]
        values = np.array([master.value(p, f) for p, f in enumerate(found)], dtype=float)
        bound = float(values.sum()) - master.capacity_value(prices)
        if bound > best.bound + 1e-9:
            best.bound, best.prices, best.values = bound, prices, values
            best.time_to_bound = time.perf_counter() - started
        added = 0
        for p, f in enumerate(found):
            if f is not None and f[0] - convexity[p] < -REDUCED_COST_TOLERANCE:
                added += master.add(p, f[1], terms[p].evaluate(f[1]))
        if not added:
            break
    return best


@dataclass
class _FirstStage:
    columns: list[tuple[int, list[int]]]  # every schedule it generated (patient index, starts)
    plan: dict[int, list[int] | None] | None  # its best plan: the most patients scheduled
    fewest: int  # proven: at least this many patients cannot be scheduled


def _most_scheduled(instance, specs, guard, start, end, reproducible, max_rounds, required, domains) -> _FirstStage:
    """Column generation on the number of patients left out (each 1, every schedule 0; the ``required``
    are never left out): a proven minimum and a plan that leaves out as few as it can find, whose
    columns seed the cost stage. ``domains``: per patient, allowed start days replacing the spec's (None:
    the spec's)."""
    nought = [CostTerms({}, 0, spec.infusion) for spec in specs]
    pricers = [_pricer(instance, spec, t, guard, d) for spec, t, d in zip(specs, nought, domains, strict=True)]
    master = Master(instance, specs, [None if spec.id in required else 1 for spec in specs], guard)
    for p, spec in enumerate(specs):
        if start.get(spec.id) is not None:
            master.add(p, start[spec.id].starts, 0)
    lagrange = _rounds(master, pricers, nought, end, reproducible, max_rounds, time.perf_counter())
    fewest = max(0, integer_bound(lagrange.bound))
    index = master.column_index()
    incumbent = {
        p: index[p, None if start.get(spec.id) is None else tuple(start[spec.id].starts)]
        for p, spec in enumerate(specs)
    }
    choice, _, _, _ = master.solve_mip(incumbent, max(0.1, end - time.perf_counter()))
    plan = {p: master.columns[k].starts for p, k in choice.items()}
    columns = [(c.patient, c.starts) for c in master.columns if c.starts is not None]
    return _FirstStage(columns, plan, fewest)


def _pricer(
    instance: Instance, spec: PatientSpec, terms, guard: TailGuard | None, domains: list[list[int]] | None = None
) -> PatientPricer:
    if guard is None:
        return PatientPricer(instance, spec, terms, domains)
    if domains is None:
        domains = [[s.frozen] if s.frozen is not None else s.starts for s in spec.steps]
    allowed = set(guard.infusion_days(spec))
    domains = [*domains]
    domains[spec.infusion] = [d for d in domains[spec.infusion] if d in allowed]
    tail_after = None if spec.id in guard.exempt else spec.approval + guard.p90
    return PatientPricer(instance, spec, terms, domains, tail_after=tail_after)


def _exact_phase(master, pricers, terms, prices, values, lagrangian, choice, objective, remaining, result) -> None:
    """List every column that could still be in a plan below ``objective``; re-solve the MIP over them."""
    slack = objective - 1 - lagrangian  # the most any one patient's column may exceed their best
    result.choice = choice
    added = 0
    for p, pricer in enumerate(pricers):
        listed, complete = pricer.enumerate(prices, values[p] + slack, ENUMERATION_LIMIT - added)
        if not complete or remaining() <= 0:
            result.notes.append("exact phase stopped: too many columns within the gap, or out of time")
            return
        for starts in listed:
            added += master.add(p, starts, terms[p].evaluate(starts))
    choice, objective, dual_bound, optimal = master.solve_mip(choice, remaining())
    result.choice, result.objective = choice, objective
    if optimal:
        result.bound, result.proven, result.bound_method = objective, True, "exact"
    elif math.isfinite(dual_bound) and integer_bound(dual_bound) > result.bound:  # -inf: stopped before the root
        result.bound, result.bound_method = min(objective, integer_bound(dual_bound)), "mip"
        result.proven = result.bound >= objective
