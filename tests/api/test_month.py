"""A scripted month of the regional demo, recorded as it happens (``api.diary``), on SQLite and PostgreSQL
with the real solver: every booked step recorded on its day by the coordinators and the lab, every
night's re-solve, and one of each disruption the issue names: a late product, out of specification
after conditioning has started, a poor mobiliser, a missed apheresis, a withdrawal after the infusion.

The month is played once per database (a module-scoped fixture) while a witness watches each action:
the independent checker on the plan after it, the bookings it moved and the events it wrote, the
moved patients' calendars re-imported as a calendar client would; and at the end of each day the
capacity table of that day. The tests then judge what the witness saw and the month's records.

Run with ``-s`` to see the month's summary (records, products, plan versions, moves)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, timedelta

import icalendar
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import diary, state, views
from api.app import create_app
from api.db import CustodyEvent, EventRow, PatientRow, ProductRow, StepRecord, make_engine, make_sessionmaker
from api.settings import Settings
from api.setup import init_database, load_cohort, new_token
from pathway.custody import collected_before_conditioning
from tests.builders import assert_plan_valid, auth, fresh_database, make_settings
from tests.paths import COHORTS

FIRST = date(2027, 1, 4)  # the regional cohort's first day
LAST = FIRST + timedelta(days=30)  # a month: 31 days
GENERIC = re.compile(r"^(replan|nightly|record|import|confirm) by \S+( \(plan version \d+\))?$")
"""A reason that names who re-planned, not why: what a moved booking must never show."""


class CalendarClient:
    """A calendar application that imports a patient's .ics file now and then: an event whose UID it
    knows is replaced (by a SEQUENCE no lower), a new UID is added, and nothing is deleted because a
    later file lacks it. A cancelled event is shown as cancelled."""

    def __init__(self) -> None:
        self.events: dict[str, icalendar.Event] = {}

    def import_file(self, body: bytes) -> None:
        for event in icalendar.Calendar.from_ical(body).walk("VEVENT"):
            uid = str(event["UID"])
            known = self.events.get(uid)
            if known is None or int(event.get("SEQUENCE", 0)) >= int(known.get("SEQUENCE", 0)):
                self.events[uid] = event

    def duplicates(self) -> list[str]:
        """Steps shown by more than one event that is not cancelled."""
        shown: dict[str, int] = defaultdict(int)
        for event in self.events.values():
            if str(event.get("STATUS", "")).upper() != "CANCELLED":
                shown[str(event["SUMMARY"])] += 1
        return sorted(summary for summary, n in shown.items() if n > 1)


class Witness:
    """Watches the month: after each action and at the end of each day."""

    def __init__(self, settings: Settings, client: TestClient) -> None:
        self.engine = make_engine(settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.client = client
        self.actions: list[diary.Action] = []
        self.checker: list[str] = []  # the checker's findings, action by action
        self.untold: list[str] = []  # moved patients without an event naming the cause, or shown a generic reason
        self.causes: dict[str, list[str]] = defaultdict(list)  # patient -> the causes their moves were told
        self.evenings: dict[date, list[dict]] = {}
        self.calendars: dict[str, CalendarClient] = defaultdict(CalendarClient)

    def close(self) -> None:
        self.engine.dispose()

    def import_calendar(self, patient: str) -> None:
        response = self.client.get(f"/patients/{patient}/calendar.ics", headers=auth(self.client, "coordinator"))
        assert response.status_code == 200, response.text
        self.calendars[patient].import_file(response.content)

    def after(self, settings: Settings, action: diary.Action) -> None:
        self.actions.append(action)
        try:
            assert_plan_valid(settings)
        except AssertionError as broken:
            self.checker.append(f"{action.day} {action.patient} {action.what}: {broken}")
        if not action.moved:
            return
        with self.sessions() as session:
            events = session.scalars(select(EventRow).where(EventRow.id >= action.first_event)).all()
        for patient in sorted({m.patient for m in action.moved}):
            told = [_cause(e) for e in events if e.patient_id == patient and _cause(e)]
            self.causes[patient] += told
            if not told:
                self.untold.append(f"{action.day} {patient} ({action.what}): no event names why their bookings moved")
            for move in (m for m in action.moved if m.patient == patient):
                if GENERIC.match(move.fixed_by):
                    self.untold.append(
                        f"{action.day} {patient} {move.step} ({action.what}): shown as {move.fixed_by!r}"
                    )
            self.import_calendar(patient)

    def evening(self, settings: Settings) -> None:
        self.evenings[settings.planning_day()] = self.capacity_of(settings.planning_day(), settings)

    def capacity_of(self, day: date, settings: Settings) -> list[dict]:
        """The capacity table's cells of ``day``; a weekly resource's cell once its week is over (Sunday)."""
        with self.sessions() as session:
            table = views.capacity_table(session, day, day, settings)
        return [c for c in table["cells"] if c["period"] == "day" or day.weekday() == 6]


def _cause(event: EventRow) -> str:
    """The cause an event names: a ``moved`` event's cause (or the nightly's why); any other event of
    the patient is itself the cause (a missed step, a product expected back late, poor mobilisation)."""
    details = event.details or {}
    named = str(details.get("cause") or details.get("why") or "")
    if event.kind == "moved" or named:
        return named
    return " ".join(filter(None, [event.kind.replace("_", " "), str(details.get("reason") or "")]))


class Month:
    def __init__(self, settings, script, played, witness, end):
        self.settings, self.script, self.played, self.witness, self.end = settings, script, played, witness, end

    def disruption(self, kind: type) -> diary.Disruption:
        return next(d for d in self.script if isinstance(d, kind))

    def session(self):
        return self.witness.sessions()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def month(request, tmp_path_factory):
    url = fresh_database(request.param, tmp_path_factory.mktemp("month"))
    # the demo's horizon and solve time; a nightly of at most 5 s (it runs every night of the month)
    settings = make_settings(url, horizon_days=365, solve_time_limit=10, nightly_time_limit=5)
    init_database(settings)
    load_cohort(settings, COHORTS / "regional.json")
    script = diary.month_script(settings, FIRST, LAST)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.tokens = {"coordinator": new_token(settings, "month-coordinator", "coordinator")}
        witness = Witness(settings, client)
        with witness.sessions() as session:  # every calendar as its patient's coordinator imported it
            planned = sorted({b.patient_id for b in state.current_rows(session)})
        for patient in planned:
            witness.import_calendar(patient)
        played = diary.play(settings, FIRST, LAST, script, observe=witness.after, evening=witness.evening)
        print(f"\nthe month on {request.param}:\n{played.summary()}")
        yield Month(settings, script, played, witness, settings.model_copy(update={"today": LAST + timedelta(1)}))
        witness.close()


def test_the_month_has_each_disruption_and_records_every_step(month):
    kinds = {type(d) for d in month.script}
    assert kinds == {
        diary.LateProduct,
        diary.OutOfSpecification,
        diary.PoorMobilisation,
        diary.MissedStep,
        diary.Withdrawal,
    }
    assert len(month.played.disruptions) == 5, month.played.disruptions
    assert month.played.refused == []
    assert sum(month.played.nightly_runs.values()) == 31 and month.played.nightly_runs["failed"] == 0
    with month.session() as session:
        worklist = {role: views.worklist(session, month.end, role) for role in ("coordinator", "lab_manager")}
    assert [i for w in worklist.values() for i in w["overdue"]] == [], "a step of the month was left unrecorded"


def test_no_conditioning_is_recorded_before_its_product_is_released(month):
    with month.session() as session:
        catalogue = state.catalogue(session)
        pathways = {p.id: p.pathway for p in session.scalars(select(PatientRow))}
        released: dict[str, list[date]] = defaultdict(list)
        query = select(ProductRow.patient_id, CustodyEvent.day).join(
            ProductRow, CustodyEvent.product_id == ProductRow.id
        )
        for patient, day in session.execute(query.where(CustodyEvent.kind.in_(("released", "exceptional_release")))):
            released[patient].append(day)
        conditioning = [
            r
            for r in session.scalars(select(StepRecord).where(StepRecord.outcome.in_(("started", "done"))))
            if catalogue.template(pathways[r.patient_id]).step(r.step).kind.value == "conditioning"
        ]
    gated = [r for r in conditioning if collected_before_conditioning(catalogue.template(pathways[r.patient_id]))]
    assert len({r.patient_id for r in gated}) >= 5, "the month should condition several patients"
    early = [
        f"{r.patient_id} {r.step} {r.outcome} on {r.first_day}"
        for r in gated
        if not any(day <= r.first_day for day in released[r.patient_id])
    ]
    assert early == []


def test_the_checker_finds_nothing_after_any_action(month):
    assert len(month.witness.actions) > 100
    assert month.witness.checker == [], "\n".join(month.witness.checker)


def test_the_capacity_table_of_every_past_day_is_what_it_was_that_evening(month):
    assert len(month.witness.evenings) == 31
    changed = []
    for day, then in sorted(month.witness.evenings.items()):
        now = {(c["resource"], c["day"]): c for c in month.witness.capacity_of(day, month.end)}
        for cell in then:
            if now.get((cell["resource"], cell["day"])) != cell:
                after = now.get((cell["resource"], cell["day"]), {}).get("patients")
                changed.append(f"{cell['resource']} {cell['day']}: {cell['patients']} -> {after}")
    assert changed == [], "\n".join(changed)


def test_every_moved_patient_has_an_event_naming_the_true_cause(month):
    moved = {m.patient for m in month.played.moves}
    late, missed, poor = (month.disruption(k) for k in (diary.LateProduct, diary.MissedStep, diary.PoorMobilisation))
    assert {late.patient, missed.patient, poor.patient} <= moved
    assert month.witness.untold == [], "\n".join(month.witness.untold)
    causes = month.witness.causes
    assert any("expected back" in c and "later than planned" in c for c in causes[late.patient]), causes[late.patient]
    assert any("missed" in c for c in causes[missed.patient]), causes[missed.patient]
    assert any("poor mobilisation" in c for c in causes[poor.patient]), causes[poor.patient]


def test_a_calendar_reimported_after_a_move_has_no_duplicate_event(month):
    moved = {m.patient for m in month.played.moves}
    assert moved and moved <= set(month.witness.calendars)
    duplicates = {p: month.witness.calendars[p].duplicates() for p in sorted(moved)}
    assert {p: d for p, d in duplicates.items() if d} == {}, duplicates


def test_each_disruption_left_its_mark(month):
    late = month.disruption(diary.LateProduct)
    oos = month.disruption(diary.OutOfSpecification)
    poor = month.disruption(diary.PoorMobilisation)
    missed = month.disruption(diary.MissedStep)
    withdrawn = month.disruption(diary.Withdrawal)
    with month.session() as session:
        booked = {(b.patient_id, b.step): b for b in state.current_rows(session)}
        recorded = defaultdict(list)
        for r in session.scalars(select(StepRecord).order_by(StepRecord.id)):
            recorded[(r.patient_id, r.step)].append(r)
        products = {p: views.product_views(session, p) for p in (late.patient, oos.patient, poor.patient)}
        status = session.get(PatientRow, withdrawn.patient).status

    # the late product: its release waits for it
    release = next(m for m in month.played.moves if m.patient == late.patient and m.step == "release")
    assert release.after[0] >= release.before[0] + timedelta(days=late.days_late)
    expected = [e["day"] for e in products[late.patient][0]["custody"] if e["kind"] == "expected_back"]
    assert len(expected) == 1 and release.after[0] >= date.fromisoformat(expected[0])

    # out of specification on conditioning's second day: the product released by exception and infused
    conditioning = recorded[(oos.patient, "conditioning")]
    assert conditioning[0].outcome == "started" and conditioning[0].first_day < oos.day
    product = products[oos.patient][-1]["state"]
    assert product["out_of_specification"] and product["exceptional"] and product["infused"]
    assert [r.outcome for r in recorded[(oos.patient, "infusion")]] == ["done"]

    # the poor mobiliser: a second harvest day if there was room (its product has two days' bags),
    # else mobilisation again after that day
    harvest = recorded[(poor.patient, "harvest")]
    if harvest[-1].outcome == "done":
        assert harvest[0].outcome == "started" and harvest[0].first_day == poor.day
        assert (harvest[-1].first_day, harvest[-1].last_day) == (poor.day, poor.day + timedelta(days=1))
        assert products[poor.patient][0]["bags"] == 2
    else:
        assert booked[(poor.patient, "mobilisation")].first_day >= poor.day

    # the missed apheresis: on record with its reason, and booked again after that day
    assert [(r.outcome, r.reason) for r in recorded[(missed.patient, missed.step)]][0] == ("missed", missed.reason)
    assert booked[(missed.patient, missed.step)].first_day > missed.day

    # the withdrawal after the infusion: withdrawn, the infusion kept on record
    assert status == "withdrawn"
    infusion = next(step for (p, step) in recorded if p == withdrawn.patient and "infusion" in step)
    assert [r.outcome for r in recorded[(withdrawn.patient, infusion)]] == ["done"]
    assert not [b for (p, _), b in booked.items() if p == withdrawn.patient and b.first_day >= withdrawn.day]
