"""The days as they happen: a diary kept the way the coordinators and the lab would keep it.

``play`` walks a site's plan from a first to a last planning day. Each day it records what was booked
for that day through the same workflows the HTTP routes call (``api.workflows``): a collection done
and its product registered with its labels; each link of the product's chain of custody (collected,
shipped with a courier's reference, received, manufacture started, shipped back, received at the
centre with a storage location, released, issued); conditioning started on its first day and done on
its last; the infusion with the identifiers scanned from the patient's own bag; inpatient stays
started and done. Each night the nightly re-solve runs (``api.nightly``), as the service's scheduler
would run it at 02:30 on the next day. A product comes back and is released on its release booking's
day unless the script says otherwise.

A script of disruptions, each for one patient on one day, makes the month less tidy than the plan: a
late product, out of specification after conditioning has started, a poor mobiliser, a missed
apheresis, a withdrawal after the infusion, a step nobody records. ``month_script`` and
``demo_script`` choose their patients from the plan, so the same plan gives the same diary.

The demo (``v2v demo``) plays its first weeks with this, and ``tests/api/test_month.py`` a whole
month. Nothing in the service calls it: the service stores what people record, it never invents it.

The identifiers on the labels here (donation identification numbers, product codes, chains of
identity, orders, couriers' references) are made up, as examples for the demo and the tests: in real
use the lab and the manufacturer issue them and people type or scan them; the service only stores and
shows them.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import func, select

from api import nightly, records, state, views, workflows
from api.audit import Actor
from api.db import BookingRow, EventRow, JobRun, PatientRow, PlanVersion, ProductRow, StepRecord
from api.runtime import Runtime
from api.schemas import CustodyIn, ProductIn, ScannedIdentity, StepRecordIn
from api.settings import Settings
from pathway.catalogue import StepKind, Template
from pathway.dates import say_day
from pathway.isbt import check_character

COORDINATOR = Actor("diary-coordinator", "coordinator")
LAB = Actor("diary-lab", "lab_manager")

# -- the made-up labels (examples only: see the module's docstring) -----------------------------
EXAMPLE_FACILITY = "W0000"  # the facility identification number on every example label
STORAGE = "LN2 tank 2, example rack"
FRESH_STORAGE = "cell therapy lab, fresh graft fridge"


def example_din(year: int, sequence: int) -> str:
    """A made-up donation identification number with its check character, as typed from a label."""
    number = f"{EXAMPLE_FACILITY}{year % 100:02d}{sequence:06d}"
    return number + check_character(number)


def example_chain_of_identity(year: int, sequence: int) -> str:
    """A made-up ISBT 128 chain-of-identity identifier (ST-028 structure)."""
    return f"CH{EXAMPLE_FACILITY}{year % 100:02d}X{sequence:05d}"


PRODUCT_CODES = {  # made-up ISBT 128 cellular therapy product codes, one per family
    "commercial_car_t": "S1001",
    "in_house_car_t": "S1002",
    "autologous_sct": "S1003",
    "allogeneic_sct": "S1004",
}


# -- the script -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LateProduct:
    """The manufacturer says on ``day`` that the product will be back ``days_late`` days after planned."""

    patient: str
    day: date
    days_late: int


@dataclasses.dataclass(frozen=True)
class OutOfSpecification:
    """The product fails a release test on ``day``, after conditioning has started. ``choice``: the
    coordinator's answer, an exceptional release authorised by ``clinician``, or the product made
    again (re-manufacture, re-apheresis) through the out-of-specification workflow."""

    patient: str
    day: date
    reason: str
    choice: Literal["exceptional release", "re-manufacture", "re-apheresis"] = "exceptional release"
    clinician: str = "Dr A. Example, consultant haematologist"


@dataclasses.dataclass(frozen=True)
class PoorMobilisation:
    """Too few CD34+ cells on the harvest day ``day``."""

    patient: str
    day: date
    reason: str


@dataclasses.dataclass(frozen=True)
class MissedStep:
    """The patient does not come for ``step`` booked on ``day``."""

    patient: str
    day: date
    step: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Withdrawal:
    """The patient leaves the pathway on ``day``."""

    patient: str
    day: date
    reason: str


@dataclasses.dataclass(frozen=True)
class Unrecorded:
    """Nobody records ``step`` of the patient: it becomes overdue."""

    patient: str
    step: str


Disruption = LateProduct | OutOfSpecification | PoorMobilisation | MissedStep | Withdrawal | Unrecorded


def say(disruption: Disruption) -> str:
    """A disruption in words, for the diary's summary."""
    match disruption:
        case LateProduct(patient, day, days_late):
            return f"{patient}: product {days_late} days late (told on {say_day(day)})"
        case OutOfSpecification(patient, day, _, choice, _):
            return f"{patient}: out of specification on {say_day(day)}, {choice}"
        case PoorMobilisation(patient, day, _):
            return f"{patient}: poor mobilisation on {say_day(day)}"
        case MissedStep(patient, day, step, _):
            return f"{patient}: {step.replace('_', ' ')} missed on {say_day(day)}"
        case Withdrawal(patient, day, _):
            return f"{patient}: withdrawn on {say_day(day)}"
        case Unrecorded(patient, step):
            return f"{patient}: {step.replace('_', ' ')} left unrecorded"
    raise TypeError(disruption)


