"""A patient's calendar feed behind a revocable secret link, on a real database with the real solver.

What a coordinator and a patient's calendar app care about: after a booking moves (an alternative
that makes room for another patient, a re-plan around a closure), re-importing the calendar updates
the event instead of adding a second one; a withdrawal removes the events; a step booked again after
it was missed or done is an event of its own; an unchanged feed is the same bytes every time; a
revoked link opens nothing, and the secret is never written down anywhere but in the answer that
made it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import select

from api.app import create_app
from api.db import AuditEntry, BookingRow, StepRecord, make_engine, make_sessionmaker
from api.unit_of_work import Database
from tests.builders import assert_plan_valid, auth, confirm, propose, refer


@dataclass(frozen=True)
class Event:
    uid: str
    step: str
    first_day: date
    last_day: date
    sequence: int
    status: str
    stamp: str


def events(ics: bytes) -> dict[str, Event]:
    """The feed's events by UID (a UID appearing twice fails the test)."""
    found: dict[str, Event] = {}
    for vevent in Calendar.from_ical(ics).walk("VEVENT"):
        uid = str(vevent["UID"])
        assert uid not in found, f"UID {uid} twice in one feed"
        found[uid] = Event(
            uid=uid,
            step=str(vevent["SUMMARY"]).split(": ", 1)[1].replace(" ", "_"),
            first_day=vevent.decoded("DTSTART"),
            last_day=vevent.decoded("DTEND") - timedelta(days=1),
            sequence=int(vevent["SEQUENCE"]),
            status=str(vevent["STATUS"]),
            stamp=vevent["DTSTAMP"].to_ical().decode(),
        )
    return found


def reimport(diary: dict[str, Event], ics: bytes) -> dict[str, Event]:
    """What a calendar client keeps after importing ``ics`` over ``diary``: an event whose UID it
    knows replaces its copy when its SEQUENCE is higher, a cancelled one removes it, any other is added."""
    kept = dict(diary)
    for uid, event in events(ics).items():
        if uid in kept and event.sequence <= kept[uid].sequence:
            continue
        if event.status == "CANCELLED":
            kept.pop(uid, None)
        else:
            kept[uid] = event
    return kept


def new_link(client, patient_id: str) -> str:
    """A new link to the patient's feed; returns the feed's path (with its secret)."""
    response = client.post(f"/patients/{patient_id}/calendar-links", headers=auth(client, "coordinator"))
    assert response.status_code == 201, response.text
    return response.json()["feed"]


def fetch(client, feed: str) -> bytes:
    """The feed as a calendar client gets it: no sign-in."""
    response = client.get(feed)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    assert response.headers["cache-control"] == "no-store"
    return response.content


def booked(client, patient_id: str) -> dict[str, tuple[date, date]]:
    timeline = client.get(f"/patients/{patient_id}/timeline", headers=auth(client, "coordinator")).json()
    return {
        s["step"]: (date.fromisoformat(s["first_day"]), date.fromisoformat(s["last_day"]))
        for s in timeline["steps"]
        if s["first_day"]
    }


def by_step(feed_events: dict[str, Event]) -> dict[str, Event]:
    steps = [e.step for e in feed_events.values()]
    assert len(steps) == len(set(steps)), steps
    return {e.step: e for e in feed_events.values()}


def assert_moved_in_place(before: bytes, after: bytes, moved: set[str], now_booked: dict[str, tuple[date, date]]):
    """The same events (UIDs) before and after; each moved step's SEQUENCE one higher, at its new days;
    every other step's event unchanged; a client re-importing the feed keeps one event per step."""
    old, new = events(before), events(after)
    assert set(new) == set(old)
    for uid, event in new.items():
        if event.step in moved:
            assert event.sequence == old[uid].sequence + 1, event
            assert (
                (event.first_day, event.last_day) == now_booked[event.step] != (old[uid].first_day, old[uid].last_day)
            )
        else:
            assert event == old[uid]
    diary = reimport(reimport({}, before), after)
    assert {e.step: (e.first_day, e.last_day) for e in diary.values()} == now_booked
    assert len(diary) == len(now_booked)


