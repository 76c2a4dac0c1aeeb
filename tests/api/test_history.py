"""History is never rewritten, on a real database (SQLite and PostgreSQL) with the real solver.

What has happened stays: a withdrawal or an out-of-specification product ends what was under way
yesterday and keeps what is done; the capacity of a past day is read from the plan version and the
capacity changes in force at its end, so no later action changes it. Withdrawn or deceased patients,
reinstatement, NHS numbers unique among active referrals; every move names its true cause, and
confirmations tell which moves a patient has still to hear about.

The planning day moves on as it does in production: the service's ``today`` setting, a new app per day.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from api import errors, state, views
from api.app import create_app
from api.db import BookingRow, CapacityChangeRow, PatientRow, PlanVersion, make_engine, make_sessionmaker
from pathway.nhs import normalise_nhs_number
from tests.builders import TODAY, assert_plan_valid, auth, confirm, propose, refer, run_nightly

NHS = "943 476 5919"  # a valid NHS number (modulus 11)


def day(text: str) -> date:
    return date.fromisoformat(text)


@contextmanager
def on_day(settings, tokens, today: date) -> Iterator[TestClient]:
    """The service as it runs on ``today`` (its planning day)."""
    later = settings.model_copy(update={"today": today})
    with TestClient(create_app(later), raise_server_exceptions=False) as client:
        client.tokens = tokens
        client.settings = later
        yield client


def past_capacity(client) -> dict[tuple[str, str], dict]:
    """Every cell of the capacity table wholly before today, from the cohort's first day."""
    today = client.settings.today
    if today <= TODAY:
        return {}
    table = _capacity(client, TODAY, today - timedelta(days=1))
    return {k: c for k, c in table.items() if c["period"] == "day" or day(c["day"]) + timedelta(days=6) < today}


def _capacity(client, first: date, last: date) -> dict[tuple[str, str], dict]:
    response = client.get(f"/capacity?from={first}&to={last}", headers=auth(client, "lab_manager"))
    assert response.status_code == 200, response.text
    return {(c["resource"], c["day"]): c for c in response.json()["cells"]}


def post(client, path: str, body: dict | None = None, role: str = "coordinator"):
    return client.post(path, json=body, headers=auth(client, role))


def current(settings) -> dict[tuple[str, str], tuple[date, date, str]]:
    """The current plan's bookings: (patient, step) -> first day, last day, fixed by."""
    with _session(settings) as session:
        return {(b.patient_id, b.step): (b.first_day, b.last_day, b.fixed_by) for b in state.current_rows(session)}


@contextmanager
def _session(settings):
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def users(cell: dict) -> set[str]:
    return {p["patient"] for p in cell["patients"]}