# -- what happened, action by action --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Move:
    """A booking that had not started and is on other days after an action."""

    patient: str
    step: str
    before: tuple[date, date]
    after: tuple[date, date]
    fixed_by: str


@dataclasses.dataclass(frozen=True)
class Action:
    """One thing done in the diary: who did what for whom, the bookings it moved, and the first event
    id it may have written (events with this id or later were written by it)."""

    day: date
    patient: str | None
    what: str
    moved: tuple[Move, ...]
    first_event: int


Observer = Callable[[Settings, Action], None]


@dataclasses.dataclass
class Diary:
    """What a played stretch of days did, for a summary."""

    first: date
    last: date
    actions: int = 0
    step_records: Counter = dataclasses.field(default_factory=Counter)
    custody_events: Counter = dataclasses.field(default_factory=Counter)
    products: int = 0
    plan_versions: int = 0
    nightly_runs: Counter = dataclasses.field(default_factory=Counter)
    moves: list[Move] = dataclasses.field(default_factory=list)
    disruptions: list[str] = dataclasses.field(default_factory=list)
    refused: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    nightly_seconds: float = 0.0

    def summary(self) -> str:
        days = (self.last - self.first).days + 1
        records = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.step_records.items()))
        runs = ", ".join(f"{n} {status}" for status, n in sorted(self.nightly_runs.items()))
        lines = [
            f"{days} days played, {say_day(self.first)} to {say_day(self.last)}, in {self.seconds:.1f} s "
            f"(nightly runs {self.nightly_seconds:.1f} s of it)",
            f"actions: {self.actions}; step records: {sum(self.step_records.values())} ({records})",
            f"products registered: {self.products}; custody events: {sum(self.custody_events.values())}",
            f"plan versions made: {self.plan_versions}; nightly runs: {sum(self.nightly_runs.values())} ({runs})",
            f"bookings moved: {len(self.moves)} of {len({m.patient for m in self.moves})} patient(s)",
        ]
        lines += [f"disruption: {d}" for d in self.disruptions]
        lines += [f"refused: {r}" for r in self.refused]
        return "\n".join(lines)


