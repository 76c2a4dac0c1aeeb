"""The chain of custody of one product, and the gates it holds shut: conditioning and infusion.

A product is made from one collection of a patient's (or a donor's) cells. Its
custody is the list of events recorded for it, in the order they were recorded:
collected, shipped to the manufacturer, received there, manufacture started,
shipped back, received at the centre, released, issued, infused. A product made
or processed at the local lab is received there and released without being
shipped. ``expected_back`` is a forecast, not a movement: it may be revised any
number of times while the product is away.

The most important safety rule of the domain lives here as a gate: conditioning
(lymphodepletion) is never recorded as started before a product is released at
the centre. ``next_problem`` keeps the chain in an order that can happen;
``product_state`` reads a chain; the gates read the states of a patient's
products.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum

from pathway.catalogue import StepKind, Template, _graft_age_days
from pathway.dates import say_day


class CustodyKind(str, Enum):
    """One kind of event in a product's chain of custody (api.db.CUSTODY_KINDS, in the same order)."""

    collected = "collected"
    shipped = "shipped"
    received = "received"
    manufacture_started = "manufacture_started"
    expected_back = "expected_back"
    shipped_back = "shipped_back"
    received_at_centre = "received_at_centre"
    released = "released"
    out_of_specification = "out_of_specification"
    exceptional_release = "exceptional_release"
    issued = "issued"
    infused = "infused"
    lost = "lost"

    @property
    def words(self) -> str:
        """The kind as messages name it: 'shipped back', 'received at the centre'."""
        return _WORDS.get(self, self.value.replace("_", " "))


_WORDS = {CustodyKind.received_at_centre: "received at the centre"}
# How a page says what happened to the product on a day: '<done> on Mon 04 Jan 2027'.
_DONE = {
    CustodyKind.out_of_specification: "found out of specification",
    CustodyKind.exceptional_release: "released by exception",
}


@dataclass(frozen=True)
class CustodyStep:
    """One recorded event. ``day`` is when it happened; for expected_back, the day the product is
    expected back at the centre."""

    kind: CustodyKind
    day: date
    details: Mapping[str, str]


# -- the order of events ---------------------------------------------------------------------
_TERMINAL = (CustodyKind.infused, CustodyKind.lost)
# After out of specification: an exceptional release (then its issue and infusion) or the loss.
_AFTER_OUT_OF_SPECIFICATION = frozenset(
    {CustodyKind.exceptional_release, CustodyKind.issued, CustodyKind.infused, CustodyKind.lost}
)
_NOT_AFTER = {
    CustodyKind.expected_back: (
        CustodyKind.shipped_back,
        CustodyKind.received_at_centre,
        CustodyKind.released,
        CustodyKind.out_of_specification,
    ),
    # a result that comes back after the release (a sterility culture) still counts, until the issue
    CustodyKind.out_of_specification: (CustodyKind.issued,),
}
_REQUIRES = {
    CustodyKind.shipped: (CustodyKind.collected,),
    CustodyKind.received: (CustodyKind.collected,),
    CustodyKind.manufacture_started: (CustodyKind.received,),
    CustodyKind.expected_back: (CustodyKind.received,),
    CustodyKind.shipped_back: (CustodyKind.received,),
    CustodyKind.received_at_centre: (CustodyKind.shipped_back,),
    CustodyKind.exceptional_release: (CustodyKind.out_of_specification,),
    CustodyKind.issued: (CustodyKind.released, CustodyKind.exceptional_release),
    CustodyKind.infused: (CustodyKind.issued,),
    CustodyKind.lost: (CustodyKind.collected,),
}
_REQUIRED_DETAILS = {
    CustodyKind.shipped: ("courier_reference",),
    CustodyKind.received_at_centre: ("storage_location",),
    CustodyKind.out_of_specification: ("reason",),
    CustodyKind.exceptional_release: ("clinician", "reason"),
    CustodyKind.lost: ("reason",),
}
_DETAIL_WORDS = {
    "courier_reference": "the courier's reference",
    "storage_location": "the storage location",
    "reason": "a reason",
    "clinician": "the authorising clinician's name or role",
}


def _first_is_collected(recorded: Sequence[CustodyKind], kind: CustodyKind) -> str | None:
    if not recorded and kind != CustodyKind.collected:
        return f"{kind.words} cannot be recorded before collected: a product's first event is its collection"
    return None


def _nothing_after_the_end(recorded: Sequence[CustodyKind], kind: CustodyKind) -> str | None:
    ended = next((done for done in recorded if done in _TERMINAL), None)
    if ended is not None:
        return f"the product is recorded as {ended.words}: nothing can be recorded after that"
    return None


def _each_kind_once(recorded: Sequence[CustodyKind], kind: CustodyKind) -> str | None:
    if kind != CustodyKind.expected_back and kind in recorded:
        return f"{kind.words} is already recorded for this product"
    return None


def _after_out_of_specification(recorded: Sequence[CustodyKind], kind: CustodyKind) -> str | None:
    if CustodyKind.out_of_specification in recorded and kind not in _AFTER_OUT_OF_SPECIFICATION:
        return "after out of specification only an exceptional release or the loss can be recorded"
    return None