# -- the capacity of a past day ------------------------------------------------------------------
def test_the_capacity_of_every_past_day_is_what_it_was_whatever_happens_later(small_site, tokens):
    """A month of disruptions, a day at a time. Before and after each action the table of every day
    already over is identical; and a day, once over, reads as it stood at its end."""
    days = iter(
        [
            date(2027, 1, 14),  # S-INH-1's manufacture under way: out of specification, re-manufacture
            date(2027, 1, 18),  # a closure of S-INH-3's apheresis day, and its re-plan
            date(2027, 1, 19),  # a re-plan asked for
            date(2027, 1, 20),  # the nightly run
            date(2027, 2, 10),  # S-AXI-2 infused on 8 Feb, in the ward: withdrawn
            date(2027, 2, 11),  # reinstated, the proposal confirmed
            date(2027, 2, 12),  # the nightly run
        ]
    )
    end_of_previous_day: dict = {}

    def next_day() -> TestClient:
        today = next(days)
        context = on_day(small_site, tokens, today)
        client = context.__enter__()
        client.context = context
        for key, cell in end_of_previous_day.items():  # as it stood at the end of the day: now a past day
            assert _capacity(client, day(key[1]), day(key[1]))[key] == cell, key
        return client

    def unchanged(client, action) -> None:
        before = past_capacity(client)
        result = action()
        assert past_capacity(client) == before
        return result

    def end(client) -> None:
        today = client.settings.today
        end_of_previous_day.clear()
        end_of_previous_day.update(_capacity(client, today, today))
        assert_plan_valid(client.settings)
        client.context.__exit__(None, None, None)

    client = next_day()
    released = unchanged(client, lambda: _oos(client, "S-INH-1", "re-manufacture"))
    unchanged(client, lambda: _confirmed(client, released["proposal"]["id"]))
    end(client)

    client = next_day()
    closed = current(client.settings)[("S-INH-3", "apheresis")][0]
    closure = unchanged(client, lambda: _close(client, "apheresis_machine", closed))
    replanned = unchanged(client, lambda: post(client, f"/capacity/changes/{closure['id']}/replan", role="lab_manager"))
    assert replanned.status_code == 200, replanned.text
    end(client)

    client = next_day()
    asked = {"patients": ["S-NOFIT-1", "S-INH-3"], "reason": "coordinators' weekly review"}
    unchanged(client, lambda: post(client, "/replan", asked))
    end(client)

    client = next_day()
    refer(client, "N-NIGHT-1", approval="2027-01-20")  # for the run to plan
    run = unchanged(client, lambda: run_nightly(client.settings))
    assert client.get(f"/jobs/nightly/runs/{run}", headers=auth(client, "admin")).json()["run"]["status"] == "published"
    end(client)

    client = next_day()
    ward = next(c for (r, d), c in past_capacity(client).items() if r == "liverpool/bed" and d == "2027-02-09")
    assert "S-AXI-2" in users(ward)
    unchanged(client, lambda: _withdraw(client, "S-AXI-2"))
    assert "S-AXI-2" in users(_capacity(client, date(2027, 2, 9), date(2027, 2, 9))[("liverpool/bed", "2027-02-09")])
    assert "S-AXI-2" not in users(
        _capacity(client, date(2027, 2, 10), date(2027, 2, 10))[("liverpool/bed", "2027-02-10")]
    )
    end(client)

    client = next_day()
    reinstated = unchanged(client, lambda: post(client, "/patients/S-AXI-2/reinstate", {"reason": "back on the ward"}))
    assert reinstated.status_code == 200, reinstated.text
    unchanged(client, lambda: _confirmed(client, reinstated.json()["proposal"]["id"]))
    end(client)

    client = next_day()
    unchanged(client, lambda: run_nightly(client.settings))
    end(client)


def _oos(client, patient: str, redo: str) -> dict:
    response = post(client, f"/patients/{patient}/out-of-specification", {"redo": redo, "reason": "sterility failed"})
    assert response.status_code == 200, response.text
    return response.json()


def _confirmed(client, proposal_id: str) -> dict:
    response = confirm(client, proposal_id)
    assert response.status_code == 200, response.text
    return response.json()


def _close(client, resource: str, closed: date, reason: str = "machine service") -> dict:
    closure = {
        "resource": resource,
        "centre": "liverpool",
        "first_day": closed.isoformat(),
        "last_day": closed.isoformat(),
        "capacity": 0,
        "reason": reason,
    }
    response = post(client, "/capacity/changes", closure, role="lab_manager")
    assert response.status_code == 201, response.text
    return response.json()


def _withdraw(client, patient: str, cause: str = "withdrawn") -> dict:
    response = post(client, f"/patients/{patient}/withdraw", {"reason": "moved to another centre", "cause": cause})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_capacity_view_of_a_year_takes_the_same_few_queries_as_one_of_a_week(small_site, tokens):
    """The days are grouped by the plan version in force, never read one at a time."""
    with on_day(small_site, tokens, date(2027, 1, 14)) as client:
        released = _oos(client, "S-INH-1", "re-manufacture")
        _confirmed(client, released["proposal"]["id"])
    for today in (date(2027, 1, 20), date(2027, 2, 3)):
        with on_day(small_site, tokens, today) as client:
            run_nightly(client.settings)
            refer(client, f"N-LATE-{today.day}", approval=today.isoformat())
            _confirmed(client, propose(client, f"N-LATE-{today.day}")["id"])
    later = small_site.model_copy(update={"today": date(2027, 6, 1)})
    engine = make_engine(later.database_url)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        counts = []
        for first, last in ((date(2027, 5, 29), date(2027, 6, 4)), (TODAY, date(2028, 1, 3))):  # past and ahead
            statements.clear()
            with make_sessionmaker(engine)() as session:
                table = views.capacity_table(session, first, last, later)
            counts.append(len(statements))
        with make_sessionmaker(engine)() as session:
            versions = session.scalars(select(PlanVersion.planning_day).distinct()).all()
    finally:
        engine.dispose()
    assert len(versions) >= 4  # the year spans plan versions of four planning days
    assert len(table["cells"]) > 366 and counts[0] == counts[1], counts


