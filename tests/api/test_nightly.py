"""The nightly re-solve on a real database (SQLite and PostgreSQL): what moves, what stays, why.

Each run is carried out here and now (``run_nightly``: claim, read, solve, publish),
or through the admin's HTTP routes; after every run the whole current plan goes
through the independent rule checker.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from api import ledger, nightly, state
from api.app import create_app
from api.db import BookingRow, EventRow, JobRun, PlanHead, PlanVersion, make_engine, make_sessionmaker
from tests.builders import TODAY, assert_plan_valid, auth, confirm, ledger_runs, propose, refer, run_nightly


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


def _claim_as(sessions, night: date | None, claimed_by: str, started_s_ago: float = 0) -> int:
    """A run in the ledger as another process would have left it (``night`` None: an admin's run)."""
    with sessions() as session, session.begin():
        run = ledger.claim(session, nightly.JOB, night) if night else ledger.start_manual(session, nightly.JOB, TODAY)
        run.claimed_by = claimed_by
        run.started_at = run.started_at - timedelta(seconds=started_s_ago)
        return run.id


DEAD = f"{socket.gethostname()}:{2**22 + 12345}:0badf00d"  # this host, no such process
RESTARTED = f"{socket.gethostname()}:{os.getpid()}:0badf00d"  # our pid, an earlier incarnation (a restarted container)


def test_a_run_is_marked_failed_once_its_process_has_ended_and_only_then(small_site):
    engine = make_engine(small_site.database_url)
    try:
        sessions = make_sessionmaker(engine)
        for days, claimed_by, ended in [(3, ledger.claimer(), False), (2, RESTARTED, True), (1, DEAD, True)]:
            run_id = _claim_as(sessions, TODAY - timedelta(days=days), claimed_by)
            with sessions() as session, session.begin():
                assert nightly.recover(session, small_site) == ([run_id] if ended else [])
                run = session.get(JobRun, run_id)
                if not ended:  # this very process: still running; closed here so the next may start
                    assert run.status == "running"
                    ledger.finish(session, run, "kept", {}, {"summary": "done"}, None)
                    continue
                assert run.status == "failed" and "interrupted" in run.report["summary"] and run.plan_version_id is None
        with sessions() as session:
            assert session.scalars(select(EventRow).where(EventRow.kind == "moved")).first() is None
            assert session.scalars(select(BookingRow.id).where(BookingRow.from_version > 2)).first() is None
    finally:
        engine.dispose()


def test_an_interrupted_night_stays_failed_in_the_history_and_its_reruns_are_new_linked_rows(client, small_site):
    """Interrupted twice, then run to the end: three rows for the night, each re-run linked to the
    attempt it repeats; none overwritten."""
    night = TODAY - timedelta(days=1)
    engine = make_engine(small_site.database_url)
    try:
        sessions = make_sessionmaker(engine)
        first = _claim_as(sessions, night, DEAD)
        second = run_nightly(small_site, night)  # marks the first failed, claims the night again
        assert second != first
        with sessions() as session, session.begin():  # the second dies too, as if killed mid-solve
            run = session.get(JobRun, second)
            run.status, run.finished_at, run.claimed_by = "running", None, DEAD
        third = run_nightly(small_site, night)
        with sessions() as session, session.begin():
            assert ledger.claim(session, nightly.JOB, night) is None  # the night is done now
            assert nightly.missed_night(session, ledger.night_trigger(), _at_night_end(night)) is None
    finally:
        engine.dispose()
    history = client.get("/jobs/nightly/runs", headers=auth(client, "admin")).json()["runs"]
    assert [(r["id"], r["night"], r["status"], r["retry_of"]) for r in history] == [
        (third, night.isoformat(), "kept", second),
        (second, night.isoformat(), "failed", first),
        (first, night.isoformat(), "failed", None),
    ]
    assert all("interrupted" in r["summary"] for r in history[1:])
    one = client.get(f"/jobs/nightly/runs/{second}", headers=auth(client, "admin")).json()
    assert one["run"]["retry_of"] == first and one["report"]["interrupted"] is True


def _at_night_end(night: date) -> datetime:
    return datetime(night.year, night.month, night.day, 23, 0, tzinfo=UTC)


# -- one run at a time --------------------------------------------------------------------------
RACERS = 10


def test_admins_racing_to_start_a_run_get_one_202_and_409s_naming_the_run_in_progress(small_site, tokens):
    """Ten admins, each on an app of its own (its own engine and pool), post at the same moment.
    Each app's run executor is kept busy until every answer is in, so the winner's run is surely
    still in progress for the last request however fast it would have finished."""
    versions_before = _versions(small_site)
    barrier = threading.Barrier(RACERS)
    answers: list = [None] * RACERS
    all_answered = threading.Event()
    with ExitStack() as stack:
        clients = [
            stack.enter_context(TestClient(create_app(small_site), raise_server_exceptions=False))
            for _ in range(RACERS)
        ]
        stack.callback(all_answered.set)  # on the way out, before any app stops (and if the test fails)
        for c in clients:
            c.app.state.runtime.nightly.manual.submit(all_answered.wait)

        def race(i: int) -> None:
            barrier.wait()
            answers[i] = clients[i].post("/jobs/nightly/runs", headers={"Authorization": f"Bearer {tokens['admin']}"})

        threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        [(running, status)] = [(r.id, r.status) for r in ledger_runs(small_site)]
        assert status == "running"
    # all answered, and leaving the clients stopped their apps: the winner's run has finished
    assert sorted(a.status_code for a in answers) == [202] + [409] * (RACERS - 1), [a.text for a in answers]
    won = next(a.json() for a in answers if a.status_code == 202)
    started = won["started_at"][:19].replace("T", " ")
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["detail"] == (
                f"nightly run {won['id']} is in progress (started {started} UTC); wait for it to finish"
            )
    [run] = ledger_runs(small_site)
    assert run.id == won["id"] == running and run.status in ("published", "kept"), run.report
    assert len(_versions(small_site)) <= len(versions_before) + 1
    assert_plan_valid(small_site)


def test_a_run_whose_process_ended_blocks_no_new_run(client, small_site):
    """Dead on this host: freed at once. On another host: it may be running until it is older than
    the longest a run can take, and then it is freed."""
    admin = auth(client, "admin")
    engine = make_engine(small_site.database_url)
    try:
        sessions = make_sessionmaker(engine)
        dead = _claim_as(sessions, None, DEAD)
        started = client.post("/jobs/nightly/runs", headers=admin)
        assert started.status_code == 202, started.text
        _wait_for(client, started.json()["id"])

        elsewhere = _claim_as(sessions, None, "another-host:4242:cafe0001")
        refused = client.post("/jobs/nightly/runs", headers=admin)
        assert refused.status_code == 409 and f"nightly run {elsewhere} is in progress" in refused.json()["detail"]
        with sessions() as session, session.begin():
            run = session.get(JobRun, elsewhere)
            run.started_at = run.started_at - timedelta(seconds=nightly.longest_run_s(small_site) + 1)
        again = client.post("/jobs/nightly/runs", headers=admin)
        assert again.status_code == 202, again.text
        _wait_for(client, again.json()["id"])
    finally:
        engine.dispose()
    statuses = {r.id: (r.status, (r.report or {}).get("interrupted")) for r in ledger_runs(small_site)}
    assert statuses[dead] == statuses[elsewhere] == ("failed", True)


def test_a_night_that_finds_a_run_going_waits_for_it_then_runs(small_site):
    """The real scheduler at start-up: its catch-up night finds an admin's run going, so it is
    tried again a minute later (not dropped); once the admin's run is over, that try runs the night."""
    settings = small_site.model_copy(update={"nightly_enabled": True})
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    scheduler = nightly.NightlyScheduler(sessions, settings)
    try:
        busy = _claim_as(sessions, None, ledger.claimer())  # an admin's run in this (live) process
        night = scheduler.start()
        assert night is not None
        waiting = _poll(lambda: scheduler.scheduler.get_job(nightly.WAITING))
        assert waiting.args == (night, "catch-up")
        assert 30 < (waiting.next_run_time - datetime.now(UTC)).total_seconds() <= nightly.WAIT_S
        assert [r.id for r in ledger_runs(settings)] == [busy]  # the night is not claimed meanwhile
        with sessions() as session, session.begin():
            ledger.finish(session, session.get(JobRun, busy), "kept", {}, {"summary": "done"}, None)
        scheduler.scheduler.modify_job(nightly.WAITING, next_run_time=datetime.now(UTC))
        ran = _poll(lambda: [r for r in ledger_runs(settings) if r.night == night and r.status != "running"])
        assert [(r.trigger, r.status in ("kept", "published"), r.retry_of) for r in ran] == [("catch-up", True, None)]
    finally:
        scheduler.stop()
        engine.dispose()


def _poll(found, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not there after {seconds} s")


def _versions(settings) -> list[int]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(PlanVersion.id)))
    finally:
        engine.dispose()