def test_a_move_to_make_room_keeps_each_events_uid_and_raises_its_sequence(client, small_site):
    refer(client, "N-URGENT", pathway="in-house-car-t", urgency="urgent")
    proposal = propose(client, "N-URGENT")
    chosen = proposal["options"][1]
    patient = chosen["moves"][0]["patient"]
    moved = {m["step"] for m in chosen["moves"] if m["patient"] == patient}
    feed = new_link(client, patient)
    before = fetch(client, feed)
    assert {e.status for e in events(before).values()} == {"CONFIRMED"}

    assert confirm(client, proposal["id"], chosen["rank"]).status_code == 200
    after = fetch(client, feed)
    assert_moved_in_place(before, after, moved, booked(client, patient))
    assert {by_step(events(after))[step].status for step in moved} == {"TENTATIVE"}  # to be confirmed again
    assert b"N-URGENT" not in after  # the feed never says for whom a patient was moved
    assert_plan_valid(small_site)


def test_a_replan_around_a_closure_keeps_each_events_uid_and_raises_its_sequence(client, small_site):
    current = client.get("/plans/current", headers=auth(client, "lab_manager")).json()
    closed_day, victim = min((b["first_day"], b["patient"]) for b in current["bookings"] if b["step"] == "apheresis")
    feed = new_link(client, victim)
    before = fetch(client, feed)
    change = {
        "resource": "apheresis_machine",
        "centre": "liverpool",
        "first_day": closed_day,
        "last_day": closed_day,
        "capacity": 0,
        "reason": "machine service",
    }
    added = client.post("/capacity/changes", json=change, headers=auth(client, "lab_manager"))
    assert added.status_code == 201, added.text
    replan = client.post(f"/capacity/changes/{added.json()['id']}/replan", headers=auth(client, "lab_manager"))
    assert replan.status_code == 200, replan.text
    changes = next(p["changes"] for p in replan.json()["diff"]["patients"] if p["patient"] == victim)
    assert {c["change"] for c in changes} == {"moved"}

    after = fetch(client, feed)
    assert_moved_in_place(before, after, {c["step"] for c in changes}, booked(client, victim))
    assert fetch(client, feed) == after
    assert_plan_valid(small_site)


def test_a_withdrawal_cancels_every_event_and_the_feed_keeps_answering(client, small_site):
    feed = new_link(client, "S-INH-1")
    before = fetch(client, feed)
    diary = reimport({}, before)
    assert len(diary) == len(booked(client, "S-INH-1")) > 0

    response = client.post(
        "/patients/S-INH-1/withdraw", json={"reason": "patient choice"}, headers=auth(client, "coordinator")
    )
    assert response.status_code == 200, response.text
    version = client.get(f"/plans/{response.json()['plan_version']}", headers=auth(client, "coordinator")).json()
    withdrawn_at = datetime.fromisoformat(version["created_at"]).replace(tzinfo=None)
    after = fetch(client, feed)
    old, new = events(before), events(after)
    assert set(new) == set(old)
    for uid, event in new.items():
        assert event.status == "CANCELLED" and event.sequence == old[uid].sequence + 1
        assert (event.first_day, event.last_day) == (old[uid].first_day, old[uid].last_day)
        assert event.stamp == f"{withdrawn_at:%Y%m%dT%H%M%SZ}"  # the moment of the withdrawal's plan version
    assert reimport(diary, after) == {}
    assert fetch(client, feed) == after


def _record(settings, patient_id: str, step: str, outcome: str) -> None:
    """A step record on the patient's current booking of ``step``, stored as the step-record routes
    (issue 11, built alongside) store one."""
    engine = make_engine(settings.database_url)
    try:
        with Database(make_sessionmaker(engine)).write() as work:
            current = select(BookingRow).where(
                BookingRow.patient_id == patient_id, BookingRow.step == step, BookingRow.to_version.is_(None)
            )
            row = work.session.scalars(current).one()
            done = outcome == "done"
            work.session.add(
                StepRecord(
                    patient_id=patient_id,
                    step=step,
                    booking_id=row.id,
                    outcome=outcome,
                    first_day=row.first_day if done else None,
                    last_day=row.last_day if done else None,
                    reason="" if done else "patient unwell on the day",
                    recorded_on=settings.planning_day(),
                    recorded_by="test-coordinator",
                )
            )
    finally:
        engine.dispose()