# -- withdrawal, out of specification: what happened stays ----------------------------------------
def test_a_withdrawal_after_the_infusion_keeps_the_infusion_and_ends_the_stay_yesterday(small_site, tokens):
    with on_day(small_site, tokens, date(2027, 2, 10)) as client:
        before = current(client.settings)
        answer = _withdraw(client, "S-AXI-2", cause="deceased")
        after = current(client.settings)
        steps = {s["step"]: s for s in answer["timeline"]["steps"]}
        events = answer["timeline"]["events"]
        audit = client.get("/audit?entity=patient&entity_id=S-AXI-2", headers=auth(client, "admin")).json()
    for step in ("apheresis", "manufacture", "release", "conditioning", "infusion"):
        assert after[("S-AXI-2", step)] == before[("S-AXI-2", step)]  # done: as it was, row and all
    for step in ("inpatient", "high_risk_window"):  # under way: ended yesterday
        assert after[("S-AXI-2", step)][:2] == (before[("S-AXI-2", step)][0], date(2027, 2, 9))
        assert "ended Tue 09 Feb 2027" in after[("S-AXI-2", step)][2]
    assert steps["infusion"]["first_day"] == "2027-02-08" and steps["inpatient"]["last_day"] == "2027-02-09"
    assert answer["timeline"]["status"] == "withdrawn" and "proposal" not in answer
    assert events[-1]["kind"] == "withdrawal" and events[-1]["details"]["cause"] == "deceased"
    withdrawal = next(a for a in audit if a["action"] == "patient.withdrawal")
    assert withdrawal["after"]["cause"] == "deceased"
    assert {b["step"] for b in withdrawal["after"]["history"]} == {"inpatient", "high_risk_window"}
    assert_plan_valid(small_site.model_copy(update={"today": date(2027, 2, 10)}))


def test_a_patient_reinstated_the_day_after_goes_on_where_they_stopped(small_site, tokens):
    """Withdrawn in the ward two days after the infusion, reinstated the next day: the infusion stays
    done, and the stay and the high-risk window tied to it go on from the infusion day."""
    with on_day(small_site, tokens, date(2027, 2, 10)) as client:
        before = current(client.settings)
        _withdraw(client, "S-AXI-2")
    with on_day(small_site, tokens, date(2027, 2, 11)) as client:
        back = post(client, "/patients/S-AXI-2/reinstate", {"reason": "withdrawn by mistake"})
        assert back.status_code == 200, back.text
        assert back.json()["timeline"]["events"][-1]["details"]["restart"] == "where it stopped"
        fast = {b["step"]: b for b in back.json()["proposal"]["options"][0]["bookings"]}
        _confirmed(client, back.json()["proposal"]["id"])
        after = current(client.settings)
        assert_plan_valid(client.settings)
    for step in ("inpatient", "high_risk_window"):
        assert (fast[step]["first_day"], fast[step]["last_day"]) == tuple(
            d.isoformat() for d in before[("S-AXI-2", step)][:2]
        )
        assert after[("S-AXI-2", step)][:2] == before[("S-AXI-2", step)][:2]
    assert after[("S-AXI-2", "infusion")] == before[("S-AXI-2", "infusion")]  # the same row: never rewritten