def _not_after(recorded: Sequence[CustodyKind], kind: CustodyKind) -> str | None:
    later = next((done for done in _NOT_AFTER.get(kind, ()) if done in recorded), None)
    if later is not None:
        return f"{kind.words} cannot be recorded after {later.words}"
    return None


def _prerequisites(kind: CustodyKind, recorded: Sequence[CustodyKind]) -> tuple[CustodyKind, ...]:
    """The kinds one of which must be recorded before ``kind``. A product that was shipped is
    released once it is back at the centre; one never shipped (made or processed at the local
    lab) once the lab has received it. Out of specification stands in place of released."""
    if kind == CustodyKind.out_of_specification:  # found by the manufacturer, the lab or the centre
        return (CustodyKind.received, CustodyKind.received_at_centre)
    if kind == CustodyKind.released:
        return (CustodyKind.received_at_centre,) if CustodyKind.shipped in recorded else (CustodyKind.received,)
    if kind == CustodyKind.issued and CustodyKind.out_of_specification in recorded:
        return (CustodyKind.exceptional_release,)  # a release the product has since failed does not count
    if kind == CustodyKind.received_at_centre and CustodyKind.received not in recorded:
        return (CustodyKind.shipped,)  # a donor's graft, shipped straight to the centre
    return _REQUIRES.get(kind, ())


def _prerequisite_recorded(recorded: Sequence[CustodyKind], kind: CustodyKind) -> str | None:
    needed = _prerequisites(kind, recorded)
    if needed and not any(done in recorded for done in needed):
        return f"{kind.words} cannot be recorded before {' or '.join(k.words for k in needed)}"
    return None


_KIND_RULES: tuple[Callable[[Sequence[CustodyKind], CustodyKind], str | None], ...] = (
    _first_is_collected,
    _nothing_after_the_end,
    _each_kind_once,
    _after_out_of_specification,
    _not_after,
    _prerequisite_recorded,
)


def _day_problem(history: Sequence[CustodyStep], kind: CustodyKind, day: date, today: date) -> str | None:
    """Events happen in the order they are recorded, never in the future; an expected back day
    is a forecast, so it may be in the future but not before what has already happened."""
    if kind != CustodyKind.expected_back and day > today:
        return f"the day is in the future: {kind.words} can be recorded once it has happened"
    movements = [step for step in reversed(history) if step.kind != CustodyKind.expected_back]
    latest = max(movements, key=lambda step: step.day, default=None)
    if latest is not None and day < latest.day:
        return f"{kind.words} on that day would come before {latest.kind.words} on {say_day(latest.day)}"
    return None


def _details_problem(kind: CustodyKind, details: Mapping[str, str]) -> tuple[str, str] | None:
    for name in _REQUIRED_DETAILS.get(kind, ()):
        if not str(details.get(name) or "").strip():
            return f"details.{name}", f"{kind.words} needs {_DETAIL_WORDS[name]}"
    return None


def next_problem(
    history: Sequence[CustodyStep], kind: CustodyKind, day: date, details: Mapping[str, str], today: date
) -> tuple[str, str] | None:
    """(field, problem) if ``kind`` on ``day`` cannot be recorded next after ``history`` (in recorded
    order), else None. Field is 'kind', 'day' or 'details.<name>'."""
    recorded = [step.kind for step in history]
    for rule in _KIND_RULES:
        problem = rule(recorded, kind)
        if problem is not None:
            return "kind", problem
    problem = _day_problem(history, kind, day, today)
    if problem is not None:
        return "day", problem
    return _details_problem(kind, details)


# -- the state of a product ------------------------------------------------------------------
_BACK_AT_CENTRE = frozenset(
    {
        CustodyKind.received_at_centre,
        CustodyKind.released,
        CustodyKind.out_of_specification,
        CustodyKind.exceptional_release,
        CustodyKind.issued,
        CustodyKind.infused,
        CustodyKind.lost,
    }
)


@dataclass(frozen=True)
class ProductState:
    """Where a product is, read from its chain of custody by ``product_state``.

    ``last`` is the latest movement (an expected back day is a forecast, kept in
    ``expected_on``); ``released_on`` is the day it was released, or released by
    exception, at the centre (None if it was lost afterwards); ``expected_on`` is
    the latest expected back day while the product is away.
    """

    last: CustodyKind | None = None
    last_on: date | None = None
    collected_on: date | None = None
    released_on: date | None = None
    expected_on: date | None = None
    exceptional: bool = False
    out_of_specification: bool = False
    lost: bool = False
    infused: bool = False

    @property
    def awaited(self) -> bool:
        """Collected, and not yet released, out of specification, lost or infused."""
        ended = self.released_on is not None or self.out_of_specification or self.lost or self.infused
        return self.collected_on is not None and not ended

    @property
    def available(self) -> bool:
        """Released (or released by exception) at the centre, and neither lost nor infused."""
        return self.released_on is not None and not self.lost and not self.infused

    def describe(self) -> str:
        """In words for pages: 'shipped back on Mon 04 Jan 2027; expected back on ...'."""
        if self.last is None or self.last_on is None:
            return "no event recorded"
        said = f"{_DONE.get(self.last, self.last.words)} on {say_day(self.last_on)}"
        if self.expected_on is not None:
            said += f"; expected back on {say_day(self.expected_on)}"
        return said


