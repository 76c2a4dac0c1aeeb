"""Coordinators' flow end to end on a real database: refer, propose, confirm, reschedule, withdraw.

After every change the whole current plan goes through the independent rule checker.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.db import make_engine, make_sessionmaker
from tests.builders import assert_plan_valid, auth, confirm, propose, refer

AXI_CEL_STEPS = ["apheresis", "manufacture", "release", "conditioning", "infusion", "inpatient", "high_risk_window"]


def day(text: str) -> date:
    return date.fromisoformat(text)


def test_referral_proposed_and_confirmed_appears_in_timeline_plan_and_calendar(client, small_site):
    refer(client, "N-AXI-1")
    proposal = propose(client, "N-AXI-1")
    fast = proposal["options"][0]
    assert fast["kind"] == "fast" and fast["moves"] == []
    assert [b["step"] for b in fast["bookings"]] == AXI_CEL_STEPS
    assert all(day(b["first_day"]) >= small_site.planning_day() for b in fast["bookings"])

    response = confirm(client, proposal["id"])
    assert response.status_code == 200, response.text
    version = response.json()["plan_version"]
    timeline = response.json()["timeline"]
    booked = {s["step"]: (s["first_day"], s["status"]) for s in timeline["steps"]}
    assert booked == {b["step"]: (b["first_day"], "confirmed") for b in fast["bookings"]}
    assert all(s["fixed_by"].startswith("confirmed by test-coordinator") for s in timeline["steps"])

    current = client.get("/plans/current", headers=auth(client, "lab_manager")).json()
    assert current["id"] == version
    assert {(b["step"], b["first_day"]) for b in current["bookings"] if b["patient"] == "N-AXI-1"} == {
        (b["step"], b["first_day"]) for b in fast["bookings"]
    }
    diff = client.get(f"/plans/diff?from={version - 1}&to={version}", headers=auth(client, "coordinator")).json()
    assert [p["patient"] for p in diff["patients"]] == ["N-AXI-1"]
    assert {c["change"] for c in diff["patients"][0]["changes"]} == {"added"}

    ics = client.get("/patients/N-AXI-1/calendar.ics", headers=auth(client, "coordinator"))
    assert ics.headers["content-type"].startswith("text/calendar")
    infusion = next(b for b in fast["bookings"] if b["step"] == "infusion")
    assert f"DTSTART;VALUE=DATE:{infusion['first_day'].replace('-', '')}" in ics.text
    assert ics.text.count("BEGIN:VEVENT") == len(AXI_CEL_STEPS)
    assert_plan_valid(small_site)

    again = confirm(client, proposal["id"])
    assert again.status_code == 409 and "confirmed" in again.json()["detail"]


def _last_apheresis_place(client, small_site) -> tuple[str, str]:
    """Leave exactly one apheresis machine free on the day a new axi-cel patient would be collected."""
    refer(client, "N-PROBE")
    probe = propose(client, "N-PROBE")["options"][0]
    collection = next(b for b in probe["bookings"] if b["step"] == "apheresis")["first_day"]
    cell = client.get(
        f"/capacity?from={collection}&to={collection}&resource=apheresis_machine", headers=auth(client, "lab_manager")
    ).json()["cells"][0]
    change = {
        "resource": "apheresis_machine",
        "centre": "liverpool",
        "first_day": collection,
        "last_day": collection,
        "capacity": cell["booked"] + 1,
        "reason": "one machine left for the test",
    }
    assert client.post("/capacity/changes", json=change, headers=auth(client, "lab_manager")).status_code == 201
    return cell["resource"], collection


@pytest.mark.parametrize("coordinators", [2, 6])
def test_coordinators_racing_for_the_last_apheresis_slot_one_wins_the_rest_get_409(client, small_site, coordinators):
    resource, collection = _last_apheresis_place(client, small_site)
    ids = [f"N-RACE-{i}" for i in range(coordinators)]
    proposals = []
    for pid in ids:
        refer(client, pid)
        proposal = propose(client, pid)
        assert (
            next(b for b in proposal["options"][0]["bookings"] if b["step"] == "apheresis")["first_day"] == collection
        )
        proposals.append(proposal["id"])

    barrier = threading.Barrier(coordinators)
    results: list = [None] * coordinators

    def race(i: int) -> None:
        with TestClient(create_app(small_site)) as own:  # each coordinator: own app, own connection pool
            own.tokens = client.tokens
            barrier.wait()
            results[i] = confirm(own, proposals[i])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(coordinators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * (coordinators - 1), [r.text for r in results]
    expected_day = f"{day(collection):%a %d %b %Y}"
    for r in results:
        if r.status_code == 409:
            assert resource in r.json()["detail"] and expected_day in r.json()["detail"]
    winners = [pid for pid, r in zip(ids, results, strict=True) if r.status_code == 200]
    current = client.get("/plans/current", headers=auth(client, "coordinator")).json()
    racing = {b["patient"] for b in current["bookings"] if b["patient"].startswith("N-RACE-")}
    assert racing == set(winners)
    assert_plan_valid(small_site)


def test_a_losing_confirm_changes_nothing(client, small_site):
    resource, collection = _last_apheresis_place(client, small_site)
    refer(client, "N-A")
    refer(client, "N-B")
    first, second = propose(client, "N-A"), propose(client, "N-B")
    assert confirm(client, first["id"]).status_code == 200
    before = client.get("/plans/current", headers=auth(client, "coordinator")).json()
    audit_before = len(client.get("/audit?limit=1000", headers=auth(client, "admin")).json())
    lost = confirm(client, second["id"])
    assert lost.status_code == 409
    assert client.get("/plans/current", headers=auth(client, "coordinator")).json() == before
    assert len(client.get("/audit?limit=1000", headers=auth(client, "admin")).json()) == audit_before
    assert client.get("/patients/N-B", headers=auth(client, "coordinator")).json()["status"] == "referred"
    assert client.get(f"/proposals/{second['id']}", headers=auth(client, "coordinator")).json()["status"] == "open"


def test_deferral_releases_bookings_and_offers_a_schedule_after_the_date(client, small_site):
    before = client.get("/patients/S-AXI-1/timeline", headers=auth(client, "coordinator")).json()
    old_infusion = next(s for s in before["steps"] if s["step"] == "infusion")["first_day"]
    response = client.post(
        "/patients/S-AXI-1/defer",
        json={"from_date": "2027-03-01", "reason": "infection, antibiotics until end of February"},
        headers=auth(client, "coordinator"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(s["status"] == "not booked" for s in body["timeline"]["steps"])
    assert body["timeline"]["events"][-1]["kind"] == "deferral"
    options = body["proposal"]["options"]
    assert options and all(day(b["first_day"]) >= date(2027, 3, 1) for b in options[0]["bookings"])
    assert confirm(client, body["proposal"]["id"]).status_code == 200
    after = client.get("/patients/S-AXI-1/timeline", headers=auth(client, "coordinator")).json()
    new_infusion = next(s for s in after["steps"] if s["step"] == "infusion")["first_day"]
    assert new_infusion > old_infusion and day(new_infusion) > date(2027, 3, 1)
    assert_plan_valid(small_site)


def _steps(client, patient_id: str) -> dict[str, dict]:
    timeline = client.get(f"/patients/{patient_id}/timeline", headers=auth(client, "coordinator")).json()
    return {s["step"]: s for s in timeline["steps"]}


def _out_of_specification(client, patient_id: str, redo: str) -> dict:
    response = client.post(
        f"/patients/{patient_id}/out-of-specification",
        json={"redo": redo, "reason": "viability below specification"},
        headers=auth(client, "coordinator"),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_out_of_specification_remakes_the_product_or_collects_again(small_site, tokens):
    later = small_site.model_copy(update={"today": date(2027, 2, 22)})  # the first products are back by now
    with TestClient(create_app(later)) as client:
        client.tokens = tokens
        before = _steps(client, "S-AXI-1")
        assert before["apheresis"]["status"] == "overdue"  # its day has passed, nothing recorded: never assumed done

        # re-manufacture from retained cells: the collection stays, manufacture starts again from today
        body = _out_of_specification(client, "S-AXI-1", "re-manufacture")
        fast = {b["step"]: b for b in body["proposal"]["options"][0]["bookings"]}
        assert fast["apheresis"]["first_day"] == before["apheresis"]["first_day"]
        assert day(fast["manufacture"]["first_day"]) >= later.today
        assert confirm(client, body["proposal"]["id"]).status_code == 200
        patient = client.get("/patients/S-AXI-1", headers=auth(client, "coordinator")).json()
        assert patient["pathway"] == "axi-cel--re-manufacture"
        assert _steps(client, "S-AXI-1")["infusion"]["first_day"] > before["infusion"]["first_day"]

        # re-apheresis: a new collection from today, then the whole pathway again
        collected = _steps(client, "S-AXI-2")["apheresis"]
        assert collected["status"] == "overdue"
        body = _out_of_specification(client, "S-AXI-2", "re-apheresis")
        fast = {b["step"]: b for b in body["proposal"]["options"][0]["bookings"]}
        assert day(fast["apheresis"]["first_day"]) >= later.today
        assert confirm(client, body["proposal"]["id"]).status_code == 200
        events = client.get("/patients/S-AXI-2/timeline", headers=auth(client, "coordinator")).json()["events"]
        assert [e["kind"] for e in events[-2:]] == ["oos", "confirmation"]
        assert events[-2]["details"]["redo"] == "re-apheresis"

        # a product not made yet cannot be out of specification
        refer(client, "N-UNBOOKED", approval="2027-02-22")
        refused = client.post(
            "/patients/N-UNBOOKED/out-of-specification",
            json={"redo": "re-apheresis", "reason": "x"},
            headers=auth(client, "coordinator"),
        )
        assert refused.status_code == 409 and "apheresis" in refused.json()["detail"]
    assert_plan_valid(later)


def test_withdrawal_frees_capacity_and_blocks_further_proposals(client, small_site):
    timeline = client.get("/patients/S-INH-1/timeline", headers=auth(client, "coordinator")).json()
    device = next(s for s in timeline["steps"] if s["step"] == "manufacture")
    first = device["first_day"]
    used = lambda: client.get(  # noqa: E731
        f"/capacity?from={first}&to={first}&resource=manufacturing_device", headers=auth(client, "lab_manager")
    ).json()["cells"][0]
    holders = {p["patient"] for p in used()["patients"]}
    assert "S-INH-1" in holders
    response = client.post(
        "/patients/S-INH-1/withdraw", json={"reason": "patient choice"}, headers=auth(client, "coordinator")
    )
    assert response.status_code == 200, response.text
    assert "S-INH-1" not in {p["patient"] for p in used()["patients"]}
    assert client.get("/patients/S-INH-1", headers=auth(client, "coordinator")).json()["status"] == "withdrawn"
    again = client.post("/patients/S-INH-1/proposals", headers=auth(client, "coordinator"))
    assert again.status_code == 409


def test_closure_lists_broken_bookings_and_replans_only_those_patients(client, small_site):
    current = client.get("/plans/current", headers=auth(client, "lab_manager")).json()
    collections = sorted(
        (b["first_day"], b["patient"])
        for b in current["bookings"]
        if b["step"] == "apheresis" and b["patient"].startswith("S-AXI")
    )
    closed_day, victim = collections[0]
    change = {
        "resource": "apheresis_machine",
        "centre": "liverpool",
        "first_day": closed_day,
        "last_day": closed_day,
        "capacity": 0,
        "reason": "machine service",
    }
    response = client.post("/capacity/changes", json=change, headers=auth(client, "lab_manager"))
    assert response.status_code == 201, response.text
    broken = {b["patient"] for b in response.json()["broken"]}
    assert victim in broken
    table = client.get(f"/capacity?from={closed_day}&to={closed_day}", headers=auth(client, "lab_manager")).json()
    assert table["summary"]["overbooked"]

    replan = client.post(f"/capacity/changes/{response.json()['id']}/replan", headers=auth(client, "lab_manager"))
    assert replan.status_code == 200, replan.text
    moved = {p["patient"] for p in replan.json()["diff"]["patients"]}
    assert moved and moved <= broken
    after = client.get(f"/capacity?from={closed_day}&to={closed_day}", headers=auth(client, "lab_manager")).json()
    assert after["summary"]["overbooked"] == []
    assert_plan_valid(small_site)


def test_capacity_view_matches_the_plan_and_exports_csv(client, small_site):
    first = small_site.planning_day()
    last = first + timedelta(days=89)
    table = client.get(f"/capacity?from={first}&to={last}", headers=auth(client, "lab_manager")).json()
    current = client.get("/plans/current", headers=auth(client, "lab_manager")).json()
    inpatient = [b for b in current["bookings"] if b["step"] == "inpatient"]
    probe = day(inpatient[0]["first_day"])
    bed = next(c for c in table["cells"] if c["resource"] == "liverpool/bed" and c["day"] == probe.isoformat())
    assert inpatient[0]["patient"] in {p["patient"] for p in bed["patients"]}
    assert bed["free"] == bed["capacity"] - bed["booked"]
    assert table["summary"]["bottleneck"]["resource"] in {c["resource"] for c in table["cells"]}

    csv = client.get(f"/capacity.csv?from={first}&to={last}", headers=auth(client, "lab_manager"))
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("day,resource,period,capacity,booked,free")
    assert len(lines) == len(table["cells"]) + 1


def test_editing_a_referral_reports_what_its_bookings_now_break(client, small_site):
    timeline = client.get("/patients/S-AXI-2/timeline", headers=auth(client, "coordinator")).json()
    collection = day(next(s for s in timeline["steps"] if s["step"] == "apheresis")["first_day"])
    later = (collection + timedelta(days=7)).isoformat()
    response = client.patch("/patients/S-AXI-2", json={"earliest_start": later}, headers=auth(client, "coordinator"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["earliest_start"] == later
    assert any("S-AXI-2" in v and "apheresis" in v for v in body["violations"])
    # the coordinator then asks for a schedule that respects the new date
    proposal = propose(client, "S-AXI-2")
    assert all(day(b["first_day"]) >= day(later) for b in proposal["options"][0]["bookings"])
    assert confirm(client, proposal["id"]).status_code == 200
    assert_plan_valid(small_site)


def test_confirming_an_alternative_moves_the_others_and_tells_them(client, small_site):
    refer(client, "N-URGENT", pathway="in-house-car-t", urgency="urgent")
    proposal = propose(client, "N-URGENT")
    fast, *alternatives = proposal["options"]
    assert alternatives, "an urgent in-house patient on the small site can go earlier by moving others"
    chosen = alternatives[0]
    assert chosen["moves"] and day(chosen["infusion"]) < day(fast["infusion"])
    freeze_end = date(2027, 1, 7)  # 3 working days after Mon 04 Jan 2027
    moved = {m["patient"] for m in chosen["moves"]}
    for m in chosen["moves"]:
        assert day(m["to_first_day"]) > freeze_end and day(m["from_first_day"]) > freeze_end
    assert confirm(client, proposal["id"], chosen["rank"]).status_code == 200

    for pid in moved:
        steps = _steps(client, pid)
        for m in (m for m in chosen["moves"] if m["patient"] == pid):
            assert steps[m["step"]]["first_day"] == m["to_first_day"]
            assert steps[m["step"]]["status"] == "planned"  # to be confirmed again with that patient
            assert "to make room for N-URGENT" in steps[m["step"]]["fixed_by"]
        events = client.get(f"/patients/{pid}/timeline", headers=auth(client, "coordinator")).json()["events"]
        assert events[-1]["kind"] == "moved" and events[-1]["details"]["for_patient"] == "N-URGENT"
        audit = client.get(f"/audit?entity=patient&entity_id={pid}", headers=auth(client, "admin")).json()
        assert audit[0]["action"] == "plan.moved"
    assert_plan_valid(small_site)


def test_deferral_during_manufacture_keeps_the_product_and_moves_the_patient_steps(small_site, tokens):
    later = small_site.model_copy(update={"today": date(2027, 1, 25)})
    with TestClient(create_app(later)) as client:
        client.tokens = tokens
        before = _steps(client, "S-AXI-1")
        assert before["manufacture"]["status"] == "overdue"  # not recorded, no product awaited
        response = client.post(
            "/patients/S-AXI-1/defer",
            json={"from_date": "2027-02-22", "reason": "too unwell for lymphodepletion"},
            headers=auth(client, "coordinator"),
        )
        assert response.status_code == 200, response.text
        options = response.json()["proposal"]["options"]
        assert options, response.json()["proposal"]["reason"]
        fast = {b["step"]: b for b in options[0]["bookings"]}
        assert fast["manufacture"]["first_day"] == before["manufacture"]["first_day"]  # the product is not remade
        assert fast["release"]["first_day"] == before["release"]["first_day"]
        assert day(fast["conditioning"]["first_day"]) >= date(2027, 2, 22)
        assert confirm(client, response.json()["proposal"]["id"]).status_code == 200
    assert_plan_valid(later)


def test_a_replan_is_not_published_over_a_closure_made_while_it_solved(small_site):
    from api import services
    from api.audit import SYSTEM
    from api.replanning import Publication, StalePlan
    from api.unit_of_work import Database
    from pathway.site import CapacityChange

    engine = make_engine(small_site.database_url)
    database = Database(make_sessionmaker(engine))
    try:
        with database.read() as work:
            data = services.replan_input(work.session, {"S-AXI-1"}, small_site)
        plan = services.run_replan(data, small_site)
        with database.plan_write() as work:
            change = CapacityChange(
                resource="apheresis_machine",
                centre="liverpool",
                first_day="2027-01-04",
                last_day="2027-03-31",
                capacity=0,
                reason="flood",
            )
            services.add_capacity_change(work, change, small_site, SYSTEM)
        publication = Publication(kind="replan", reason="test", actor=SYSTEM)
        with pytest.raises(StalePlan):
            with database.plan_write() as work:
                services.publish_plan(work, plan, {"S-AXI-1"}, data.base_changes, publication, small_site)
    finally:
        engine.dispose()