def test_out_of_specification_during_manufacture_keeps_the_days_made_and_books_a_new_product(small_site, tokens):
    """The days the failed product was in manufacture stay in the plan (ended yesterday) until its
    new manufacture is booked; they are never frozen as if the product were still being made."""
    with on_day(small_site, tokens, date(2027, 1, 14)) as client:
        made = current(client.settings)[("S-INH-1", "manufacture")]
        answer = _oos(client, "S-INH-1", "re-manufacture")
        kept = current(client.settings)[("S-INH-1", "manufacture")]
        fast = {b["step"]: b for b in answer["proposal"]["options"][0]["bookings"]}
        assert kept[:2] == (made[0], date(2027, 1, 13))
        assert fast["apheresis"]["first_day"] == "2027-01-07"  # the collection stays
        assert day(fast["manufacture"]["first_day"]) >= date(2027, 1, 14)  # a new product, made from today
        _confirmed(client, answer["proposal"]["id"])
        now = current(client.settings)
        with _session(client.settings) as session:
            rows = session.scalars(
                select(BookingRow).where(BookingRow.patient_id == "S-INH-1", BookingRow.step == "manufacture")
            ).all()

        # the nightly run books a product too, when nobody confirmed a proposal first
        _oos(client, "S-INH-2", "re-apheresis")
        run_nightly(client.settings)
        nightly = current(client.settings)
    assert now[("S-INH-1", "manufacture")][:2] == (
        day(fast["manufacture"]["first_day"]),
        day(fast["manufacture"]["last_day"]),
    )
    # history is appended, never rewritten: the first booking, its ended copy, the new product's
    assert [(r.first_day, r.last_day) for r in sorted(rows, key=lambda r: r.id)] == [
        made[:2],
        kept[:2],
        now[("S-INH-1", "manufacture")][:2],
    ]
    assert nightly[("S-INH-2", "apheresis")][0] >= date(2027, 1, 14)
    assert nightly[("S-INH-2", "manufacture")][0] >= nightly[("S-INH-2", "apheresis")][0]
    assert_plan_valid(small_site.model_copy(update={"today": date(2027, 1, 14)}))


# -- withdrawn or deceased, reinstated ---------------------------------------------------------------
def test_a_withdrawn_patient_can_be_read_and_reinstated_and_nothing_else(client, small_site):
    made_before = propose(client, "S-INH-3")
    _withdraw(client, "S-INH-3")
    refused = {
        "confirm a proposal made before": confirm(client, made_before["id"]),
        "propose": post(client, "/patients/S-INH-3/proposals"),
        "defer": post(client, "/patients/S-INH-3/defer", {"from_date": "2027-03-01", "reason": "infection"}),
        "out of specification": post(
            client, "/patients/S-INH-3/out-of-specification", {"redo": "re-apheresis", "reason": "failed"}
        ),
        "edit": client.patch("/patients/S-INH-3", json={"urgency": "urgent"}, headers=auth(client, "coordinator")),
        "withdraw again": post(client, "/patients/S-INH-3/withdraw", {"reason": "again"}),
        "confirm dates": post(client, "/patients/S-INH-3/confirmations", {}),
        "re-plan": post(client, "/replan", {"patients": ["S-INH-3"]}),
    }
    for action, response in refused.items():
        assert response.status_code == 409, (action, response.text)
        assert "S-INH-3 is withdrawn" in response.json()["detail"], action
    assert client.get("/patients/S-INH-3", headers=auth(client, "coordinator")).json()["status"] == "withdrawn"
    assert client.get("/patients/S-INH-3/timeline", headers=auth(client, "lab_manager")).status_code == 200

    back = post(client, "/patients/S-INH-3/reinstate", {"reason": "patient changed their mind"})
    assert back.status_code == 200, back.text
    assert back.json()["timeline"]["status"] == "referred"
    assert back.json()["timeline"]["events"][-1]["kind"] == "reinstatement"
    assert back.json()["proposal"]["options"], back.json()["proposal"]["reason"]
    assert confirm(client, back.json()["proposal"]["id"]).status_code == 200
    audit = client.get("/audit?entity=patient&entity_id=S-INH-3", headers=auth(client, "admin")).json()
    assert audit[1]["action"] == "patient.reinstatement" or audit[2]["action"] == "patient.reinstatement"
    again = post(client, "/patients/S-INH-3/reinstate", {"reason": "twice"})
    assert again.status_code == 409 and "not withdrawn" in again.json()["detail"]
    assert_plan_valid(small_site)