def days_between(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


# -- playing the days -----------------------------------------------------------------------------
def play(
    settings: Settings,
    first: date,
    last: date,
    script: tuple[Disruption, ...] = (),
    observe: Observer | None = None,
    evening: Callable[[Settings], None] | None = None,
) -> Diary:
    """Record every day from ``first`` to ``last`` as the people would, with ``script``'s disruptions,
    and run the nightly re-solve after each day (for the night of the next day, as the service's
    scheduler runs it at 02:30). ``observe(settings of the day, action)`` is called after every
    action, ``evening(settings of the day)`` at the end of each day, before its night."""
    started = time.perf_counter()
    diary = Diary(first, last)
    with _service(settings) as runtime:
        clerk = _Clerk(runtime, settings, script, diary, observe)
        versions_before = clerk.count(PlanVersion.id)
        for day in days_between(first, last):
            clerk.keep(day)
            if evening is not None:
                evening(runtime.settings)
            clerk.run_nightly(day + timedelta(days=1))
        diary.plan_versions = clerk.count(PlanVersion.id) - versions_before
    diary.seconds = time.perf_counter() - started
    return diary


@contextmanager
def _service(settings: Settings) -> Iterator[Runtime]:
    """The service's runtime (database, solver pool) without its scheduler: the diary runs the nights."""
    runtime = Runtime(settings.model_copy(update={"nightly_enabled": False}))
    try:
        yield runtime
    finally:
        runtime.stop()


class _Clerk:
    """Keeps the diary: the coordinator's and the lab's hands, one day at a time."""

    def __init__(
        self, runtime: Runtime, settings: Settings, script: tuple[Disruption, ...], diary: Diary, observe
    ) -> None:
        self.runtime = runtime
        self.base = settings.model_copy(update={"nightly_enabled": False})
        self.script = script
        self.diary = diary
        self.observe = observe
        self.unrecorded = {(d.patient, d.step) for d in script if isinstance(d, Unrecorded)}
        self.diary.disruptions += [say(d) for d in script if isinstance(d, Unrecorded)]
        self.today = settings.planning_day()
        with self.runtime.database.read() as work:
            self.catalogue = state.catalogue(work.session)
            self.labels = work.session.scalar(select(func.count(ProductRow.id))) or 0

    # -- reading --------------------------------------------------------------------------------
    def count(self, column) -> int:
        with self.runtime.database.read() as work:
            return work.session.scalar(select(func.count(column))) or 0

    def _template(self, patient_id: str) -> tuple[PatientRow, Template]:
        with self.runtime.database.read() as work:
            patient = state.get_patient(work.session, patient_id)
            work.session.expunge(patient)
        return patient, self.catalogue.template(patient.pathway)

    def _bookings(self, patient_id: str) -> list[BookingRow]:
        with self.runtime.database.read() as work:
            rows = state.current_rows(work.session, patient_id)
            work.session.expunge_all()
        return rows

    def _record(self, booking_id: int) -> StepRecord | None:
        with self.runtime.database.read() as work:
            query = select(StepRecord).where(StepRecord.booking_id == booking_id).order_by(StepRecord.id.desc())
            row = work.session.scalars(query).first()
            if row is not None:
                work.session.expunge(row)
        return row

    def _products(self, patient_id: str) -> list[dict[str, Any]]:
        with self.runtime.database.read() as work:
            return views.product_views(work.session, patient_id)

    def _plan(self) -> dict[tuple[str, str], tuple[date, date, str, bool]]:
        """(patient, step) -> first and last day, fixed_by, and whether it has started (under way)."""
        columns = (BookingRow.id, *state.BOOKED, BookingRow.fixed_by)
        with self.runtime.database.read() as work:
            rows = work.session.execute(select(*columns).where(BookingRow.to_version.is_(None))).all()
            happened = select(StepRecord.booking_id).where(StepRecord.outcome.in_(("started", "done")))
            started = set(work.session.scalars(happened))
        return {
            (b.patient_id, b.step): (b.first_day, b.last_day, b.fixed_by, b.first_day < self.today or b.id in started)
            for b in rows
        }

    def _last_event(self) -> int:
        with self.runtime.database.read() as work:
            return work.session.scalar(select(func.max(EventRow.id))) or 0

    # -- acting ---------------------------------------------------------------------------------
    def _settings(self, day: date) -> Settings:
        return self.base.model_copy(update={"today": day})

    def act(self, patient: str | None, what: str, do: Callable[[], Any]) -> Any:
        """Do one thing, and note the bookings it moved (those that had not started)."""
        before, first_event = self._plan(), self._last_event() + 1
        try:
            result = do()
        except records.Refused as refusal:  # a rule refused it, as it would refuse a person: noted, not done
            self.diary.refused.append(f"{say_day(self.today)} {patient}: {what}: {refusal}")
            return None
        after = self._plan()
        moved = tuple(
            Move(key[0], key[1], (was[0], was[1]), (now[0], now[1]), now[2])
            for key, was in before.items()
            if not was[3] and (now := after.get(key)) is not None and (now[0], now[1]) != (was[0], was[1])
        )
        self.diary.actions += 1
        self.diary.moves += moved
        if self.observe is not None:
            self.observe(self.runtime.settings, Action(self.today, patient, what, moved, first_event))
        return result

    def record(self, patient: str, step: str, outcome: str, **fields) -> Any:
        body = StepRecordIn(outcome=outcome, **fields)
        who = LAB if self._is_lab_step(patient, step) else COORDINATOR
        done = self.act(
            patient,
            f"{step} {outcome}",
            lambda: workflows.record_step(self.runtime, patient, step, body, who),
        )
        if done is not None:
            self.diary.step_records[outcome] += 1
        return done

    def _is_lab_step(self, patient: str, step: str) -> bool:
        _, template = self._template(patient)
        return template.step(step).kind in state.PRODUCT_KINDS

    def custody(self, patient: str, product_id: int, kind: str, day: date, **details) -> Any:
        body = CustodyIn(kind=kind, day=day, **details)
        done = self.act(
            patient,
            f"product {product_id} {kind.replace('_', ' ')}",
            lambda: workflows.record_custody(self.runtime, product_id, body, LAB),
        )
        if done is not None:
            self.diary.custody_events[kind] += 1
        return done

    # -- a day ----------------------------------------------------------------------------------
    def keep(self, day: date) -> None:
        """Everything the people record on ``day``, patient by patient."""
        self.today = day
        self.runtime.settings = self._settings(day)
        todays = [d for d in self.script if getattr(d, "day", None) == day]
        with self.runtime.database.read() as work:
            busy = {b.patient_id for b in state.current_rows(work.session) if day in (b.first_day, b.last_day)}
        for patient in sorted(busy | {d.patient for d in todays}):
            mine = [d for d in todays if d.patient == patient]
            if any(isinstance(d, Withdrawal) for d in mine):
                self._withdraw(next(d for d in mine if isinstance(d, Withdrawal)))
                continue
            self._patient_day(patient, mine)
            for d in mine:
                if isinstance(d, LateProduct):
                    self._late(d)
                elif isinstance(d, OutOfSpecification):
                    self._out_of_specification(d)
                else:
                    continue
                self._patient_day(patient, [])  # what the new plan books from today on

    def _patient_day(self, patient: str, disruptions: list[Disruption]) -> None:
        """The patient's bookings that start or end today, in their pathway's order, read again after
        each one (an action may re-plan the patient: a booking it puts on today is done today too).
        Doing a booking twice does nothing the second time: what is recorded is not recorded again."""
        handled: set[int] = set()
        while True:
            row, template = self._template(patient)
            if row.status == "withdrawn":
                return
            order = {s.name: i for i, s in enumerate(template.steps)}
            today = [
                b for b in self._bookings(patient) if b.id not in handled and self.today in (b.first_day, b.last_day)
            ]
            if not today:
                return
            booking = min(today, key=lambda b: (order.get(b.step, len(order)), b.first_day, b.id))
            handled.add(booking.id)
            if (patient, booking.step) not in self.unrecorded:
                self._step(patient, template, booking, disruptions)

    def _step(self, patient: str, template: Template, booking: BookingRow, disruptions: list[Disruption]) -> None:
        kind = template.step(booking.step).kind
        if kind == StepKind.monitoring:
            return  # the high-risk window follows the infusion: nobody records it
        if kind == StepKind.release:
            if booking.last_day == self.today:
                self._released(patient, template)
            return
        previous = self._record(booking.id)
        starts = booking.first_day == self.today and previous is None
        ends = booking.last_day == self.today and (starts or (previous is not None and previous.outcome == "started"))
        if starts:
            missed = next((d for d in disruptions if isinstance(d, MissedStep) and d.step == booking.step), None)
            if missed is not None:
                self.diary.disruptions.append(say(missed))
                self.record(patient, booking.step, "missed", reason=missed.reason)
                return
            poor = next((d for d in disruptions if isinstance(d, PoorMobilisation)), None)
            if poor is not None and kind == StepKind.apheresis:
                self._poorly_mobilised(patient, booking, poor)
                return
            self._before_start(patient, template, kind)
        if kind == StepKind.infusion and starts:
            self._infuse(patient, template, booking)
            return
        if starts and not ends:
            self.record(patient, booking.step, "started")
        elif ends:
            self.record(patient, booking.step, "done")
        else:
            return
        if ends:
            self._after_done(patient, template, booking, kind)

    # -- the product's chain, step by step -----------------------------------------------------
    def _current_product(self, patient: str) -> dict[str, Any] | None:
        """The patient's product still in play (the latest not lost and not failed without an exception)."""
        for product in reversed(self._products(patient)):
            s = product["state"]
            if not s["lost"] and (not s["out_of_specification"] or s["exceptional"]):
                return product
        return None

    def _kinds(self, product: dict[str, Any]) -> set[str]:
        return {event["kind"] for event in product["custody"]}

    def _before_start(self, patient: str, template: Template, kind: StepKind) -> None:
        """What the lab records of the product on the first day of a step, before the step itself."""
        product = self._current_product(patient)
        if product is None:
            if kind == StepKind.manufacture:
                self._remade(patient)
            return
        done, pid, day = self._kinds(product), product["id"], self.today
        if kind == StepKind.processing:
            if "shipped" in done and "received_at_centre" not in done:  # a donor's graft, from the courier
                self.custody(patient, pid, "received_at_centre", day, storage_location=STORAGE)
            elif "received" not in done and template.family != "commercial_car_t":
                self.custody(patient, pid, "received", day)
        elif kind == StepKind.manufacture:
            if template.family == "commercial_car_t" and "shipped" not in done:
                self.custody(patient, pid, "shipped", day, courier_reference=self._courier(patient, "out"))
            if "received" not in done:
                self.custody(patient, pid, "received", day)
            if "manufacture_started" not in done:
                self.custody(patient, pid, "manufacture_started", day)

    def _after_done(self, patient: str, template: Template, booking: BookingRow, kind: StepKind) -> None:
        """What follows a step done: a collection's product and its labels; a cryopreserved
        product released into storage; a product shipped back by its manufacturer."""
        if kind in state.COLLECTION_KINDS:
            self._register(patient, template, booking)
            return
        product = self._current_product(patient)
        if product is None:
            return
        done = self._kinds(product)
        if kind == StepKind.processing and not template.steps_of(StepKind.manufacture) and "released" not in done:
            if not done & {"received", "received_at_centre"}:  # collected after the processing had started
                self.custody(patient, product["id"], "received", self.today)
            self.custody(patient, product["id"], "released", self.today)
        elif kind == StepKind.manufacture and template.family == "commercial_car_t" and "shipped_back" not in done:
            self.custody(
                patient, product["id"], "shipped_back", self.today, courier_reference=self._courier(patient, "back")
            )

    def _register(self, patient: str, template: Template, collection: BookingRow) -> None:
        """A product for the cells collected, with its (made-up) labels, and its first custody events."""
        self.labels += 1
        year, n = collection.first_day.year, self.labels
        car_t = template.family in ("commercial_car_t", "in_house_car_t")
        body = ProductIn(
            collection_step=collection.step,
            din=example_din(year, n),
            product_code=PRODUCT_CODES[template.family],
            chain_of_identity=example_chain_of_identity(year, n) if car_t else None,
            order_reference=f"EX-ORDER-{n:05d}" if template.family == "commercial_car_t" else None,
            bags=(collection.last_day - collection.first_day).days + 1,
        )
        product = self.act(
            patient,
            "product registered",
            lambda: workflows.register_product(self.runtime, patient, body, COORDINATOR),
        )
        self.diary.products += 1
        self.custody(patient, product["id"], "collected", collection.first_day)
        if template.family == "allogeneic_sct":  # the donor centre sends the graft by courier
            self.custody(patient, product["id"], "shipped", self.today, courier_reference=self._courier(patient, "in"))

    def _remade(self, patient: str) -> None:
        """Manufacture starts again from the cells retained of a product that failed its release: a new
        product of the same donation (the same labels, a new order), where the cells are."""
        failed = next((p for p in reversed(self._products(patient)) if p["state"]["out_of_specification"]), None)
        if failed is None:
            return
        self.labels += 1
        body = ProductIn(
            collection_step=failed["collection_step"],
            din=failed["din"],
            product_code=failed["product_code"],
            chain_of_identity=failed["chain_of_identity"],
            order_reference=f"EX-ORDER-{self.labels:05d}",
            bags=failed["bags"],
        )
        product = self.act(
            patient,
            "product registered (re-manufacture)",
            lambda: workflows.register_product(self.runtime, patient, body, COORDINATOR),
        )
        self.diary.products += 1
        collected = next(e["day"] for e in failed["custody"] if e["kind"] == "collected")
        self.custody(patient, product["id"], "collected", date.fromisoformat(collected))
        self.custody(patient, product["id"], "received", self.today)
        self.custody(patient, product["id"], "manufacture_started", self.today)

    def _released(self, patient: str, template: Template) -> None:
        """The release booking's day: the product is received at the centre (if it was away) and released."""
        product = self._current_product(patient)
        if product is None or product["state"]["released_on"] or product["state"]["out_of_specification"]:
            return
        done = self._kinds(product)
        if "shipped_back" in done and "received_at_centre" not in done:
            self.custody(patient, product["id"], "received_at_centre", self.today, storage_location=STORAGE)
        self.custody(patient, product["id"], "released", self.today)

    def _infuse(self, patient: str, template: Template, booking: BookingRow) -> None:
        """Issue the product and record the infusion with the identifiers scanned from its bag."""
        product = self._current_product(patient)
        if product is not None and not product["state"]["infused"]:
            done, pid = self._kinds(product), product["id"]
            if "shipped" in done and "received_at_centre" not in done:  # a fresh graft, from the courier
                self.custody(patient, pid, "received_at_centre", self.today, storage_location=FRESH_STORAGE)
            if not product["state"]["released_on"]:
                self.custody(patient, pid, "released", self.today)
            if "issued" not in done:
                self.custody(patient, pid, "issued", self.today)
        scanned = None
        if product is not None:
            scanned = ScannedIdentity(din=product["din"], chain_of_identity=product["chain_of_identity"])
        self.record(patient, booking.step, "done", scanned=scanned)

    def _courier(self, patient: str, leg: str) -> str:
        return f"EX-COURIER-{patient}-{leg}-{self.today:%Y%m%d}"

    # -- disruptions ----------------------------------------------------------------------------
    def _poorly_mobilised(self, patient: str, harvest: BookingRow, poor: PoorMobilisation) -> None:
        self.diary.disruptions.append(say(poor))
        self.record(patient, harvest.step, "started")
        self.act(
            patient,
            "poor mobilisation",
            lambda: workflows.poor_mobilisation(self.runtime, patient, poor.reason, COORDINATOR),
        )

    def _late(self, late: LateProduct) -> None:
        _, template = self._template(late.patient)
        product = self._current_product(late.patient)
        manufacture = next(
            (b for b in self._bookings(late.patient) if template.step(b.step).kind == StepKind.manufacture), None
        )
        if product is None or manufacture is None:
            raise ValueError(f"{say(late)}: the patient has no product in manufacture")
        self.diary.disruptions.append(say(late))
        expected = manufacture.last_day + timedelta(days=1 + late.days_late)
        self.custody(late.patient, product["id"], "expected_back", expected)

    def _out_of_specification(self, oos: OutOfSpecification) -> None:
        product = self._current_product(oos.patient)
        if product is None or not product["state"]["released_on"]:
            raise ValueError(f"{say(oos)}: the patient has no released product")
        self.diary.disruptions.append(say(oos))
        self.custody(oos.patient, product["id"], "out_of_specification", oos.day, reason=oos.reason)
        if oos.choice == "exceptional release":
            reason = f"conditioning under way; {oos.clinician} authorised infusion of the product as it is"
            self.custody(
                oos.patient, product["id"], "exceptional_release", oos.day, clinician=oos.clinician, reason=reason
            )
            return

        def redo() -> Any:
            """The workflow takes the product's bookings out and proposes new dates; the coordinator
            confirms the first option straight away (one action: the plan is whole again after it)."""
            answer = workflows.out_of_specification(self.runtime, oos.patient, oos.choice, oos.reason, COORDINATOR)
            if answer.get("proposal") is None:
                raise RuntimeError(f"{say(oos)}: no proposal ({answer.get('proposal_error')})")
            return workflows.confirm(self.runtime, answer["proposal"]["id"], 0, COORDINATOR)

        self.act(oos.patient, f"out of specification: {oos.choice}, new dates confirmed", redo)

    def _withdraw(self, withdrawal: Withdrawal) -> None:
        self.diary.disruptions.append(say(withdrawal))
        self.act(
            withdrawal.patient,
            "withdrawn",
            lambda: workflows.withdraw(self.runtime, withdrawal.patient, withdrawal.reason, "withdrawn", COORDINATOR),
        )

    # -- the night ------------------------------------------------------------------------------
    def run_nightly(self, night: date) -> None:
        """The nightly re-solve for ``night`` (planning from that day), as the scheduler runs it."""
        self.today = night
        self.runtime.settings = self._settings(night)
        sessions = self.runtime.database.sessions
        started = time.perf_counter()

        def run() -> JobRun:
            run_id = nightly.claim_night(sessions, self.runtime.settings, night, "schedule")
            if run_id is None:
                raise RuntimeError(f"the night of {say_day(night)} has been run already")
            nightly.execute(sessions, self.runtime.settings, run_id)
            with self.runtime.database.read() as work:
                return work.session.get(JobRun, run_id)

        run = self.act(None, "nightly re-solve", run)
        self.diary.nightly_seconds += time.perf_counter() - started
        self.diary.nightly_runs[run.status] += 1


# -- choosing the script's patients from the plan ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Booked:
    patient: str
    family: str
    step: str
    kind: StepKind
    first: date
    last: date
    max_days: int


def _booked(settings: Settings) -> list[_Booked]:
    """Every current booking with its patient's pathway family, by first day and patient."""
    from api.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            catalogue = state.catalogue(session)
            pathways = {r.id: r.pathway for r in session.execute(select(PatientRow.id, PatientRow.pathway))}
            out = []
            for b in state.current_rows(session):
                template = catalogue.template(pathways[b.patient_id])
                step = template.step(b.step)
                out.append(
                    _Booked(
                        b.patient_id,
                        template.family,
                        b.step,
                        step.kind,
                        b.first_day,
                        b.last_day,
                        step.max_duration_days or step.duration_days,
                    )
                )
    finally:
        engine.dispose()
    return sorted(out, key=lambda b: (b.first, b.patient, b.step))


def _first(bookings: list[_Booked], taken: set[str], test: Callable[[_Booked], bool]) -> _Booked | None:
    found = next((b for b in bookings if b.patient not in taken and test(b)), None)
    if found is not None:
        taken.add(found.patient)
    return found


CAR_T = ("commercial_car_t", "in_house_car_t")


def month_script(settings: Settings, first: date, last: date) -> tuple[Disruption, ...]:
    """The scripted month's disruptions, each on the first patient of the plan it fits: out of
    specification on the second day of a CAR-T conditioning (released by exception); a commercial
    product that will be back a week late; a missed CAR-T apheresis; a poor mobiliser on a one-day
    harvest; a withdrawal two days after an infusion."""
    bookings, taken = _booked(settings), set()
    script: list[Disruption] = []
    oos = _first(
        bookings,
        taken,
        lambda b: (
            b.family in CAR_T
            and b.kind == StepKind.conditioning
            and b.last > b.first
            and first < b.first
            and b.last <= last - timedelta(days=4)
        ),  # infused within the days played
    )
    if oos is not None:
        reason = "viability below specification on the final release test"
        script.append(OutOfSpecification(oos.patient, oos.first + timedelta(days=1), reason))
    late = _late_product(bookings, taken, first, last)
    if late is not None:
        script.append(late)
    missed = _first(
        bookings, taken, lambda b: b.family in CAR_T and b.kind == StepKind.apheresis and first < b.first < last
    )
    if missed is not None:
        reason = "febrile on arrival: line infection suspected"
        script.append(MissedStep(missed.patient, missed.first, missed.step, reason))
    poor = _first(
        bookings,
        taken,
        lambda b: (
            b.family == "autologous_sct"
            and b.kind == StepKind.apheresis
            and b.first == b.last
            and b.max_days > 1
            and first <= b.first < last
        ),
    )
    if poor is not None:
        script.append(PoorMobilisation(poor.patient, poor.first, "CD34+ yield 0.8 x10^6/kg, below the target of 2"))
    infused = _first(bookings, taken, lambda b: b.kind == StepKind.infusion and first <= b.first <= last - timedelta(3))
    if infused is not None:
        reason = "transferred to the care of another hospital at the family's request"
        script.append(Withdrawal(infused.patient, infused.first + timedelta(days=2), reason))
    return tuple(script)


def _late_product(bookings: list[_Booked], taken: set[str], first: date, last: date) -> LateProduct | None:
    """A commercial product away for manufacture: the manufacturer says it will be back a week late."""
    found = _first(
        bookings,
        taken,
        lambda b: b.family == "commercial_car_t" and b.kind == StepKind.manufacture and first <= b.first < last,
    )
    if found is None:
        return None
    return LateProduct(found.patient, min(found.first + timedelta(days=3), last), days_late=7)


def demo_script(settings: Settings, first: date, last: date) -> tuple[Disruption, ...]:
    """The demo's past: one product late, one step nobody recorded (a mobilisation in the last week).
    A product still in its release testing at the end is the one awaiting release."""
    bookings, taken = _booked(settings), set()
    script: list[Disruption] = []
    late = _late_product(bookings, taken, first, last)
    if late is not None:
        script.append(late)
    unrecorded = _first(
        bookings, taken, lambda b: b.kind == StepKind.mobilisation and last - timedelta(days=6) <= b.first <= last
    )
    if unrecorded is not None:
        script.append(Unrecorded(unrecorded.patient, unrecorded.step))
    return tuple(script)
