"""Exact best schedule of one patient: a dynamic programme over the patient's lag graph.

The steps of a pathway and its lags form a small graph (a step, and the lags
tying it to earlier steps). A patient's cost (``solver.objective``) is a sum of
per-step terms (linear in a start day, lateness against a target) and pairwise
hinges on steps that a lag already ties (a fresh graft's age). Given a price per
resource cell (a column generation master's duals; nought for a capacity-free
solve), a step's cost on day ``t`` is its own cost plus the prices of the cells
it would use; the cheapest complete schedule is then a min-sum problem on the
lag graph:

* where the graph is a forest, one pass from the leaves up: a child's best value
  for each day of its parent is a sliding-window minimum over the lag's window
  (a sparse table: ``log2(width)`` vectorised minima), plus its own subtree;
* where it has cycles (the fresh allo graft: booking, conditioning, collection
  and infusion tie each other), the fewest steps whose removal leaves a forest
  are enumerated: every value of theirs is one row of a batch, and the forest
  pass runs on all rows at once.

It reads the same allowed start days (``solver.instance``), lag windows
(``LagSpec``, as ``solver.lags`` adds them to CP-SAT) and cost terms
(``solver.objective``) as the CP-SAT model, so the two agree on every schedule.
Frozen steps keep their day and use no priced capacity (the model takes their
load off the capacity first). The nightly re-solve's move penalty (``StepMove``)
is one more cost per step and start day, so "keep as is" is priced exactly too.
``enumerate`` lists every schedule within a threshold of the best, which the column generation's exact phase needs.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from solver.instance import Instance, PatientSpec, resource_cells
from solver.objective import CostTerms

INF = np.inf
EPS = 1e-7  # relative to the threshold: a column at it is enumerated, whatever the rounding of sums
TAIL = "tail-guard"  # a price key: the price of an infusion later than ``PatientPricer.tail_after``


@dataclass(frozen=True)
class Edge:
    """``start[b] - start[a]`` lies in ``[lo, hi]`` (None: unbounded); ``hinges`` add
    ``weight * max(0, sign * (start[b] - start[a]) - allowance)``."""

    a: int
    b: int
    lo: int | None
    hi: int | None
    hinges: tuple[tuple[int, int, int], ...] = ()  # (weight, sign, allowance)

    def cost(self, d: np.ndarray | int):
        return sum(w * np.maximum(0, sign * d - allowance) for w, sign, allowance in self.hinges)


@dataclass
class _Tree:
    """The forest left once ``enumerated`` steps are fixed: roots, and each step's children in pre-order."""

    enumerated: list[int]
    roots: list[int]
    children: dict[int, list[tuple[int, Edge]]] = field(default_factory=dict)
    order: list[tuple[int, int | None, Edge | None]] = field(default_factory=list)  # (step, parent, edge) pre-order


def _edges(spec: PatientSpec, terms: CostTerms) -> list[Edge]:
    """One edge per pair of steps tied by lags or a pairwise hinge; the lag windows of a pair intersected."""
    windows: dict[tuple[int, int], list] = {}
    for step in spec.steps:
        for lag in step.lags:
            other = spec.steps[lag.other]
            if step.frozen is not None and other.frozen is not None:
                continue  # as ``add_lags``: nothing to decide
            offset = other.duration if lag.anchor_end else 0
            a, b = sorted((lag.other, step.index))
            lo, hi = lag.min + offset, None if lag.max is None else lag.max + offset
            if a != lag.other:  # stored as start[b] - start[a] with a < b
                lo, hi = (None if hi is None else -hi), -lo
            window = windows.setdefault((a, b), [None, None, []])
            window[0] = lo if window[0] is None else (window[0] if lo is None else max(window[0], lo))
            window[1] = hi if window[1] is None else (window[1] if hi is None else min(window[1], hi))
    for hinge in terms.hinges:
        if hinge.earlier is None:
            continue
        a, b = sorted((hinge.earlier, hinge.later))
        sign = 1 if b == hinge.later else -1
        windows.setdefault((a, b), [None, None, []])[2].append((hinge.weight, sign, hinge.allowance))
    return [Edge(a, b, lo, hi, tuple(h)) for (a, b), (lo, hi, h) in sorted(windows.items())]


