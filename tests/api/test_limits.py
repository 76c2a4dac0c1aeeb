"""Limits on what one request may carry, each tested at the limit (taken) and one past it (refused
with a 413 or a 422 naming the field, nothing stored), and the methods a path takes said whole.

Without limits one referral with 200,000 blackouts (14 MB) was stored, and every later proposal
and nightly run paid for it.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.schemas import MAX_BLACKOUT_REASON, MAX_BLACKOUTS, MAX_MAP_ENTRIES, MAX_REASON
from api.setup import new_token
from tests.builders import ROLES, auth, fresh_database, make_settings, plan_small_cohort

LIMIT = 65_536  # the smallest body limit the settings allow: small bodies reach it


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request, tmp_path):
    settings = plan_small_cohort(make_settings(fresh_database(request.param, tmp_path), max_body_bytes=LIMIT))
    tokens = {role: new_token(settings, f"limits-{role}", role) for role in ROLES}
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.tokens = tokens
        yield test_client


def _referral(patient_id: str, **extra) -> dict:
    return {"id": patient_id, "centre": "liverpool", "pathway": "axi-cel", "approval_date": "2027-01-11", **extra}


def _padded(body: dict, size: int) -> bytes:
    """``body`` as JSON, padded with trailing spaces (still the same JSON) to exactly ``size`` bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def _patients(client) -> set[str]:
    response = client.get("/patients", params={"limit": 200}, headers=auth(client, "coordinator"))
    body = response.json()
    return {p["id"] for p in (body["patients"] if isinstance(body, dict) else body)}


def _post(client, path: str, content: bytes, role: str = "coordinator"):
    headers = {**auth(client, role), "Content-Type": "application/json"}
    return client.post(path, content=content, headers=headers)


def test_a_body_at_the_limit_is_taken_and_one_byte_more_is_refused(client):
    before = _patients(client)
    taken = _post(client, "/patients", _padded(_referral("LIM-AT"), LIMIT))
    assert taken.status_code == 201, taken.text
    refused = _post(client, "/patients", _padded(_referral("LIM-PAST"), LIMIT + 1))
    assert refused.status_code == 413
    assert str(LIMIT) in refused.json()["detail"]
    assert _patients(client) == before | {"LIM-AT"}