def _defer_and_rebook(client, patient_id: str) -> None:
    response = client.post(
        f"/patients/{patient_id}/defer",
        json={"from_date": "2027-03-01", "reason": "infection"},
        headers=auth(client, "coordinator"),
    )
    assert response.status_code == 200, response.text
    assert confirm(client, response.json()["proposal"]["id"]).status_code == 200


def test_a_step_booked_again_after_it_was_cancelled_is_a_new_event(client, small_site):
    cancelled_feed, deferred_feed = new_link(client, "S-AXI-1"), new_link(client, "S-AXI-2")
    cancelled_before, deferred_before = fetch(client, cancelled_feed), fetch(client, deferred_feed)

    # S-AXI-1's apheresis is recorded as cancelled, then both patients are deferred and booked again
    _record(small_site, "S-AXI-1", "apheresis", "cancelled")
    cancelled_now = by_step(events(fetch(client, cancelled_feed)))["apheresis"]
    was = by_step(events(cancelled_before))["apheresis"]
    assert (cancelled_now.uid, cancelled_now.status, cancelled_now.sequence) == (was.uid, "CANCELLED", was.sequence + 1)
    _defer_and_rebook(client, "S-AXI-1")
    _defer_and_rebook(client, "S-AXI-2")

    # a deferral alone moves the events: the same UIDs, out of the plan (+1) and booked again (+1)
    old, new = events(deferred_before), events(fetch(client, deferred_feed))
    assert set(new) == set(old)
    assert all(new[uid].sequence == old[uid].sequence + 2 and new[uid].status == "CONFIRMED" for uid in new)

    # the apheresis booked again after the cancelled one is an event of its own; the rest moved in place
    old, after = events(cancelled_before), fetch(client, cancelled_feed)
    new = events(after)
    fresh = set(new) - set(old)
    assert [new[uid].step for uid in fresh] == ["apheresis"] and new[fresh.pop()].sequence == 0
    assert new[cancelled_now.uid].status == "CANCELLED"
    assert {new[uid].step for uid in old} == {e.step for e in old.values()}
    diary = reimport(reimport({}, cancelled_before), after)
    assert {e.step: (e.first_day, e.last_day) for e in diary.values()} == booked(client, "S-AXI-1")
    assert_plan_valid(small_site)


def test_re_apheresis_after_a_collection_that_took_place_is_a_new_event(small_site, tokens):
    later = small_site.model_copy(update={"today": date(2027, 2, 22)})  # S-AXI-2's product is back by now
    with TestClient(create_app(later)) as client:
        client.tokens = tokens
        feed = new_link(client, "S-AXI-2")
        _record(later, "S-AXI-2", "apheresis", "done")
        before = events(fetch(client, feed))
        collected = by_step(before)["apheresis"]
        response = client.post(
            "/patients/S-AXI-2/out-of-specification",
            json={"redo": "re-apheresis", "reason": "viability below specification"},
            headers=auth(client, "coordinator"),
        )
        assert response.status_code == 200, response.text
        assert confirm(client, response.json()["proposal"]["id"]).status_code == 200
        after = events(fetch(client, feed))
        # the collection that took place stays as it was; the new one is another event
        assert after[collected.uid] == collected
        again = [e for e in after.values() if e.step == "apheresis" and e.uid != collected.uid]
        assert len(again) == 1 and again[0].first_day >= later.today and again[0].sequence == 0
        # the infusion booked for 8 Feb had taken place by its day, so it stays; the new one is another event
        infusion = by_step(before)["infusion"]
        assert infusion.first_day < later.today and after[infusion.uid] == infusion
        new = [e for e in after.values() if e.step == "infusion" and e.uid != infusion.uid]
        assert len(new) == 1 and new[0].first_day > later.today
    assert_plan_valid(later)