def product_state(history: Sequence[CustodyStep]) -> ProductState:
    """The state of a product after its recorded events (in recorded order)."""
    movements = [step for step in history if step.kind != CustodyKind.expected_back]
    on = {step.kind: step.day for step in movements}
    forecasts = [step.day for step in history if step.kind == CustodyKind.expected_back]
    lost = CustodyKind.lost in on
    # out of specification, even after a release, leaves only an exceptional release
    released_on = on.get(
        CustodyKind.exceptional_release if CustodyKind.out_of_specification in on else CustodyKind.released
    )
    return ProductState(
        last=movements[-1].kind if movements else None,
        last_on=movements[-1].day if movements else None,
        collected_on=on.get(CustodyKind.collected),
        released_on=None if lost else released_on,
        expected_on=forecasts[-1] if forecasts and not _BACK_AT_CENTRE.intersection(on) else None,
        exceptional=CustodyKind.exceptional_release in on,
        out_of_specification=CustodyKind.out_of_specification in on,
        lost=lost,
        infused=CustodyKind.infused in on,
    )


# -- the gates -------------------------------------------------------------------------------
_COLLECTION_KINDS = (StepKind.apheresis, StepKind.donor_collection)


def _first_index(template: Template, kinds: tuple[StepKind, ...]) -> int | None:
    return next((i for i, step in enumerate(template.steps) if step.kind in kinds), None)


def collected_before_conditioning(template: Template) -> bool:
    """The cells are collected before conditioning (CAR-T, autologous, cryopreserved allogeneic
    grafts), so a released product must be waiting before conditioning starts."""
    collection = _first_index(template, _COLLECTION_KINDS)
    conditioning = _first_index(template, (StepKind.conditioning,))
    return collection is not None and conditioning is not None and collection < conditioning


def fresh_graft(template: Template) -> bool:
    """The graft is collected after conditioning has started and infused fresh (allo-sct-fresh)."""
    collection = _first_index(template, _COLLECTION_KINDS)
    conditioning = _first_index(template, (StepKind.conditioning,))
    return collection is not None and conditioning is not None and collection > conditioning


def graft_age_limit_days(template: Template) -> int | None:
    """The most days from a fresh graft's collection to its infusion: the bound of the infusion's
    ``graft_age`` lag, read as the catalogue reads it (days from the collection's first day;
    allo-sct-fresh: 3). The catalogue requires that lag for every fresh graft; None without one."""
    for infusion in template.steps_of(StepKind.infusion):
        for lag in infusion.lags:
            if lag.rule == "graft_age" and lag.max is not None:
                return _graft_age_days(lag, template.step(lag.after))[1]
    return None


def _release_problem(products: Sequence[ProductState], day: date | None = None) -> str | None:
    """None if some product is released at the centre and still there (by ``day``, if given); else
    what is missing."""
    available = [product for product in products if product.available]
    if any(day is None or product.released_on <= day for product in available):
        return None
    if available:
        released = min(product.released_on for product in available)
        return f"the product was released on {say_day(released)}, after {say_day(day)}"
    if not products:
        return "no product is recorded, so none is released at the centre"
    in_play = [product for product in products if not product.lost and not product.infused] or list(products)
    latest = max(in_play, key=lambda product: product.last_on or date.min)
    return f"the product is not released at the centre: it was last recorded as {latest.describe()}"


def conditioning_gate(template: Template, products: Sequence[ProductState], day: date | None = None) -> str | None:
    """Why conditioning cannot be recorded as started (on ``day``: released by then), or None. When the
    cells are collected before conditioning, a product must be released at the centre (released, or
    released by exception) and be neither lost nor infused. A fresh graft, collected after
    conditioning, has no such gate."""
    if not collected_before_conditioning(template):
        return None
    return _release_problem(products, day)


def _graft_problem(template: Template, products: Sequence[ProductState], day: date) -> str | None:
    grafts = [p for p in products if p.collected_on is not None and not p.lost and not p.infused]
    if not grafts:
        return "no graft is recorded as collected (and not lost)"
    # The oldest bag sets the graft's age.
    collected_on = min(p.collected_on for p in grafts if p.collected_on is not None)
    if day < collected_on:
        return f"the infusion would come before the graft is collected on {say_day(collected_on)}"
    limit = graft_age_limit_days(template)
    age = (day - collected_on).days
    if limit is not None and age > limit:
        return (
            f"the graft collected on {say_day(collected_on)} would be {age} days old at the infusion; "
            f"the limit is {limit} days"
        )
    return None


def infusion_gate(template: Template, products: Sequence[ProductState], day: date) -> str | None:
    """Why an infusion on ``day`` cannot be recorded, or None. A fresh graft must be collected and
    within its age limit on ``day``; any other product must be released at the centre."""
    if fresh_graft(template):
        return _graft_problem(template, products, day)
    return _release_problem(products, day)