def _is_forest(n: int, edges: list[Edge], removed: set[int]) -> bool:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in edges:
        if e.a in removed or e.b in removed:
            continue
        ra, rb = find(e.a), find(e.b)
        if ra == rb:
            return False
        parent[ra] = rb
    return True


@functools.lru_cache(maxsize=512)
def _forest(n: int, edges: tuple[Edge, ...]) -> _Tree | None:
    """The tree of a lag graph that is a forest (None if it has a cycle), made once per graph: it does
    not depend on the domains."""
    return _tree_of(n, list(edges), [1] * n) if _is_forest(n, list(edges), set()) else None


def _tree(spec: PatientSpec, edges: list[Edge], sizes: list[int]) -> _Tree:
    return _forest(len(spec.steps), tuple(edges)) or _tree_of(len(spec.steps), edges, sizes)


def _tree_of(n: int, edges: list[Edge], sizes: list[int]) -> _Tree:
    enumerated: list[int] = []
    for k in range(n + 1):  # the fewest steps to enumerate; among those, the fewest combinations
        candidates = [set(c) for c in itertools.combinations(range(n), k) if _is_forest(n, edges, set(c))]
        if candidates:
            best = min(candidates, key=lambda c: (int(np.prod([sizes[i] for i in c])), sorted(c)))
            enumerated = sorted(best)
            break
    removed = set(enumerated)
    neighbours: dict[int, list[tuple[int, Edge]]] = {i: [] for i in range(n)}
    for e in edges:
        if e.a in removed or e.b in removed:
            continue
        neighbours[e.a].append((e.b, e))
        neighbours[e.b].append((e.a, e))
    tree = _Tree(enumerated, [], {i: [] for i in range(n)})
    seen = set(removed)
    for root in range(n):
        if root in seen:
            continue
        tree.roots.append(root)
        seen.add(root)
        stack: list[tuple[int, int | None, Edge | None]] = [(root, None, None)]
        while stack:
            node, parent, edge = stack.pop()
            tree.order.append((node, parent, edge))
            for other, e in neighbours[node]:
                if other not in seen:
                    seen.add(other)
                    tree.children[node].append((other, e))
                    stack.append((other, node, e))
    return tree


def _delta(edge: Edge, parent: int) -> tuple[float, float, int]:
    """Window of ``start[child] - start[parent]`` and the sign that turns it into ``start[b] - start[a]``."""
    lo = -INF if edge.lo is None else edge.lo
    hi = INF if edge.hi is None else edge.hi
    if parent == edge.a:
        return lo, hi, 1
    return -hi, -lo, -1