def test_a_streamed_body_without_a_length_is_counted_too(client):
    raw = _padded(_referral("LIM-STREAM"), 3 * LIMIT)

    def chunks():
        for start in range(0, len(raw), 8192):
            yield raw[start : start + 8192]

    headers = {**auth(client, "coordinator"), "Content-Type": "application/json"}
    response = client.post("/patients", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert "LIM-STREAM" not in _patients(client)


def _blackouts(n: int, reason: str = "") -> list[dict]:
    return [
        {
            "first_day": f"2027-{3 + i // 28:02d}-{1 + i % 28:02d}",
            "last_day": f"2027-{3 + i // 28:02d}-{1 + i % 28:02d}",
        }
        | ({"reason": reason} if reason else {})
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("name", "at_limit", "past_limit", "field"),
    [
        (
            "blackouts",
            {"blackouts": _blackouts(MAX_BLACKOUTS)},
            {"blackouts": _blackouts(MAX_BLACKOUTS + 1)},
            "body.blackouts",
        ),
        (
            "a blackout's reason",
            {"blackouts": _blackouts(1, "r" * MAX_BLACKOUT_REASON)},
            {"blackouts": _blackouts(1, "r" * (MAX_BLACKOUT_REASON + 1))},
            "body.blackouts[0].reason",
        ),
        ("a centre's id", {"centre": "c" * 64}, {"centre": "c" * 65}, "body.centre"),
        ("a pathway's id", {"pathway": "p" * 64}, {"pathway": "p" * 65}, "body.pathway"),
        (
            "last doses",
            {"last_doses": {f"agent_{i}": "2026-12-01" for i in range(MAX_MAP_ENTRIES)}},
            {"last_doses": {f"agent_{i}": "2026-12-01" for i in range(MAX_MAP_ENTRIES + 1)}},
            "body.last_doses",
        ),
        (
            "an agent's id",
            {"last_doses": {"a" * 64: "2026-12-01"}},
            {"last_doses": {"a" * 65: "2026-12-01"}},
            "body.last_doses.<key>",
        ),
    ],
)
def test_referral_limits(client, name, at_limit, past_limit, field):
    """At the limit the size is not what is refused (a 201, or another field's 422); one past, the field
    is named with its limit and nothing is stored."""
    at = client.post("/patients", json=_referral("LIM-A", **at_limit), headers=auth(client, "coordinator"))
    assert at.status_code in (201, 422), at.text
    if at.status_code == 422:
        assert all(e["field"] != field for e in at.json()["detail"]), at.text
    past = client.post("/patients", json=_referral("LIM-P", **past_limit), headers=auth(client, "coordinator"))
    assert past.status_code == 422, past.text
    problems = [e["problem"] for e in past.json()["detail"] if e["field"] == field]
    assert problems and "at most" in problems[0], past.text
    assert "LIM-P" not in _patients(client)


def test_a_map_of_more_entries_than_any_pathway_has_steps_is_refused(client):
    durations = {f"step_{i}": 2 for i in range(MAX_MAP_ENTRIES + 1)}
    response = client.patch("/patients/S-AXI-1", json={"durations": durations}, headers=auth(client, "coordinator"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["detail"]] == ["body.durations"]
    at_limit = {f"step_{i}": 2 for i in range(MAX_MAP_ENTRIES)}
    response = client.patch("/patients/S-AXI-1", json={"durations": at_limit}, headers=auth(client, "coordinator"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["problem"].endswith("has no step 'step_0'")  # the catalogue's refusal


def test_a_reason_at_its_limit_is_kept_and_one_character_more_refused(client):
    past = client.post(
        "/patients/S-AXI-1/withdraw", json={"reason": "w" * (MAX_REASON + 1)}, headers=auth(client, "coordinator")
    )
    assert past.status_code == 422
    assert past.json()["detail"][0]["field"] == "body.reason"
    at = client.post(
        "/patients/S-AXI-1/withdraw", json={"reason": "w" * MAX_REASON}, headers=auth(client, "coordinator")
    )
    assert at.status_code == 200, at.text
    events = client.get("/patients/S-AXI-1/timeline", headers=auth(client, "coordinator")).json()["events"]
    assert any("w" * MAX_REASON in json.dumps(event) for event in events)


def test_a_confirmation_note_and_a_replan_reason_at_their_limit_are_taken_and_one_character_more_refused(client):
    coordinator = auth(client, "coordinator")
    for path, body, field in (
        ("/patients/S-AXI-1/confirmations", {"note": "n" * (MAX_REASON + 1)}, "body.note"),
        ("/replan", {"patients": ["S-AXI-1"], "reason": "r" * (MAX_REASON + 1)}, "body.reason"),
        ("/patients/S-AXI-1/reinstate", {"reason": "r" * (MAX_REASON + 1)}, "body.reason"),
    ):
        past = client.post(path, json=body, headers=coordinator)
        assert past.status_code == 422 and past.json()["detail"][0]["field"] == field, (path, past.text)
    at = client.post("/patients/S-AXI-1/confirmations", json={"note": "n" * MAX_REASON}, headers=coordinator)
    assert at.status_code == 201 and at.json()["note"] == "n" * MAX_REASON, at.text
    at = client.post("/replan", json={"patients": ["NOPE-1"], "reason": "r" * MAX_REASON}, headers=coordinator)
    assert at.status_code == 404, at.text  # taken, then refused for the patient nobody referred


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/patients/S-AXI-1", "GET, OPTIONS, PATCH"),
        ("/patients", "GET, OPTIONS, POST"),
        ("/capacity/changes/1", "DELETE, OPTIONS"),
        ("/static/css/app.css", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_and_405_name_every_method_of_the_path(client, path, methods):
    options = client.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == methods
    if "PUT" not in methods:
        refused = client.put(path, json={}, headers=auth(client, "admin"))
        assert refused.status_code == 405
        assert refused.headers["allow"] == methods


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"resource": "r" * 128}, 404),  # taken as a name, and no resource has it
        ({"resource": "r" * 129}, 422),
    ],
)
def test_a_resource_name_at_its_limit_is_looked_up_and_one_character_more_refused(client, body, status):
    window = {"from": "2027-01-04", "to": "2027-01-10"}
    response = client.get("/capacity", params=window | body, headers=auth(client, "coordinator"))
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["detail"][0]["field"] == "query.resource"


def test_a_replan_of_more_patients_than_the_limit_is_refused_before_any_solve(client):
    many = [f"S-X-{i}" for i in range(201)]
    response = client.post("/replan", json={"patients": many}, headers=auth(client, "coordinator"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body.patients"
    at_limit = client.post("/replan", json={"patients": many[:200]}, headers=auth(client, "coordinator"))
    assert at_limit.status_code == 404, at_limit.text  # taken, then refused for the patients nobody referred