def test_link_lifecycle_no_sign_in_revocation_and_the_secret_written_nowhere(client, small_site, caplog):
    with caplog.at_level(logging.DEBUG):
        made = client.post("/patients/S-ASCT-1/calendar-links", headers=auth(client, "coordinator"))
        assert made.status_code == 201, made.text
        link = made.json()
        feed = link["feed"]
        secret = feed.removeprefix("/calendar/").removesuffix(".ics")
        assert len(secret) >= 43 and link["revoked_at"] is None and link["patient"] == "S-ASCT-1"

        # no sign-in needed; the same bytes each time nothing changed, whatever happens to others
        first = fetch(client, feed)
        new_link(client, "S-AXI-1")
        assert fetch(client, feed) == first
        assert {e.step for e in events(first).values()} == set(booked(client, "S-ASCT-1"))
        assert Calendar.from_ical(first)["X-PUBLISHED-TTL"] == "PT1H"  # a subscribed app fetches it hourly
        assert client.get("/patients/S-ASCT-1/calendar.ics", headers=auth(client, "lab_manager")).content == first

        listed = client.get("/patients/S-ASCT-1/calendar-links", headers=auth(client, "coordinator"))
        assert listed.status_code == 200
        assert [(x["id"], x["revoked_at"]) for x in listed.json()] == [(link["id"], None)]
        assert secret not in listed.text

        revoked = client.delete(f"/patients/S-ASCT-1/calendar-links/{link['id']}", headers=auth(client, "coordinator"))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        gone = client.get(feed)
        unknown = client.get(f"/calendar/{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}.ics")
        assert gone.status_code == unknown.status_code == 404
        assert gone.json() == unknown.json() and "revoked" in gone.json()["detail"]
        again = client.delete(f"/patients/S-ASCT-1/calendar-links/{link['id']}", headers=auth(client, "coordinator"))
        assert again.status_code == 409
        listed = client.get("/patients/S-ASCT-1/calendar-links", headers=auth(client, "coordinator")).json()
        assert [(x["id"], x["revoked_at"] is not None) for x in listed] == [(link["id"], True)]

    # every creation and the revocation are audited, without the secret
    with client.app.state.runtime.database.read() as work:
        rows = work.session.scalars(select(AuditEntry).where(AuditEntry.entity == "calendar_link")).all()
        audited = [(r.action, r.entity_id, r.actor) for r in rows]
        text = json.dumps([[r.before, r.after] for r in rows])
    assert ("calendar_link.create", str(link["id"]), "test-coordinator") in audited
    assert ("calendar_link.revoke", str(link["id"]), "test-coordinator") in audited
    assert secret not in text
    # the server's logs name the route, never the secret (httpx's are the test client's own: a calendar app's)
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    lines = [r.getMessage() for r in server]
    assert any(line.startswith("GET /calendar/{secret}.ics 200 ") for line in lines), lines
    assert any(line.startswith("GET /calendar/{secret}.ics 404 ") for line in lines), lines
    assert not any(secret in line for line in lines)


def test_only_coordinators_manage_links_and_a_link_belongs_to_its_patient(client, small_site):
    lab = auth(client, "lab_manager")
    assert client.post("/patients/S-AXI-1/calendar-links", headers=lab).status_code == 403
    assert client.get("/patients/S-AXI-1/calendar-links", headers=lab).status_code == 403
    assert client.post("/patients/S-AXI-1/calendar-links").status_code == 401
    assert client.post("/patients/NOPE-1/calendar-links", headers=auth(client, "coordinator")).status_code == 404
    link = client.post("/patients/S-AXI-1/calendar-links", headers=auth(client, "admin")).json()
    other = client.delete(f"/patients/S-AXI-2/calendar-links/{link['id']}", headers=auth(client, "coordinator"))
    assert other.status_code == 404
    assert client.get(link["feed"]).status_code == 200  # still open: the wrong patient's revocation did nothing
    bad = client.delete("/patients/S-AXI-1/calendar-links/0", headers=auth(client, "coordinator"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "path.link_id"
    assert client.get("/patients/S-AXI-2/calendar-links", headers=auth(client, "coordinator")).json() == []
