"""The nightly re-solve on a real database (SQLite and PostgreSQL): what moves, what stays, why.

Each run is carried out here and now (``run_nightly``: claim, read, solve, publish),
or through the admin's HTTP routes; after every run the whole current plan goes
through the independent rule checker.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from api import ledger, nightly, state
from api.app import create_app
from api.db import BookingRow, EventRow, JobRun, PlanHead, make_engine, make_sessionmaker
from tests.builders import TODAY, assert_plan_valid, auth, confirm, propose, refer, run_nightly


def _bookings(settings) -> dict[tuple[str, str], tuple[date, date, str]]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return {(b.patient_id, b.step): (b.first_day, b.last_day, b.status) for b in state.current_rows(session)}
    finally:
        engine.dispose()


def _run(settings, run_id: int) -> JobRun:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            run = session.get(JobRun, run_id)
            session.expunge(run)
            return run
    finally:
        engine.dispose()


def _wait_for(client, run_id: int, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = client.get(f"/jobs/nightly/runs/{run_id}", headers=auth(client, "admin")).json()
        if body["run"]["status"] != "running":
            return body
        time.sleep(0.1)
    raise AssertionError(f"nightly run {run_id} still running after {seconds} s")


def _plan_changes(settings) -> int:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return session.get(PlanHead, 1).changes
    finally:
        engine.dispose()


def test_two_runs_in_a_row_on_unchanged_data_move_nothing(client, small_site):
    before = _bookings(small_site)
    counter = _plan_changes(small_site)
    first = _run(small_site, run_nightly(small_site))
    second = _run(small_site, run_nightly(small_site, TODAY + timedelta(days=1)))
    assert (first.status, second.status) == ("kept", "kept")
    assert first.stats["bookings_moved"] == second.stats["bookings_moved"] == 0
    assert second.report["summary"].startswith(f"nothing changed since run {first.id}")
    assert _bookings(small_site) == before  # not a booking, not a status changed
    assert client.get("/plans/current", headers=auth(client, "admin")).json()["id"] == 2  # no new plan version
    # keeping the plan is no plan write: a re-plan solving meanwhile need not start again
    assert _plan_changes(small_site) == counter
    assert_plan_valid(small_site)


def test_the_next_night_with_nothing_new_solves_again_and_moves_nothing(client, small_site):
    """The day moves on, so the fingerprint differs and the solver runs: it still moves nothing,
    drops nothing and adds nothing."""
    before = _bookings(small_site)
    counter = _plan_changes(small_site)
    first = _run(small_site, run_nightly(small_site))
    tomorrow = small_site.model_copy(update={"today": TODAY + timedelta(days=1)})
    second = _run(tomorrow, run_nightly(tomorrow, TODAY + timedelta(days=1)))
    assert not second.stats.get("skipped_solve") and second.stats["status"] == "OPTIMAL"
    for run in (first, second):
        assert run.status == "kept", run.report
        assert (run.stats["bookings_moved"], run.stats["bookings_removed"]) == (0, 0)
    assert _bookings(tomorrow) == before
    assert _plan_changes(tomorrow) == counter
    assert_plan_valid(tomorrow)


def test_an_admin_runs_it_now_and_sees_history_and_report(client, small_site):
    admin = auth(client, "admin")
    assert client.get("/jobs/nightly/report", headers=admin).status_code == 404  # no run yet: said plainly
    refer(client, "N-NIGHT-1", approval="2027-01-11")  # a referral nobody has proposed for yet
    started = client.post("/jobs/nightly/runs", headers=admin)
    assert started.status_code == 202, started.text
    assert started.json()["trigger"] == "manual" and started.json()["night"] is None
    body = _wait_for(client, started.json()["id"])
    run, report = body["run"], body["report"]
    assert run["status"] == "published", run
    assert run["finished_at"] and run["plan_version"] and run["stats"]["status"] in ("OPTIMAL", "FEASIBLE")
    new = next(p for p in report["patients"] if p["patient"] == "N-NIGHT-1")
    assert {c["change"] for c in new["changes"]} == {"added"}
    assert all(c["why"] == new["changes"][0]["why"] and "new referral" in c["why"] for c in new["changes"])
    assert client.get("/patients/N-NIGHT-1", headers=admin).json()["status"] == "scheduled"

    history = client.get("/jobs/nightly/runs", headers=admin).json()
    assert [r["id"] for r in history["runs"]] == [run["id"]]
    assert history["runs"][0]["bookings_moved"] == run["bookings_moved"]
    coordinator_view = client.get("/jobs/nightly/report", headers=auth(client, "coordinator")).json()
    assert coordinator_view["run"]["id"] == run["id"] and coordinator_view["report"] == report
    assert client.get("/jobs/nightly/runs", headers=auth(client, "coordinator")).status_code == 403
    audit = client.get("/audit", params={"entity": "job_run"}, headers=admin).json()
    assert audit[0]["action"] == "nightly.run_now" and audit[0]["actor"] == "test-admin"
    assert_plan_valid(small_site)


def test_a_second_run_now_while_one_is_running_is_refused(client, small_site):
    engine = make_engine(small_site.database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            busy = ledger.start_manual(session, nightly.JOB, TODAY)  # claimed by this (live) process
        response = client.post("/jobs/nightly/runs", headers=auth(client, "admin"))
        assert response.status_code == 409 and f"nightly run {busy.id} is in progress" in response.json()["detail"]
    finally:
        engine.dispose()


def test_a_closure_moves_only_what_it_breaks_and_the_report_names_it(client, small_site):
    before = _bookings(small_site)
    freeze_until = date(2027, 1, 7)  # 3 working days after Mon 4 Jan 2027
    victim = min(
        ((p, b) for (p, s), b in before.items() if s == "apheresis" and b[0] > freeze_until), key=lambda x: x[1][0]
    )
    closure = {
        "resource": "apheresis_machine",
        "centre": "liverpool",
        "first_day": victim[1][0].isoformat(),
        "last_day": victim[1][0].isoformat(),
        "capacity": 0,
        "reason": "machine service",
    }
    made = client.post("/capacity/changes", json=closure, headers=auth(client, "lab_manager"))
    assert made.status_code == 201 and victim[0] in {b["patient"] for b in made.json()["broken"]}

    run = _run(small_site, run_nightly(small_site))
    assert run.status == "published", run.report
    after = _bookings(small_site)
    assert after[(victim[0], "apheresis")][0] != victim[1][0]
    moved = {p for (p, s), b in before.items() if after.get((p, s), (None, None))[:2] != b[:2]}
    assert victim[0] in moved
    # the freeze window holds: nothing that starts by Thu 7 Jan moved, for anyone
    assert all(after[key][:2] == b[:2] for key, b in before.items() if b[0] <= freeze_until)
    entry = next(p for p in run.report["patients"] if p["patient"] == victim[0])
    assert all(f"closure {made.json()['id']}" in c["why"] and "CAPACITY" in c["why"] for c in entry["changes"]), [
        c["why"] for c in entry["changes"]
    ]
    changes = [c["change"] for p in run.report["patients"] for c in p["changes"]]
    assert run.stats["bookings_moved"] == run.report["bookings_moved"] == changes.count("moved")
    assert run.stats["bookings_removed"] == changes.count("removed")
    events = client.get(f"/patients/{victim[0]}/timeline", headers=auth(client, "coordinator")).json()["events"]
    assert events[-1]["kind"] == "moved" and events[-1]["details"]["nightly_run"] == run.id
    assert_plan_valid(small_site)


def test_a_patient_who_became_unschedulable_is_listed_first_with_the_reason(client, small_site):
    patient = "S-INH-2"
    late = (TODAY + timedelta(days=199)).isoformat()  # the pathway no longer fits the 200-day horizon
    edited = client.patch(f"/patients/{patient}", json={"earliest_start": late}, headers=auth(client, "coordinator"))
    assert edited.status_code == 200 and edited.json()["violations"]
    run = _run(small_site, run_nightly(small_site))
    assert run.status == "published"
    assert [u["patient"] for u in run.report["unschedulable"]] == [patient]
    assert run.report["unschedulable"][0]["reason"]
    assert run.report["patients"][0]["patient"] == patient
    assert {c["change"] for c in run.report["patients"][0]["changes"]} == {"removed"}
    assert client.get(f"/patients/{patient}", headers=auth(client, "coordinator")).json()["status"] == "unschedulable"
    assert_plan_valid(small_site)


def test_a_new_referral_that_cannot_be_placed_is_reported_unschedulable(client, small_site):
    """No booking changes at all, yet the run publishes: who is unschedulable changed."""
    refer(client, "N-NOROOM-1", earliest_start=(TODAY + timedelta(days=199)).isoformat())
    run = _run(small_site, run_nightly(small_site))
    assert run.status == "published" and run.stats["bookings_moved"] == 0
    assert [u["patient"] for u in run.report["unschedulable"]] == ["N-NOROOM-1"]
    assert client.get("/patients/N-NOROOM-1", headers=auth(client, "coordinator")).json()["status"] == "unschedulable"


def test_a_confirmation_that_lands_during_the_solve_is_not_lost(client, small_site):
    refer(client, "N-DURING-1", approval="2027-01-11")
    refer(client, "N-DURING-2", approval="2027-01-11")
    landed = []

    def confirm_now(attempt: int) -> None:
        if attempt == 1:  # the solve has read the plan; a coordinator confirms before it publishes
            proposal = propose(client, "N-DURING-1")
            assert confirm(client, proposal["id"]).status_code == 200
            landed.extend(b for b in proposal["options"][0]["bookings"])

    run = _run(small_site, run_nightly(small_site, after_solve=confirm_now))
    assert run.status == "published" and run.stats["attempts"] == 2
    after = _bookings(small_site)
    for b in landed:  # every confirmed booking is current, where the coordinator put it, still confirmed
        assert after[("N-DURING-1", b["step"])] == (
            date.fromisoformat(b["first_day"]),
            date.fromisoformat(b["last_day"]),
            "confirmed",
        )
    assert any(p == "N-DURING-2" for p, _ in after)  # and the run still planned the other referral
    assert_plan_valid(small_site)


def test_collected_products_are_held_and_the_run_leaves_them_where_they_are(small_site, tokens):
    """Three weeks on, some cells are collected: the product steps still ahead (manufacture,
    processing, release) are fixed; patients not collected yet keep only what has started."""
    later = small_site.model_copy(update={"today": TODAY + timedelta(days=21)})
    engine = make_engine(later.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            problem = state.build_problem(session, later.today, later.horizon_days, hold_products=True)
            loose = state.build_problem(session, later.today, later.horizon_days)
            catalogue = state.catalogue(session)
            rows = state.current_rows(session)
    finally:
        engine.dispose()

    def kind(b: BookingRow) -> str:
        return catalogue.template(problem.patient(b.patient_id).pathway).step(b.step).kind.value

    collected = {
        b.patient_id for b in rows if kind(b) in ("apheresis", "donor_collection") and b.first_day < later.today
    }
    product_ahead = {
        (b.patient_id, b.step)
        for b in rows
        if b.patient_id in collected and kind(b) in PRODUCT and b.first_day >= later.today
    }
    assert product_ahead, "the fixture must have a collected product whose manufacture or release is still ahead"
    for patient in problem.patients:
        frozen = {f.step for f in patient.frozen}
        started = {f.step for f in loose.patient(patient.id).frozen}
        ahead = {step for pid, step in product_ahead if pid == patient.id}
        assert frozen == started | ahead, patient.id

    with TestClient(create_app(later)) as client:
        client.tokens = tokens
        before = _bookings(later)
        refer(client, "N-LATER-1", approval=later.today.isoformat())  # something to plan, so the run solves
        run = _run(later, run_nightly(later))
        after = _bookings(later)
    assert run.status == "published" and run.stats["attempts"] == 1
    for key in product_ahead:
        assert after[key] == before[key]
    assert_plan_valid(later)


PRODUCT = ("processing", "manufacture", "release")


def test_an_interrupted_run_is_marked_failed_at_start_up_and_its_night_runs_again(small_site):
    host = socket.gethostname()
    engine = make_engine(small_site.database_url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session, session.begin():
            dead = ledger.claim(session, nightly.JOB, TODAY - timedelta(days=1))
            dead.claimed_by = f"{host}:{2**22 + 12345}:0badf00d"  # no such process
            restarted = ledger.claim(session, nightly.JOB, TODAY - timedelta(days=2))
            restarted.claimed_by = (
                f"{host}:{os.getpid()}:0badf00d"  # our pid, an earlier incarnation (a restarted container)
            )
            alive = ledger.claim(session, nightly.JOB, TODAY - timedelta(days=3))  # this very process: still running
            dead_id, restarted_id, alive_id = dead.id, restarted.id, alive.id
        with sessions() as session, session.begin():
            assert sorted(nightly.recover(session, small_site)) == [dead_id, restarted_id]
            assert session.get(JobRun, alive_id).status == "running"
        with sessions() as session:
            run = session.get(JobRun, dead_id)
            assert run.status == "failed" and "interrupted" in run.report["summary"] and run.plan_version_id is None
            assert session.scalars(select(EventRow).where(EventRow.kind == "moved")).first() is None
            assert session.scalars(select(BookingRow.id).where(BookingRow.from_version > 2)).first() is None
    finally:
        engine.dispose()
    again = _run(
        small_site, run_nightly(small_site, TODAY - timedelta(days=1))
    )  # the interrupted night is claimed again
    assert again.id == dead_id and again.status == "kept" and again.claimed_by == ledger.claimer()
