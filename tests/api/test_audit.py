"""The audit log: every write leaves a row saying who (name and role) did what, to what, with the
state before and after; and nobody, not even the database owner, can alter or remove a row.

Runs on SQLite and PostgreSQL (the ``client`` fixture): the append-only rule is a database
trigger on each, written separately in the migration, so each is tested.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.db import make_engine
from api.setup import new_token
from tests.builders import auth

REFERRAL = {"id": "AUD-1", "centre": "liverpool", "pathway": "axi-cel", "approval_date": "2027-01-11"}
CHANGE = {
    "resource": "bed",
    "centre": "liverpool",
    "first_day": "2027-03-01",
    "last_day": "2027-03-05",
    "capacity": 8,
    "reason": "ward refurbishment",
}


def audit_rows(client) -> list[dict[str, Any]]:
    """The whole audit log, oldest first."""
    rows = client.get("/audit", params={"limit": 1000}, headers=auth(client, "admin"))
    assert rows.status_code == 200, rows.text
    return list(reversed(rows.json()))


class AuditWatch:
    """The rows a step adds to the audit log."""

    def __init__(self, client):
        self.client = client
        self.seen = len(audit_rows(client))

    def new(self) -> list[dict[str, Any]]:
        rows = audit_rows(self.client)
        added, self.seen = rows[self.seen :], len(rows)
        for row in added:
            assert set(row) == {"id", "at", "actor", "role", "action", "entity", "entity_id", "before", "after"}
            assert row["actor"] and row["role"] and row["action"] and row["entity"] and row["entity_id"] and row["at"]
        return added


def only(rows: list[dict[str, Any]], action: str) -> dict[str, Any]:
    matching = [r for r in rows if r["action"] == action]
    assert len(matching) == 1, rows
    return matching[0]


def test_every_write_leaves_an_audit_row_with_who_what_before_and_after(client, small_site):
    coordinator, lab_manager, admin = auth(client, "coordinator"), auth(client, "lab_manager"), auth(client, "admin")
    watch = AuditWatch(client)

    # a referral: nothing before, the referral after
    assert client.post("/patients", json=REFERRAL, headers=coordinator).status_code == 201
    rows = watch.new()
    assert [r["action"] for r in rows] == ["patient.register"]
    row = rows[0]
    assert (row["actor"], row["role"], row["entity"], row["entity_id"]) == (
        "test-coordinator",
        "coordinator",
        "patient",
        "AUD-1",
    )
    assert row["before"] is None
    assert row["after"]["pathway"] == "axi-cel" and row["after"]["approval_date"] == "2027-01-11"
    assert row["after"]["status"] == "referred"

    # an edit: the field as it was and as it is
    response = client.patch(
        "/patients/AUD-1", json={"urgency": "urgent", "target_infusion_date": "2027-03-01"}, headers=coordinator
    )
    assert response.status_code == 200, response.text
    row = only(watch.new(), "patient.edit")
    assert (row["actor"], row["role"], row["entity_id"]) == ("test-coordinator", "coordinator", "AUD-1")
    assert (row["before"]["urgency"], row["after"]["urgency"]) == ("routine", "urgent")
    assert (row["before"]["target_infusion_date"], row["after"]["target_infusion_date"]) == (None, "2027-03-01")
    assert row["before"]["pathway"] == row["after"]["pathway"] == "axi-cel"

    # a proposal and its confirmation: the bookings made
    response = client.post("/patients/AUD-1/proposals", headers=coordinator)
    assert response.status_code == 201, response.text
    proposal = response.json()
    row = only(watch.new(), "proposal.create")
    assert (row["actor"], row["entity"], row["entity_id"]) == ("test-coordinator", "proposal", proposal["id"])
    assert row["after"] == {"patient": "AUD-1", "options": len(proposal["options"])}
    assert proposal["options"], proposal  # the small site has room for one more axi-cel patient
    response = client.post(f"/proposals/{proposal['id']}/confirm", json={"option": 0}, headers=coordinator)
    assert response.status_code == 200, response.text
    row = only(watch.new(), "plan.confirm")
    assert (row["actor"], row["role"], row["entity_id"]) == ("test-coordinator", "coordinator", "AUD-1")
    assert row["before"] == {"bookings": []}
    assert {b["step"] for b in row["after"]["bookings"]} >= {"apheresis", "infusion"}
    assert row["after"]["version"] == response.json()["plan_version"]

    # a capacity change, by a lab manager: the change after
    response = client.post("/capacity/changes", json=CHANGE, headers=lab_manager)
    assert response.status_code == 201, response.text
    change_id = response.json()["id"]
    rows = watch.new()
    assert [r["action"] for r in rows] == ["capacity.change"]
    row = rows[0]
    assert (row["actor"], row["role"], row["entity"], row["entity_id"]) == (
        "test-lab_manager",
        "lab_manager",
        "capacity_change",
        str(change_id),
    )
    assert row["before"] is None
    assert row["after"] == CHANGE

    # its withdrawal: the change before, nothing after
    response = client.delete(f"/capacity/changes/{change_id}", headers=lab_manager)
    assert response.status_code == 200, response.text
    rows = watch.new()
    assert [r["action"] for r in rows] == ["capacity.withdraw"]
    row = rows[0]
    assert (row["actor"], row["role"], row["entity_id"]) == ("test-lab_manager", "lab_manager", str(change_id))
    assert row["before"] == CHANGE and row["after"] is None

    # a patient withdrawn: the bookings released, the reason, and the status before and after
    booked = client.get("/patients/S-AXI-1/timeline", headers=coordinator).json()
    booked_steps = {s["step"] for s in booked["steps"] if s["first_day"]}
    response = client.post("/patients/S-AXI-1/withdraw", json={"reason": "patient's choice"}, headers=coordinator)
    assert response.status_code == 200, response.text
    rows = watch.new()
    assert sorted(r["action"] for r in rows) == ["patient.edit", "patient.withdrawal"]
    release = only(rows, "patient.withdrawal")
    assert (release["actor"], release["role"], release["entity_id"]) == ("test-coordinator", "coordinator", "S-AXI-1")
    assert {b["step"] for b in release["before"]["bookings"]} == booked_steps
    assert release["after"] == {"reason": "patient's choice", "cause": "withdrawn"}
    status = only(rows, "patient.edit")
    assert (status["before"]["status"], status["after"]["status"]) == ("scheduled", "withdrawn")

    # the catalogue replaced, by an admin
    site = client.get("/catalogue", headers=admin).json()["site"]
    response = client.put("/catalogue/site", json=site, headers=admin)
    assert response.status_code == 200, response.text
    row = only(watch.new(), "catalogue.replace")
    assert (row["actor"], row["role"], row["entity_id"]) == ("test-admin", "admin", "site")
    assert (
        row["after"] == {"version": response.json()["version"]} and row["before"]["version"] < row["after"]["version"]
    )

    # a token created (by the command line, as the system): its name and role, never the secret
    secret = new_token(small_site, "audit-new-token", "lab_manager")
    rows = watch.new()
    assert [r["action"] for r in rows] == ["token.create"]
    row = rows[0]
    assert (row["actor"], row["role"], row["entity"], row["entity_id"]) == (
        "system",
        "admin",
        "token",
        "audit-new-token",
    )
    assert row["before"] is None and row["after"] == {"name": "audit-new-token", "role": "lab_manager"}
    assert secret not in client.get("/audit", params={"limit": 1000}, headers=admin).text


def test_the_audit_log_names_the_person_not_only_the_role(client, small_site):
    second = new_token(small_site, "coordinator-jones", "coordinator")
    watch = AuditWatch(client)
    response = client.post("/patients", json=REFERRAL, headers={"Authorization": f"Bearer {second}"})
    assert response.status_code == 201, response.text
    row = only(watch.new(), "patient.register")
    assert (row["actor"], row["role"]) == ("coordinator-jones", "coordinator")


def test_refused_and_failed_writes_leave_no_audit_row(client):
    watch = AuditWatch(client)
    attempts = [
        client.post("/patients", json=REFERRAL, headers=auth(client, "lab_manager")),  # 403
        client.post("/patients", json=REFERRAL | {"pathway": "nope"}, headers=auth(client, "coordinator")),  # 422
        client.post("/patients", json=REFERRAL | {"id": "S-AXI-1"}, headers=auth(client, "coordinator")),  # 409
        client.patch("/patients/S-AXI-1", json={"pathway": "cilta-cel"}, headers=auth(client, "coordinator")),  # 409
        client.post(
            "/capacity/changes", json=CHANGE | {"resource": "nope"}, headers=auth(client, "lab_manager")
        ),  # 422
        client.delete("/capacity/changes/999", headers=auth(client, "lab_manager")),  # 404
    ]
    assert [a.status_code for a in attempts] == [403, 422, 409, 409, 422, 404]
    assert watch.new() == []


def test_audit_filters_by_entity(client):
    assert client.post("/patients", json=REFERRAL, headers=auth(client, "coordinator")).status_code == 201
    rows = client.get(
        "/audit", params={"entity": "patient", "entity_id": "AUD-1"}, headers=auth(client, "admin")
    ).json()
    assert [r["action"] for r in rows] == ["patient.register"]
    newest = client.get("/audit", params={"limit": 1}, headers=auth(client, "admin")).json()
    assert newest[0]["entity_id"] == "AUD-1"  # newest first


CHANGES = [
    "UPDATE audit_log SET actor = 'someone else'",
    "UPDATE audit_log SET after = NULL WHERE action = 'patient.import'",
    "DELETE FROM audit_log",
    "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
]


def test_the_audit_log_is_append_only_in_the_database(client, small_site):
    """Even with direct SQL on the database (no API in the way), no row can be changed or removed."""
    engine = make_engine(small_site.database_url)
    statements = CHANGES + (["TRUNCATE audit_log"] if engine.dialect.name == "postgresql" else [])
    query = text("SELECT id, at, actor, role, action, entity, entity_id, before, after FROM audit_log ORDER BY id")
    try:
        with engine.connect() as connection:
            before = connection.execute(query).all()
        assert len(before) >= 5  # catalogue x2, import, plan, tokens
        for statement in statements:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.execute(text(statement))
        with engine.connect() as connection:
            assert connection.execute(query).all() == before
        # appending still works
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, actor, role, action, entity, entity_id) "
                    "VALUES (CURRENT_TIMESTAMP, 'test', 'admin', 'test.append', 'test', '1')"
                )
            )
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == len(before) + 1
    finally:
        engine.dispose()
