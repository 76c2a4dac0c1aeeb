"""Recording what actually happened, on a real database with the real solver: step records, products
and their chain of custody, the release gate, the chain of identity at the bedside, and the plan
following the facts (a late product, a step done on other days, a missed one, poor mobilisation).

Days move on by serving the same database with a later planning day (``at``)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.db import AuditEntry, make_engine, make_sessionmaker
from pathway.isbt import check_character
from tests.builders import assert_plan_valid, auth, confirm, propose, refer, run_nightly

DIN = "W000027000001"
OTHER_DIN = "W000027000002"
COI = "COI-0001-AXI"


def din_text(number: str) -> str:
    return number + check_character(number)


@pytest.fixture
def at(small_site, tokens):
    """A client of the same database on another planning day (closed at the end of the test)."""
    opened = []

    def serve(day: date) -> TestClient:
        client = TestClient(create_app(small_site.model_copy(update={"today": day})), raise_server_exceptions=False)
        client.__enter__()
        client.tokens = tokens
        opened.append(client)
        return client

    yield serve
    for client in opened:
        client.__exit__(None, None, None)


def booked(client, patient_id: str) -> dict[str, dict]:
    timeline = client.get(f"/patients/{patient_id}/timeline", headers=auth(client, "coordinator")).json()
    return {s["step"]: s for s in timeline["steps"]}


def day_of(step: dict, which: str = "first_day") -> date:
    return date.fromisoformat(step[which])


def scheduled(client, patient_id: str, pathway: str = "axi-cel", **extra) -> dict[str, dict]:
    refer(client, patient_id, pathway=pathway, **extra)
    response = confirm(client, propose(client, patient_id)["id"])
    assert response.status_code == 200, response.text
    return booked(client, patient_id)


def record(client, patient_id: str, step: str, role: str = "coordinator", **body):
    return client.post(f"/patients/{patient_id}/steps/{step}/records", json=body, headers=auth(client, role))


def custody(client, product_id: int, kind: str, day: date, **details):
    body = {"kind": kind, "day": day.isoformat(), **details}
    return client.post(f"/products/{product_id}/custody", json=body, headers=auth(client, "lab_manager"))


def new_product(client, patient_id: str, din: str = DIN, coi: str | None = COI) -> int:
    body = {"collection_step": "apheresis", "din": din_text(din), "product_code": "S1234", "bags": 2}
    if coi:
        body["chain_of_identity"] = coi
    response = client.post(f"/patients/{patient_id}/products", json=body, headers=auth(client, "coordinator"))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def collected_and_shipped(client, patient_id: str, steps: dict[str, dict]) -> int:
    collection = day_of(steps["apheresis"])
    assert record(client, patient_id, "apheresis", outcome="done").status_code == 201
    product = new_product(client, patient_id)
    assert custody(client, product, "collected", collection).status_code == 201
    assert custody(client, product, "shipped", collection, courier_reference="CR-1").status_code == 201
    assert custody(client, product, "received", collection).status_code == 201
    assert custody(client, product, "manufacture_started", collection).status_code == 201
    return product


def back_and_released(client, product: int, back: date) -> None:
    assert custody(client, product, "shipped_back", back - timedelta(days=1)).status_code == 201
    assert custody(client, product, "received_at_centre", back, storage_location="LN2 tank 2").status_code == 201
    released = custody(client, product, "released", back)
    assert released.status_code == 201, released.text


def statuses(client, patient_id: str) -> dict[str, str]:
    return {step: s["status"] for step, s in booked(client, patient_id).items()}


# -- statuses come from records -------------------------------------------------------------------
def test_a_passed_step_with_no_record_is_overdue_never_done(client, at):
    steps = scheduled(client, "N-AXI-1")
    collection = day_of(steps["apheresis"])
    assert statuses(at(collection), "N-AXI-1")["apheresis"] == "due"
    later = at(collection + timedelta(days=2))
    assert statuses(later, "N-AXI-1")["apheresis"] == "overdue"
    assert record(later, "N-AXI-1", "apheresis", outcome="done").status_code == 201
    assert statuses(later, "N-AXI-1")["apheresis"] == "done"
    worklist = later.get("/worklist", headers=auth(later, "coordinator")).json()
    assert "N-AXI-1" not in {i["patient"] for i in worklist["overdue"]}


def test_an_actual_day_in_the_future_is_refused_and_nothing_is_stored(client, at):
    steps = scheduled(client, "N-AXI-1")
    collection = day_of(steps["apheresis"])
    clinic = at(collection)
    response = record(
        clinic, "N-AXI-1", "apheresis", outcome="done", last_day=(collection + timedelta(days=1)).isoformat()
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "last_day" and "future" in response.json()["detail"][0]["problem"]
    assert statuses(clinic, "N-AXI-1")["apheresis"] == "due"


# -- the release gate -----------------------------------------------------------------------------
def test_conditioning_is_refused_until_the_product_is_released_at_the_centre(client, at):
    steps = scheduled(client, "N-AXI-1")
    clinic = at(day_of(steps["apheresis"]))
    product = collected_and_shipped(clinic, "N-AXI-1", steps)
    ward = at(day_of(steps["conditioning"]))
    refused = record(ward, "N-AXI-1", "conditioning", outcome="started")
    assert refused.status_code == 409
    assert refused.json()["field"] == "outcome" and "not released" in refused.json()["detail"]
    assert statuses(ward, "N-AXI-1")["conditioning"] == "due"
    at_risk = ward.get("/worklist", headers=auth(ward, "coordinator")).json()["at_risk"]
    mine = next(i for i in at_risk if i["patient"] == "N-AXI-1")
    assert mine["step"] == "conditioning" and "not released" in mine["why"]

    back_and_released(ward, product, day_of(steps["release"]))
    at_risk = ward.get("/worklist", headers=auth(ward, "coordinator")).json()["at_risk"]
    assert "N-AXI-1" not in {i["patient"] for i in at_risk}
    started = record(ward, "N-AXI-1", "conditioning", outcome="started")
    assert started.status_code == 201, started.text
    assert statuses(ward, "N-AXI-1")["conditioning"] == "in progress"
    assert booked(ward, "N-AXI-1")["release"]["status"] == "done"


# -- a late product -------------------------------------------------------------------------------
def test_a_late_product_replans_only_that_patient_with_the_delay_as_the_cause(client, at, small_site):
    steps = scheduled(client, "N-AXI-1")
    clinic = at(day_of(steps["apheresis"]))
    product = collected_and_shipped(clinic, "N-AXI-1", steps)
    others_before = {
        (b["patient"], b["step"], b["first_day"])
        for b in clinic.get("/plans/current", headers=auth(clinic, "coordinator")).json()["bookings"]
        if b["patient"] != "N-AXI-1"
    }
    later_by = 9
    expected = day_of(steps["release"]) + timedelta(days=later_by)
    response = custody(clinic, product, "expected_back", expected)
    assert response.status_code == 201, response.text
    assert response.json()["replan"]["patients"] == ["N-AXI-1"]
    after = booked(clinic, "N-AXI-1")
    assert day_of(after["release"]) >= expected
    assert day_of(after["conditioning"]) >= day_of(after["release"], "last_day") + timedelta(days=1)
    assert day_of(after["manufacture"], "last_day") == expected - timedelta(days=1)
    others_after = {
        (b["patient"], b["step"], b["first_day"])
        for b in clinic.get("/plans/current", headers=auth(clinic, "coordinator")).json()["bookings"]
        if b["patient"] != "N-AXI-1"
    }
    assert others_after == others_before
    events = clinic.get("/patients/N-AXI-1/timeline", headers=auth(clinic, "coordinator")).json()["events"]
    assert any("expected back" in str(e["details"]) for e in events)
    assert_plan_valid(small_site.model_copy(update={"today": day_of(steps["apheresis"])}))


# -- done differently, missed ---------------------------------------------------------------------
def test_a_step_done_a_day_late_is_rebooked_on_its_real_day_and_the_rest_follows(client, at, small_site):
    steps = scheduled(client, "N-AXI-1")
    late = day_of(steps["apheresis"]) + timedelta(days=1)
    clinic = at(late)
    response = record(clinic, "N-AXI-1", "apheresis", outcome="done", first_day=late.isoformat())
    assert response.status_code == 201, response.text
    after = booked(clinic, "N-AXI-1")
    assert after["apheresis"]["status"] == "done" and day_of(after["apheresis"]) == late
    assert day_of(after["manufacture"]) == late  # shipped fresh on the collection day
    assert_plan_valid(small_site.model_copy(update={"today": late}))


def test_a_missed_apheresis_is_booked_again_and_its_miss_stays_on_record(client, at, small_site):
    steps = scheduled(client, "N-AXI-1")
    missed_on = day_of(steps["apheresis"])
    clinic = at(missed_on)
    no_reason = record(clinic, "N-AXI-1", "apheresis", outcome="missed")
    assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["field"] == "reason"
    response = record(clinic, "N-AXI-1", "apheresis", outcome="missed", reason="line infection")
    assert response.status_code == 201, response.text
    after = booked(clinic, "N-AXI-1")
    assert day_of(after["apheresis"]) > missed_on
    assert after["apheresis"]["status"] == "planned"
    timeline = clinic.get("/patients/N-AXI-1/timeline", headers=auth(clinic, "coordinator")).json()
    assert any(e["kind"] == "step_missed" and "line infection" in e["details"]["cause"] for e in timeline["events"])
    assert_plan_valid(small_site.model_copy(update={"today": missed_on}))


# -- chain of identity ----------------------------------------------------------------------------
def _released_and_conditioning_started(client, at) -> tuple[dict, int]:
    """N-AXI-1 collected, its product back and released, its conditioning started on its first day."""
    steps = scheduled(client, "N-AXI-1")
    product = collected_and_shipped(at(day_of(steps["apheresis"])), "N-AXI-1", steps)
    ward = at(day_of(steps["conditioning"]))
    back_and_released(ward, product, day_of(steps["release"]))
    assert record(ward, "N-AXI-1", "conditioning", outcome="started").status_code == 201
    return steps, product


def _ready_to_infuse(client, at) -> tuple[TestClient, dict, int]:
    steps, product = _released_and_conditioning_started(client, at)
    infusion_day = day_of(steps["infusion"])
    ward = at(infusion_day)
    assert record(ward, "N-AXI-1", "conditioning", outcome="done").status_code == 201
    assert custody(ward, product, "issued", infusion_day).status_code == 201
    return ward, steps, product


def test_an_infusion_with_another_bag_is_refused_audited_and_not_stored(client, at, small_site):
    ward, steps, product = _ready_to_infuse(client, at)
    wrong = {"din": din_text(OTHER_DIN), "chain_of_identity": COI}
    response = record(ward, "N-AXI-1", "infusion", outcome="done", scanned=wrong)
    assert response.status_code == 409 and response.json()["field"] == "scanned.din"
    assert statuses(ward, "N-AXI-1")["infusion"] == "due"
    engine = make_engine(small_site.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "infusion.identity_mismatch")).all()
    finally:
        engine.dispose()
    assert [(a.entity_id, a.after["field"]) for a in audited] == [("N-AXI-1", "scanned.din")]

    right = {"din": din_text(DIN), "chain_of_identity": COI}
    response = record(ward, "N-AXI-1", "infusion", outcome="done", scanned=right)
    assert response.status_code == 201, response.text
    product_view = ward.get(f"/products/{product}", headers=auth(ward, "coordinator")).json()
    assert product_view["state"]["infused"] and product_view["custody"][-1]["kind"] == "infused"


# -- bad input ------------------------------------------------------------------------------------
def test_bad_product_and_custody_input_names_the_field_and_stores_nothing(client, at):
    steps = scheduled(client, "N-AXI-1")
    clinic = at(day_of(steps["apheresis"]))
    wrong_check = DIN + ("A" if check_character(DIN) != "A" else "B")
    response = clinic.post(
        "/patients/N-AXI-1/products",
        json={"collection_step": "apheresis", "din": wrong_check},
        headers=auth(clinic, "coordinator"),
    )
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "din"
    assert clinic.get("/patients/N-AXI-1/products", headers=auth(clinic, "coordinator")).json() == []

    assert custody(clinic, 999, "collected", day_of(steps["apheresis"])).status_code == 404
    product = new_product(clinic, "N-AXI-1")
    early = custody(clinic, product, "shipped", day_of(steps["apheresis"]), courier_reference="CR-1")
    assert early.status_code == 422 and early.json()["detail"][0]["field"] == "kind"
    future = custody(clinic, product, "collected", day_of(steps["apheresis"]) + timedelta(days=1))
    assert future.status_code == 422 and future.json()["detail"][0]["field"] == "day"
    assert clinic.get(f"/products/{product}", headers=auth(clinic, "coordinator")).json()["custody"] == []


# -- poor mobilisation ----------------------------------------------------------------------------
def _harvesting(client, at, earliest: str) -> tuple[TestClient, date]:
    """An ASCT patient whose harvest has started today."""
    steps = scheduled(client, "N-ASCT-1", pathway="asct-beam", earliest_start=earliest)
    harvest_day = day_of(steps["harvest"])
    clinic = at(harvest_day)
    assert record(clinic, "N-ASCT-1", "harvest", outcome="started").status_code == 201
    return clinic, harvest_day


def poorly_mobilised(clinic):
    body = {"reason": "CD34 count low"}
    return clinic.post("/patients/N-ASCT-1/poor-mobilisation", json=body, headers=auth(clinic, "coordinator"))


def test_poor_mobilisation_adds_a_second_harvest_day_when_there_is_room(client, at, small_site):
    clinic, harvest_day = _harvesting(client, at, "2027-01-14")  # a Thursday: mobilised Thu-Sun, harvest Mon
    assert harvest_day.weekday() < 4, "the test needs a harvest with a working day after it"
    response = poorly_mobilised(clinic)
    assert response.status_code == 200, response.text
    after = booked(clinic, "N-ASCT-1")
    assert (day_of(after["harvest"]), day_of(after["harvest"], "last_day")) == (
        harvest_day,
        harvest_day + timedelta(days=1),
    )
    assert after["harvest"]["status"] == "in progress"
    assert_plan_valid(small_site.model_copy(update={"today": harvest_day}))


def test_poor_mobilisation_with_no_room_the_next_day_starts_mobilisation_again(client, at, small_site):
    clinic, harvest_day = _harvesting(client, at, "2027-01-14")
    closure = {
        "resource": "apheresis_machine",
        "centre": "liverpool",
        "first_day": (harvest_day + timedelta(days=1)).isoformat(),
        "last_day": (harvest_day + timedelta(days=1)).isoformat(),
        "capacity": 0,
        "reason": "machine serviced",
    }
    assert clinic.post("/capacity/changes", json=closure, headers=auth(clinic, "lab_manager")).status_code == 201
    response = poorly_mobilised(clinic)
    assert response.status_code == 200, response.text
    after = booked(clinic, "N-ASCT-1")
    assert day_of(after["mobilisation"]) >= harvest_day and day_of(after["harvest"]) > harvest_day + timedelta(days=1)
    assert_plan_valid(small_site.model_copy(update={"today": harvest_day}))


# -- out of specification after conditioning has started -----------------------------------------
def _conditioning_started(client, at) -> tuple[TestClient, dict, int]:
    """As ``_released_and_conditioning_started``, served the next day (day 2 of the conditioning)."""
    steps, product = _released_and_conditioning_started(client, at)
    return at(day_of(steps["conditioning"]) + timedelta(days=1)), steps, product


def test_an_exceptional_release_after_a_late_result_lets_the_infusion_go_ahead(client, at):
    ward, steps, product = _conditioning_started(client, at)
    day2 = day_of(steps["conditioning"]) + timedelta(days=1)
    assert custody(ward, product, "out_of_specification", day2, reason="sterility culture positive").status_code == 201
    assert statuses(ward, "N-AXI-1")["conditioning"] == "in progress"  # the doses given are not undone
    refused = custody(ward, product, "issued", day2)
    assert refused.status_code == 422 and "exceptional release" in refused.json()["detail"][0]["problem"]
    no_clinician = custody(ward, product, "exceptional_release", day2, reason="no alternative")
    assert no_clinician.status_code == 422 and no_clinician.json()["detail"][0]["field"] == "clinician"
    released = custody(ward, product, "exceptional_release", day2, clinician="Dr Consultant", reason="no alternative")
    assert released.status_code == 201 and released.json()["product"]["state"]["exceptional"]
    infusion_day = day_of(steps["infusion"])
    bedside = at(infusion_day)
    assert record(bedside, "N-AXI-1", "conditioning", outcome="done").status_code == 201
    assert custody(bedside, product, "issued", infusion_day).status_code == 201
    scanned = {"din": din_text(DIN), "chain_of_identity": COI}
    assert record(bedside, "N-AXI-1", "infusion", outcome="done", scanned=scanned).status_code == 201


def test_a_remanufacture_after_conditioning_started_keeps_the_doses_given_in_the_history(client, at, small_site):
    ward, steps, product = _conditioning_started(client, at)
    day2 = day_of(steps["conditioning"]) + timedelta(days=1)
    assert custody(ward, product, "out_of_specification", day2, reason="viability below the limit").status_code == 201
    response = ward.post(
        "/patients/N-AXI-1/out-of-specification",
        json={"redo": "re-manufacture", "reason": "viability below the limit"},
        headers=auth(ward, "coordinator"),
    )
    assert response.status_code == 200, response.text
    assert confirm(ward, response.json()["proposal"]["id"]).status_code == 200
    timeline = ward.get("/patients/N-AXI-1/timeline", headers=auth(ward, "coordinator")).json()
    given = [r for r in timeline["records"] if r["step"] == "conditioning"]
    assert [(r["outcome"], r["first_day"]) for r in given] == [("started", steps["conditioning"]["first_day"])]
    new = {s["step"]: s for s in timeline["steps"]}
    assert day_of(new["conditioning"]) > day2 and new["conditioning"]["status"] == "confirmed"
    # the new conditioning waits for the re-manufactured product's release
    gate = record(at(day_of(new["conditioning"])), "N-AXI-1", "conditioning", outcome="started")
    assert gate.status_code == 409 and gate.json()["field"] == "outcome"
    assert_plan_valid(small_site.model_copy(update={"today": day2}))


def test_a_patient_moved_by_a_late_product_is_on_the_worklist_until_the_dates_are_confirmed(client, at):
    steps = scheduled(client, "N-AXI-1")
    clinic = at(day_of(steps["apheresis"]))
    product = collected_and_shipped(clinic, "N-AXI-1", steps)
    expected = day_of(steps["release"]) + timedelta(days=9)
    assert custody(clinic, product, "expected_back", expected).status_code == 201
    moved = clinic.get("/worklist", headers=auth(clinic, "coordinator")).json()["moved"]
    mine = next(m for m in moved if m["patient"] == "N-AXI-1")
    assert all("expected back" in m["details"]["cause"] for m in mine["moves"])
    lab = clinic.get("/worklist", headers=auth(clinic, "lab_manager")).json()
    assert lab["moved"] == [] and any(p["patient"] == "N-AXI-1" for p in lab["products_awaited"])
    told = clinic.post("/patients/N-AXI-1/confirmations", json={"note": "phoned"}, headers=auth(clinic, "coordinator"))
    assert told.status_code in (200, 201), told.text
    moved = clinic.get("/worklist", headers=auth(clinic, "coordinator")).json()["moved"]
    assert "N-AXI-1" not in {m["patient"] for m in moved}


# -- the review's cases: a back-dated start, a failed product, a re-plan that cannot follow -------
def test_conditioning_cannot_be_recorded_as_started_before_the_day_its_product_was_released(client, at):
    steps = scheduled(client, "N-AXI-1")
    product = collected_and_shipped(at(day_of(steps["apheresis"])), "N-AXI-1", steps)
    ward = at(day_of(steps["conditioning"]))
    back_and_released(ward, product, day_of(steps["release"]))
    before = (day_of(steps["release"]) - timedelta(days=1)).isoformat()
    refused = record(ward, "N-AXI-1", "conditioning", outcome="started", first_day=before)
    assert refused.status_code == 409 and refused.json()["field"] == "outcome"
    assert "released on" in refused.json()["detail"]
    assert statuses(ward, "N-AXI-1")["conditioning"] == "due"


def test_after_a_restart_the_failed_product_no_longer_opens_the_gate(client, at):
    """Re-manufacture reported without the failed product's custody saying so: the old product,
    released, must not let the new conditioning start nor be infused."""
    ward, steps, product = _conditioning_started(client, at)
    response = ward.post(
        "/patients/N-AXI-1/out-of-specification",
        json={"redo": "re-manufacture", "reason": "viability below the limit"},
        headers=auth(ward, "coordinator"),
    )
    assert response.status_code == 200, response.text
    assert confirm(ward, response.json()["proposal"]["id"]).status_code == 200
    new = booked(ward, "N-AXI-1")
    gate = record(at(day_of(new["conditioning"])), "N-AXI-1", "conditioning", outcome="started")
    assert gate.status_code == 409 and "no product is recorded" in gate.json()["detail"]


def test_an_expected_back_day_before_the_manufacture_started_names_the_day(client, at):
    steps = scheduled(client, "N-AXI-1")
    clinic = at(day_of(steps["apheresis"]))
    product = collected_and_shipped(clinic, "N-AXI-1", steps)
    response = custody(clinic, product, "expected_back", day_of(steps["manufacture"]))
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "day"


def test_when_the_re_plan_cannot_follow_a_late_product_what_it_breaks_leaves_the_plan(client, at, small_site):
    """The record is stored first; if the patient's re-plan then fails (the solver busy, the plan
    changing), release, conditioning and infusion must not stay before the product's return."""
    from api import records
    from api.audit import Actor
    from api.unit_of_work import Database

    steps = scheduled(client, "N-AXI-1")
    today = day_of(steps["apheresis"])
    product = collected_and_shipped(at(today), "N-AXI-1", steps)
    settings = small_site.model_copy(update={"today": today})
    lab = Actor("test-lab_manager", "lab_manager")
    engine = make_engine(settings.database_url)
    try:
        database = Database.on(engine)
        late = day_of(steps["release"]) + timedelta(days=9)
        with database.plan_write() as work:  # the record alone, as the workflow stores it before re-planning
            recorded = records.record_custody(work, product, records.CustodyKind.expected_back, late, {}, settings, lab)
        assert recorded.replan and "expected back" in recorded.replan
        with database.plan_write() as work:
            taken = records.unplan_broken(work, "N-AXI-1", recorded.replan, settings, lab)
    finally:
        engine.dispose()
    assert {"release", "conditioning", "infusion"} <= set(taken)
    after = booked(at(today), "N-AXI-1")
    assert all(after[s]["status"] == "not booked" for s in ("release", "conditioning", "infusion"))
    # that night the nightly run books them again, after the product's return
    run_nightly(settings.model_copy(update={"today": today + timedelta(days=1)}))
    after = booked(at(today + timedelta(days=1)), "N-AXI-1")
    assert day_of(after["release"]) >= late and day_of(after["conditioning"]) > day_of(after["release"])
    assert_plan_valid(settings.model_copy(update={"today": today + timedelta(days=1)}))