def test_a_deceased_patient_cannot_be_reinstated(client, small_site):
    _withdraw(client, "S-AXI-3", cause="deceased")
    response = post(client, "/patients/S-AXI-3/reinstate", {"reason": "entered by mistake"})
    assert response.status_code == 409 and "deceased" in response.json()["detail"]
    assert client.get("/patients/S-AXI-3", headers=auth(client, "coordinator")).json()["status"] == "withdrawn"


def test_a_patient_reinstated_after_their_manufacture_window_passed_starts_again_from_the_beginning(small_site, tokens):
    """Withdrawn during a commercial manufacture whose slot must follow the collection within days:
    weeks later nothing can continue from that collection, so the pathway starts again (the earlier
    bookings stay as history)."""
    with on_day(small_site, tokens, date(2027, 1, 14)) as client:
        _withdraw(client, "S-AXI-1")
    with on_day(small_site, tokens, date(2027, 3, 1)) as client:
        back = post(client, "/patients/S-AXI-1/reinstate", {"reason": "fit again"})
        assert back.status_code == 200, back.text
        assert back.json()["timeline"]["events"][-1]["details"]["restart"] == "from the beginning"
        fast = {b["step"]: b for b in back.json()["proposal"]["options"][0]["bookings"]}
        assert day(fast["apheresis"]["first_day"]) >= date(2027, 3, 1)
        _confirmed(client, back.json()["proposal"]["id"])
        assert_plan_valid(client.settings)


# -- NHS numbers: unique among patients who are not withdrawn ---------------------------------------
def test_a_withdrawn_patients_nhs_number_may_be_used_again_and_blocks_their_reinstatement(client, small_site):
    coordinator = auth(client, "coordinator")
    refer(client, "N-FIRST", nhs_number=NHS)
    taken = client.post(
        "/patients",
        json={
            "id": "N-SECOND",
            "centre": "liverpool",
            "pathway": "axi-cel",
            "approval_date": "2027-01-04",
            "nhs_number": NHS,
        },
        headers=coordinator,
    )
    assert taken.status_code == 409 and "NHS number" in taken.json()["detail"]
    _withdraw(client, "N-FIRST")
    refer(client, "N-SECOND", nhs_number=NHS)  # a new referral may use a withdrawn patient's number

    refused = post(client, "/patients/N-FIRST/reinstate", {"reason": "referred twice by mistake"})
    assert refused.status_code == 409 and "N-SECOND" in refused.json()["detail"]
    assert normalise_nhs_number(NHS) not in refused.text
    assert client.get("/patients/N-FIRST", headers=coordinator).json()["status"] == "withdrawn"

    _withdraw(client, "N-SECOND")
    assert post(client, "/patients/N-FIRST/reinstate", {"reason": "the right referral"}).status_code == 200


def test_the_database_keeps_one_active_referral_per_nhs_number(small_site):
    number = normalise_nhs_number(NHS)

    def patient(pid: str, status: str) -> PatientRow:
        return PatientRow(
            id=pid, centre="liverpool", pathway="axi-cel", approval_date=TODAY, urgency="routine",
            nhs_number=number, status=status,
        )  # fmt: skip

    with _session(small_site) as session:
        session.add_all(
            [patient("DB-OLD-1", "withdrawn"), patient("DB-OLD-2", "withdrawn"), patient("DB-NOW", "referred")]
        )
        session.commit()
        session.add(patient("DB-TWICE", "scheduled"))
        try:
            session.commit()
            refused = None
        except IntegrityError as exc:
            refused = exc
    assert refused is not None
    # were a request to meet it (a write outside the plan lock), it would be answered 409, the number unsaid
    request = Request({"type": "http", "method": "POST", "path": "/patients", "headers": []})
    answer = asyncio.run(errors._integrity(request, refused))
    assert answer.status_code == 409
    assert "not withdrawn has this NHS number" in answer.body.decode() and number not in answer.body.decode()