def window_min(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``out[:, x] = min(values[:, x + lo .. x + hi])`` along the day axis (INF outside it): a sparse table."""
    rows, n = values.shape
    lo = int(max(lo, -(n - 1)))
    hi = int(min(hi, n - 1))
    if lo > hi:
        return np.full_like(values, INF)
    if hi == n - 1 or lo == -(n - 1):  # the window reaches an end of the axis: a running minimum
        out = np.full_like(values, INF)
        if hi == n - 1:  # min(values[max(0, x + lo) .. n - 1])
            ahead = np.minimum.accumulate(values[:, ::-1], axis=1)[:, ::-1]
            at = np.arange(n) + lo
            inside = at <= n - 1
            out[:, inside] = ahead[:, np.maximum(at[inside], 0)]
        else:  # min(values[0 .. min(x + hi, n - 1)])
            behind = np.minimum.accumulate(values, axis=1)
            at = np.arange(n) + hi
            inside = at >= 0
            out[:, inside] = behind[:, np.minimum(at[inside], n - 1)]
        return out
    width = hi - lo + 1
    left, right = max(0, -lo), max(0, hi)
    table = np.concatenate([np.full((rows, left), INF), values, np.full((rows, right), INF)], axis=1)
    span = 1
    while 2 * span <= width:
        table = np.minimum(table[:, :-span], table[:, span:])
        span *= 2
    start = lo + left
    return np.minimum(table[:, start : start + n], table[:, start + width - span : start + width - span + n])


def _shift(values: np.ndarray, d: int) -> np.ndarray:
    """``out[:, x] = values[:, x + d]`` (INF outside the axis)."""
    out = np.full_like(values, INF)
    n = values.shape[1]
    if d >= 0:
        out[:, : n - d] = values[:, d:] if d < n else out[:, :0]
    else:
        out[:, -d:] = values[:, : n + d] if -d < n else out[:, :0]
    return out


class CellPrices(dict):
    """Prices by resource (an array over its day or week cells), with each resource's prefix sums made
    once for every patient priced at them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prefix: dict[str, np.ndarray] = {}

    def prefix(self, rid: str) -> np.ndarray:
        if rid not in self._prefix:
            self._prefix[rid] = np.concatenate([[0.0], np.cumsum(self[rid])])
        return self._prefix[rid]


class PatientPricer:
    """The exact best schedule of one patient for given cell prices.

    ``domains``: allowed start days per step (default: the spec's, frozen steps
    on their day).
    ``instance`` is needed only to price resource cells (None: no prices). ``tail_after``: with
    the tail guard, the last infusion day not counted above its 90th-percentile wait.
    """

    def __init__(
        self,
        instance: Instance | None,
        spec: PatientSpec,
        terms: CostTerms,
        domains: list[list[int]] | None = None,
        tail_after: int | None = None,
    ):
        self.instance = instance
        self.spec = spec
        self.terms = terms
        self.tail_after = tail_after  # infusion days after this one pay the price ``prices[TAIL]``
        if domains is None:
            domains = [[s.frozen] if s.frozen is not None else s.starts for s in spec.steps]
        self.feasible = all(domains)
        if not self.feasible:
            return
        self.first = min(d[0] for d in domains)
        self.days = max(d[-1] for d in domains) - self.first + 1
        axis = np.arange(self.first, self.first + self.days)
        self.axis = axis
        self.own = []
        for step in spec.steps:
            cost = np.full(self.days, INF)
            index = np.asarray(domains[step.index]) - self.first
            cost[index] = terms.coefficients.get(step.index, 0) * axis[index]
            self.own.append(cost)
        self.own[terms.infusion] = self.own[terms.infusion] + terms.constant
        for hinge in terms.hinges:
            if hinge.earlier is None:
                self.own[hinge.later] = self.own[hinge.later] + hinge.weight * np.maximum(0, axis - hinge.allowance)
        for move in terms.moves:  # the nightly's move penalty: a cost per start day, nothing on "keep as is"
            self.own[move.step] = self.own[move.step] + move.at(axis)
        self.edges = _edges(spec, terms)
        sizes = [int(np.isfinite(c).sum()) for c in self.own]
        self.tree = _tree(spec, self.edges, sizes)
        # Cells each not-frozen step uses per start day (for prices): (resource, cell indices, amount).
        self._uses = [
            [] if step.frozen is not None else [(u.resource, u.amount, u.days, u.weekly) for u in step.uses]
            for step in spec.steps
        ]

    # -- costs -------------------------------------------------------------------------------------

    def _priced(self, prices: Mapping[str, np.ndarray] | None) -> list[np.ndarray]:
        """Each step's own cost plus the prices of the cells it would use, per start day."""
        if not prices:
            return self.own
        instance = self.instance
        out = []
        for step, own in zip(self.spec.steps, self.own, strict=True):
            cost = own
            for rid, amount, used, weekly in self._uses[step.index]:
                price = prices.get(rid)
                if price is None:
                    continue
                if weekly:
                    weeks = (self.axis + instance.week_offset) // 7
                    valid = (weeks >= 0) & (weeks < len(price))
                    add = np.where(valid, price[np.clip(weeks, 0, len(price) - 1)], 0.0)
                else:
                    prefix = prices.prefix(rid) if isinstance(prices, CellPrices) else np.cumsum(np.r_[0.0, price])
                    lo = np.clip(self.axis, 0, len(price))
                    hi = np.clip(self.axis + used, 0, len(price))
                    add = prefix[hi] - prefix[lo]
                cost = cost + amount * add
            out.append(cost)
        if TAIL in prices and self.tail_after is not None:
            index = self.terms.infusion
            out[index] = out[index] + float(prices[TAIL][0]) * (self.axis > self.tail_after)
        return out

    def _batch(self, priced: list[np.ndarray]):
        """Rows: one per combination of the enumerated steps' days; each step's cost per row and day."""
        enumerated = self.tree.enumerated
        if not enumerated:  # one row, each step's own costs as they are (never written to)
            return np.zeros((1, 0), dtype=int), [c[None, :] for c in priced], np.zeros(1)
        values = [np.flatnonzero(np.isfinite(priced[i])) for i in enumerated]
        product = list(itertools.product(*values))
        rows = len(product)
        combos = np.array(product, dtype=int).reshape(rows, len(enumerated))
        base = [np.broadcast_to(c, (rows, self.days)) for c in priced]  # read-only views: replaced, never written
        fixed = np.zeros(rows)
        for k, i in enumerate(enumerated):
            fixed += priced[i][combos[:, k]]
        positions = {i: combos[:, k] for k, i in enumerate(enumerated)}
        x = np.arange(self.days)
        for e in self.edges:
            ea, eb = e.a in positions, e.b in positions
            if not (ea or eb):
                continue
            if ea and eb:
                d = positions[e.b] - positions[e.a]
                ok = np.ones(rows, dtype=bool)
                if e.lo is not None:
                    ok &= d >= e.lo
                if e.hi is not None:
                    ok &= d <= e.hi
                fixed += np.where(ok, e.cost(d) if e.hinges else 0.0, INF)
                continue
            # one end enumerated: a window and cost on the other, per row
            free, sign = (e.b, 1) if ea else (e.a, -1)
            anchor = positions[e.a] if ea else positions[e.b]
            d = sign * (x[None, :] - anchor[:, None])  # start[b] - start[a]
            ok = np.ones_like(d, dtype=bool)
            if e.lo is not None:
                ok &= d >= e.lo
            if e.hi is not None:
                ok &= d <= e.hi
            base[free] = np.where(ok, base[free] + (e.cost(d) if e.hinges else 0.0), INF)
        return combos, base, fixed

    def _message(self, subtree: np.ndarray, edge: Edge, parent: int) -> np.ndarray:
        """For each day of ``parent``: the best of the child's subtree over the lag's window (plus hinges)."""
        lo, hi, sign = _delta(edge, parent)
        if not edge.hinges:
            return window_min(subtree, lo, hi)
        n = self.days
        out = np.full_like(subtree, INF)
        for d in range(int(max(lo, -(n - 1))), int(min(hi, n - 1)) + 1):
            out = np.minimum(out, _shift(subtree, d) + edge.cost(sign * d))
        return out

    def _solve(self, priced: list[np.ndarray]):
        combos, base, fixed = self._batch(priced)
        subtree: dict[int, np.ndarray] = {}
        for node, _parent, _edge in reversed(self.tree.order):
            value = base[node]
            for child, edge in self.tree.children[node]:
                value = value + self._message(subtree[child], edge, node)
            subtree[node] = value
        totals = fixed.copy()
        for root in self.tree.roots:
            totals = totals + subtree[root].min(axis=1)
        return combos, subtree, totals

    # -- answers -----------------------------------------------------------------------------------

    def allows(self, starts: list[int]) -> bool:
        """Whether ``starts`` keeps the patient's own rules: each step on an allowed day, every lag held."""
        if not self.feasible:
            return False
        for own, day in zip(self.own, starts, strict=True):
            if not (0 <= day - self.first < self.days and np.isfinite(own[day - self.first])):
                return False
        for e in self.edges:
            d = starts[e.b] - starts[e.a]
            if (e.lo is not None and d < e.lo) or (e.hi is not None and d > e.hi):
                return False
        return True

    def best(self, prices: Mapping[str, np.ndarray] | None = None) -> tuple[float, list[int]] | None:
        """(priced cost, start day of every step) of the cheapest schedule, or None if there is none."""
        if not self.feasible:
            return None
        priced = self._priced(prices)
        combos, subtree, totals = self._solve(priced)
        row = int(np.argmin(totals))
        if not np.isfinite(totals[row]):
            return None
        starts = self._trace(combos[row], row, subtree)
        return float(totals[row]), starts

    def _trace(self, combo, row: int, subtree) -> list[int]:
        position: dict[int, int] = dict(zip(self.tree.enumerated, (int(v) for v in combo), strict=True))
        for node, parent, edge in self.tree.order:
            values = subtree[node][row]
            if parent is None:
                position[node] = int(np.argmin(values))
                continue
            lo, hi, sign = _delta(edge, parent)
            p = position[parent]
            first, last = int(max(0, p + lo)), int(min(self.days - 1, p + hi))
            window = np.arange(first, last + 1)
            scores = values[first : last + 1] + (edge.cost(sign * (window - p)) if edge.hinges else 0.0)
            position[node] = int(window[int(np.argmin(scores))])
        return [self.first + position[i] for i in range(len(self.spec.steps))]

    def enumerate(
        self, prices: Mapping[str, np.ndarray] | None, threshold: float, limit: int
    ) -> tuple[list[list[int]], bool]:
        """Every schedule whose priced cost is at most ``threshold`` (at most ``limit`` of them), and
        whether the list is complete."""
        if not self.feasible:
            return [], True
        priced = self._priced(prices)
        combos, subtree, totals = self._solve(priced)
        found: list[list[int]] = []
        order = self.tree.order
        for row in np.flatnonzero(totals <= threshold + EPS * max(1.0, abs(threshold))):
            position = dict(zip(self.tree.enumerated, (int(v) for v in combos[row]), strict=True))
            if not self._descend(order, 0, row, subtree, position, float(totals[row]), threshold, found, limit):
                return found, False
        return found, True

    def _descend(self, order, k, row, subtree, position, bound, threshold, found, limit) -> bool:
        if k == len(order):
            if len(found) >= limit:
                return False
            found.append([self.first + position[i] for i in range(len(self.spec.steps))])
            return True
        node, parent, edge = order[k]
        values = subtree[node][row]
        if parent is None:
            days = np.arange(self.days)
            scores = values
        else:
            lo, hi, sign = _delta(edge, parent)
            p = position[parent]
            first, last = int(max(0, p + lo)), int(min(self.days - 1, p + hi))
            days = np.arange(first, last + 1)
            scores = values[first : last + 1] + (edge.cost(sign * (days - p)) if edge.hinges else 0.0)
        held = scores.min() if len(scores) else INF
        for day, score in zip(days, scores, strict=True):
            if not np.isfinite(score):
                continue
            new_bound = bound - held + score
            if new_bound <= threshold + EPS * max(1.0, abs(threshold)):
                position[node] = int(day)
                if not self._descend(order, k + 1, row, subtree, position, new_bound, threshold, found, limit):
                    return False
        position.pop(node, None)
        return True


def column_cells(instance: Instance, spec: PatientSpec, starts: list[int]) -> dict[tuple[str, int], int]:
    """The resource cells (and amounts) a schedule of ``spec`` takes; frozen steps' load is not its own."""
    out: dict[tuple[str, int], int] = {}
    for step in spec.steps:
        if step.frozen is not None:
            continue
        for rid, cell, amount in resource_cells(instance, step, starts[step.index]):
            out[rid, cell] = out.get((rid, cell), 0) + amount
    return out


def enumerated_steps(spec: PatientSpec, terms: CostTerms, domains: list[list[int]]) -> list[int]:
    """The steps the dynamic programme enumerates on these domains (none where the lag graph, with its
    pairwise hinges, is a forest); which ones depends on the domains' sizes."""
    return _tree(spec, _edges(spec, terms), [len(d) for d in domains]).enumerated