def test_step_records_and_custody_events_are_append_only_in_the_database(client, at, small_site):
    """Even with SQL straight on the database, what happened cannot be changed or removed."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    steps = scheduled(client, "N-AXI-1")
    collected_and_shipped(at(day_of(steps["apheresis"])), "N-AXI-1", steps)
    engine = make_engine(small_site.database_url)
    statements = [
        "UPDATE step_records SET outcome = 'missed'",
        "DELETE FROM step_records",
        "UPDATE custody_events SET day = day",
        "DELETE FROM custody_events",
    ]
    if engine.dialect.name == "postgresql":
        statements += ["TRUNCATE step_records", "TRUNCATE custody_events"]
    try:
        for statement in statements:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.execute(text(statement))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM step_records")).scalar() == 1
            assert connection.execute(text("SELECT count(*) FROM custody_events")).scalar() == 4
    finally:
        engine.dispose()


def test_a_lab_manager_records_the_products_steps_and_a_coordinator_the_bedsides(client, at):
    steps = scheduled(client, "N-AXI-1")
    clinic = at(day_of(steps["apheresis"]))
    refused = record(clinic, "N-AXI-1", "apheresis", role="lab_manager", outcome="done")
    assert refused.status_code == 403 and "coordinator" in refused.json()["detail"]
    assert statuses(clinic, "N-AXI-1")["apheresis"] == "due"
    assert record(clinic, "N-AXI-1", "apheresis", outcome="done").status_code == 201
    started = record(clinic, "N-AXI-1", "manufacture", role="lab_manager", outcome="started")
    assert started.status_code == 201, started.text
    assert statuses(clinic, "N-AXI-1")["manufacture"] == "in progress"


def test_a_conditioning_stopped_part_way_keeps_the_days_given_and_is_planned_again_in_full(client, at, small_site):
    ward, steps, product = _conditioning_started(client, at)
    began = day_of(steps["conditioning"])
    chairs_before = ward.get(
        f"/capacity?from={began}&to={began}&resource=day_unit_chair", headers=auth(ward, "lab_manager")
    ).json()["cells"]
    no_reason = record(ward, "N-AXI-1", "conditioning", outcome="cancelled")
    assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["field"] == "reason"
    stopped = record(ward, "N-AXI-1", "conditioning", outcome="cancelled", reason="febrile, line infection")
    assert stopped.status_code == 201, stopped.text
    timeline = ward.get("/patients/N-AXI-1/timeline", headers=auth(ward, "coordinator")).json()
    given = [(r["outcome"], r["first_day"], r["last_day"]) for r in timeline["records"] if r["step"] == "conditioning"]
    assert given == [("started", began.isoformat(), None), ("cancelled", began.isoformat(), began.isoformat())]
    again = {s["step"]: s for s in timeline["steps"]}
    assert day_of(again["conditioning"]) > began + timedelta(days=1)  # the whole course again, later
    assert day_of(again["infusion"]) > day_of(again["conditioning"], "last_day")
    assert any(e["kind"] == "step_stopped" and "line infection" in e["details"]["cause"] for e in timeline["events"])
    chairs_after = ward.get(
        f"/capacity?from={began}&to={began}&resource=day_unit_chair", headers=auth(ward, "lab_manager")
    ).json()["cells"]
    assert chairs_after == chairs_before  # the day given stays in the history of the capacity
    assert_plan_valid(small_site.model_copy(update={"today": began + timedelta(days=1)}))


def test_a_split_doses_second_dose_not_given_ends_the_products_chain_at_the_first(client, at):
    steps = scheduled(client, "N-OBE-1", pathway="obe-cel")
    product = collected_and_shipped(at(day_of(steps["apheresis"])), "N-OBE-1", steps)
    ward = at(day_of(steps["conditioning"]))
    back_and_released(ward, product, day_of(steps["release"]))
    assert record(ward, "N-OBE-1", "conditioning", outcome="started").status_code == 201
    first_dose = day_of(steps["infusion_dose_1"])
    bedside = at(first_dose)
    assert record(bedside, "N-OBE-1", "conditioning", outcome="done").status_code == 201
    assert custody(bedside, product, "issued", first_dose).status_code == 201
    scanned = {"din": din_text(DIN), "chain_of_identity": COI}
    assert record(bedside, "N-OBE-1", "infusion_dose_1", outcome="done", scanned=scanned).status_code == 201
    assert bedside.get(f"/products/{product}", headers=auth(bedside, "coordinator")).json()["state"]["last"] == "issued"
    cancelled = record(bedside, "N-OBE-1", "infusion_dose_2", outcome="cancelled", reason="grade 3 CRS after dose 1")
    assert cancelled.status_code == 201, cancelled.text
    chain = bedside.get(f"/products/{product}", headers=auth(bedside, "coordinator")).json()
    assert chain["state"]["infused"] and chain["custody"][-1]["day"] == first_dose.isoformat()


def test_a_late_in_house_product_keeps_its_device_busy_on_every_day_of_the_longer_run(client, at):
    """The device is used for the manufacture's days as it now runs: today's view and, later, the
    same past days read from the plan then in force, count the patient on the extra days."""
    steps = scheduled(client, "N-INH-1", pathway="in-house-car-t")
    collection = day_of(steps["apheresis"])
    lab = at(collection)
    assert record(lab, "N-INH-1", "apheresis", outcome="done").status_code == 201
    product = new_product(lab, "N-INH-1")
    for kind in ("collected", "received", "manufacture_started"):
        assert custody(lab, product, kind, collection).status_code == 201
    planned_end = day_of(steps["manufacture"], "last_day")
    late = custody(lab, product, "expected_back", planned_end + timedelta(days=4))
    assert late.status_code == 201, late.text
    extra_day = planned_end + timedelta(days=2)

    def device_users(client, day):
        cells = client.get(
            f"/capacity?from={day}&to={day}&resource=manufacturing_device", headers=auth(client, "lab_manager")
        ).json()["cells"]
        return {p["patient"] for c in cells for p in c["patients"]}

    assert "N-INH-1" in device_users(lab, extra_day)
    assert "N-INH-1" in device_users(at(extra_day + timedelta(days=7)), extra_day)  # as a past day