def test_a_reinstatement_racing_a_referral_with_the_same_nhs_number_lets_one_win(small_site, tokens):
    with on_day(small_site, tokens, TODAY) as client:
        refer(client, "N-RACE-OLD", nhs_number=NHS)
        _withdraw(client, "N-RACE-OLD")
    barrier = threading.Barrier(2)
    answers: dict = {}

    def act(name: str, path: str, body: dict) -> None:
        with TestClient(create_app(small_site), raise_server_exceptions=False) as own:
            own.tokens = tokens
            barrier.wait()
            answers[name] = post(own, path, body)

    body = {"id": "N-RACE-NEW", "centre": "liverpool", "pathway": "axi-cel", "approval_date": "2027-01-04"}
    threads = [
        threading.Thread(target=act, args=("reinstate", "/patients/N-RACE-OLD/reinstate", {"reason": "back"})),
        threading.Thread(target=act, args=("refer", "/patients", body | {"nhs_number": NHS})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    codes = sorted(a.status_code for a in answers.values())
    assert codes in ([200, 409], [201, 409]), {k: a.text for k, a in answers.items()}
    with _session(small_site) as session:
        holders = session.scalars(
            select(PatientRow.id).where(
                PatientRow.nhs_number == normalise_nhs_number(NHS), PatientRow.status != "withdrawn"
            )
        ).all()
    assert len(holders) == 1


# -- moves carry their true cause ---------------------------------------------------------------------
def test_a_closure_replan_tells_each_moved_patient_the_closure(client, small_site):
    victim = "S-INH-3"
    closed = current(small_site)[(victim, "apheresis")][0]
    closure = _close(client, "apheresis_machine", closed, reason="cleanroom requalification")
    replanned = post(client, f"/capacity/changes/{closure['id']}/replan", role="lab_manager")
    assert replanned.status_code == 200, replanned.text
    events = client.get(f"/patients/{victim}/timeline", headers=auth(client, "coordinator")).json()["events"]
    moved = events[-1]
    assert moved["kind"] == "moved"
    cause = moved["details"]["cause"]
    assert f"closure {closure['id']}" in cause and "liverpool/apheresis_machine" in cause
    assert f"{closed:%a %d %b %Y}" in cause and "cleanroom requalification" in cause
    assert moved["details"]["plan_version"] == replanned.json()["plan_version"]
    apheresis = next(m for m in moved["details"]["moves"] if m["step"] == "apheresis")
    assert apheresis["from_first_day"] == closed.isoformat() and apheresis["to_first_day"] != closed.isoformat()
    after = current(small_site)
    assert after[(victim, "apheresis")][2].startswith(cause)  # fixed_by says the same, not "replan by"
    audit = client.get(f"/audit?entity=patient&entity_id={victim}", headers=auth(client, "admin")).json()
    assert audit[0]["action"] == "plan.moved" and audit[0]["after"]["cause"] == cause


def test_a_replan_asked_for_names_its_reason_and_the_nightly_run_its_why(client, small_site):
    later = (current(small_site)[("S-AXI-1", "apheresis")][0] + timedelta(days=7)).isoformat()
    edited = client.patch("/patients/S-AXI-1", json={"earliest_start": later}, headers=auth(client, "coordinator"))
    assert edited.json()["violations"]
    response = post(client, "/replan", {"patients": ["S-AXI-1"], "reason": "earliest start moved on"})
    assert response.status_code == 200, response.text
    moved = client.get("/patients/S-AXI-1/timeline", headers=auth(client, "coordinator")).json()["events"][-1]
    assert moved["kind"] == "moved"
    assert moved["details"]["cause"] == "re-plan asked for by test-coordinator: earliest start moved on"
    assert all(day(m["to_first_day"]) >= day(later) for m in moved["details"]["moves"])

    freeze_until = date(2027, 1, 7)
    victim, first = min(
        ((p, b[0]) for (p, s), b in current(small_site).items() if s == "apheresis" and b[0] > freeze_until),
        key=lambda x: x[1],
    )
    closure = _close(client, "apheresis_machine", first)
    run = run_nightly(small_site)
    report = client.get(f"/jobs/nightly/runs/{run}", headers=auth(client, "admin")).json()["report"]
    why = next(p for p in report["patients"] if p["patient"] == victim)["changes"][0]["why"]
    moved = client.get(f"/patients/{victim}/timeline", headers=auth(client, "coordinator")).json()["events"][-1]
    assert moved["kind"] == "moved" and moved["details"]["nightly_run"] == run
    assert moved["details"]["cause"] == why and f"closure {closure['id']}" in why


# -- confirmations -----------------------------------------------------------------------------------
def test_moves_since_the_latest_confirmation_are_what_a_patient_has_yet_to_hear(client, small_site):
    def still_to_tell(patients=None) -> dict:
        with _session(small_site) as session:
            return views.moved_since_confirmation(session, patients)

    assert still_to_tell() == {}
    victim = "S-INH-3"
    first = current(small_site)[(victim, "apheresis")][0]
    closure = _close(client, "apheresis_machine", first)
    assert post(client, f"/capacity/changes/{closure['id']}/replan", role="lab_manager").status_code == 200
    told = still_to_tell()
    assert list(told) == [victim] and [e["kind"] for e in told[victim]] == ["moved"]
    assert still_to_tell({"S-AXI-1"}) == {}

    response = post(client, f"/patients/{victim}/confirmations", {"note": "told by phone"})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["note"] == "told by phone" and answer["plan_version"]
    assert ("apheresis", current(small_site)[(victim, "apheresis")][0].isoformat()) in {
        (b["step"], b["first_day"]) for b in answer["bookings"]
    }
    assert still_to_tell() == {}
    audit = client.get(f"/audit?entity=patient&entity_id={victim}", headers=auth(client, "admin")).json()
    assert audit[0]["action"] == "patient.confirmation" and audit[0]["actor"] == "test-coordinator"

    moved_again = current(small_site)[(victim, "apheresis")][0]
    closure = _close(client, "apheresis_machine", moved_again)
    assert post(client, f"/capacity/changes/{closure['id']}/replan", role="lab_manager").status_code == 200
    assert len(still_to_tell()[victim]) == 1  # only the move since the confirmation

    # confirming a proposal is a confirmation too
    proposal = propose(client, victim)
    assert confirm(client, proposal["id"]).status_code == 200
    assert still_to_tell() == {}
    events = client.get(f"/patients/{victim}/timeline", headers=auth(client, "coordinator")).json()["events"]
    assert events[-1]["kind"] == "confirmation" and events[-1]["details"]["proposal"] == proposal["id"]


def test_dates_cannot_be_confirmed_before_there_are_any(client, small_site):
    refer(client, "N-NEW-1")
    response = post(client, "/patients/N-NEW-1/confirmations", {})
    assert response.status_code == 409 and "no booked dates" in response.json()["detail"]
    bad = post(client, "/patients/S-AXI-1/confirmations", {"note": "x" * 501})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "body.note"


# -- planning days ------------------------------------------------------------------------------------
def test_plan_versions_and_capacity_changes_record_the_planning_day_they_were_made_on(small_site, tokens):
    with on_day(small_site, tokens, date(2027, 1, 11)) as client:
        refer(client, "N-DAY-1", approval="2027-01-11")
        confirmed = _confirmed(client, propose(client, "N-DAY-1")["id"])
        change = _close(client, "apheresis_machine", date(2027, 3, 1))
        version = client.get(f"/plans/{confirmed['plan_version']}", headers=auth(client, "coordinator")).json()
    with on_day(small_site, tokens, date(2027, 1, 12)) as client:
        response = client.delete(f"/capacity/changes/{change['id']}", headers=auth(client, "lab_manager"))
        assert response.status_code == 200, response.text
    with _session(small_site) as session:
        row = session.get(CapacityChangeRow, change["id"])
        days = session.scalars(select(PlanVersion.planning_day).order_by(PlanVersion.id)).all()
    assert version["planning_day"] == "2027-01-11"
    assert (row.created_on, row.withdrawn_on) == (date(2027, 1, 11), date(2027, 1, 12))
    assert days == [TODAY, TODAY, date(2027, 1, 11)]  # the empty start, the cohort, the confirmation
