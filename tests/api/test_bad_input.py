"""Bad input gets a clear refusal, never a server error, and changes nothing.

Each case in ``CASES`` is a request a hurried or mistaken user could send: a
date typed the US way, a pathway that does not exist, an NHS number with a typo,
a closure that ends before it starts. Each must get 400/404/409/422 (the one the
case names) with a body that says which field is wrong and why, or which thing
does not exist; and the patients, the current plan, the capacity changes and the
audit log must be exactly as they were before.

NHS numbers are personal data: they are validated and stored, but never shown in
an answer nor written to the audit log, valid or not.

One database per backend for the whole module: every case is refused, so the
database stays as the fixture made it (the NHS test adds patients of its own).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from pathway.nhs import normalise_nhs_number
from tests.builders import auth, fresh_database, prepared_site

NOTHING = object()
UNKNOWN_PROPOSAL = "0" * 32
VALID_NHS = "943 476 5919"  # a valid NHS number (modulus 11), as people write it
VALID_NHS_2 = "401 023 2137"
TYPO_NHS = "9434765918"  # the same number with the last digit mistyped


def referral(**changes: Any) -> dict[str, Any]:
    """A valid referral with ``changes``; a change to NOTHING removes the key."""
    body = {"id": "BAD-1", "centre": "liverpool", "pathway": "axi-cel", "approval_date": "2027-01-11"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not NOTHING}


def change(**changes: Any) -> dict[str, Any]:
    """A valid capacity change (one apheresis machine fewer for two days) with ``changes``."""
    body = {
        "resource": "apheresis_machine",
        "centre": "liverpool",
        "first_day": "2027-02-01",
        "last_day": "2027-02-02",
        "capacity": 2,
        "reason": "service visit",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not NOTHING}


@dataclass(frozen=True)
class Bad:
    name: str
    method: str
    path: str
    role: str
    status: int
    field: str | None = None  # 422: one entry of the answer names this field
    says: str = ""  # what the answer says (the problem, or the thing that does not exist)
    json: Any = NOTHING
    params: dict[str, Any] | None = None
    content: bytes | None = None
    secret: str | None = None  # must not appear anywhere in the answer


def register(name: str, status: int, field: str | None, says: str, secret: str | None = None, **changes: Any) -> Bad:
    return Bad(name, "POST", "/patients", "coordinator", status, field, says, json=referral(**changes), secret=secret)


def edit(
    name: str, body: Any, status: int, field: str | None, says: str, patient: str = "S-AXI-1", secret: str | None = None
) -> Bad:
    return Bad(name, "PATCH", f"/patients/{patient}", "coordinator", status, field, says, json=body, secret=secret)


def closure(name: str, field: str, says: str, **changes: Any) -> Bad:
    return Bad(
        f"capacity change: {name}", "POST", "/capacity/changes", "lab_manager", 422, field, says, json=change(**changes)
    )


def capacity(
    name: str, params: dict[str, Any], status: int, field: str | None, says: str, path: str = "/capacity"
) -> Bad:
    return Bad(f"capacity view: {name}", "GET", path, "lab_manager", status, field, says, params=params)


CASES = [
    # -- dates: ISO YYYY-MM-DD only, real calendar dates, in a sane range --------------------------------
    register("date as a number", 422, "approval_date", "YYYY-MM-DD", approval_date=0),
    register("date as digits", 422, "approval_date", "YYYY-MM-DD", approval_date=20270111),
    register("month 13", 422, "approval_date", "not a real calendar date", approval_date="2027-13-01"),
    register("30 February", 422, "approval_date", "not a real calendar date", approval_date="2027-02-30"),
    register("date written dd/mm/yyyy", 422, "approval_date", "YYYY-MM-DD", approval_date="01/02/2027"),
    register("date without leading zeros", 422, "approval_date", "YYYY-MM-DD", approval_date="2027-1-5"),
    register("date with a time", 422, "approval_date", "YYYY-MM-DD", approval_date="2027-01-11T09:00:00"),
    register("year 9999", 422, "approval_date", "outside the years", approval_date="9999-12-31"),
    register("year 1", 422, "approval_date", "outside the years", approval_date="0001-01-01"),
    register("no approval date", 422, "approval_date", "Field required", approval_date=NOTHING),
    register("earliest start dd/mm/yyyy", 422, "earliest_start", "YYYY-MM-DD", earliest_start="01/02/2027"),
    register("target date as 0", 422, "target_infusion_date", "YYYY-MM-DD", target_infusion_date=0),
    register(
        "last dose month 13",
        422,
        "last_doses.checkpoint_inhibitor",
        "not a real calendar date",
        last_doses={"checkpoint_inhibitor": "2027-13-01"},
    ),
    register(
        "last dose in year 9999",
        422,
        "last_doses.checkpoint_inhibitor",
        "outside the years",
        last_doses={"checkpoint_inhibitor": "9999-12-31"},
    ),
    register(
        "blackout dd/mm/yyyy",
        422,
        "blackouts[0].last_day",
        "YYYY-MM-DD",
        blackouts=[{"first_day": "2027-02-01", "last_day": "02/02/2027"}],
    ),
    register(
        "blackout ends before it starts",
        422,
        "blackouts[0]",
        "last_day is before first_day",
        blackouts=[{"first_day": "2027-02-03", "last_day": "2027-02-01"}],
    ),
    register(
        "target date before approval",
        422,
        "target_infusion_date",
        "before the approval date",
        target_infusion_date="2027-01-05",
    ),
    # -- what the referral names must exist ----------------------------------------------------------------
    register("unknown pathway", 422, "pathway", "unknown pathway 'yescarta-x'", pathway="yescarta-x"),
    register("unknown centre", 422, "centre", "unknown centre 'manchester'", centre="manchester"),
    register("empty centre", 422, "centre", "at least 1 character", centre=""),
    register("unknown urgency", 422, "urgency", "'routine', 'soon' or 'urgent'", urgency="whenever"),
    register(
        "washout for an unknown agent",
        422,
        "last_doses.aspirin",
        "no washout rule",
        last_doses={"aspirin": "2027-01-01"},
    ),
    # -- patient ids are pseudonymous ------------------------------------------------------------------------
    register("digits-only id", 422, "id", "NHS or hospital number", id="1234567890"),
    register("digits-only id with dashes", 422, "id", "NHS or hospital number", id="123-456-7890"),
    register("id too short", 422, "id", "pattern", id="ab"),
    register("id with spaces", 422, "id", "pattern", id="S AXI 9"),
    register("id too long", 422, "id", "pattern", id="P" * 40),
    register("duplicate id", 409, None, "'S-AXI-1' exists already", id="S-AXI-1"),
    # -- NHS numbers: modulus 11, never echoed ---------------------------------------------------------------
    register("NHS number check digit wrong", 422, "nhs_number", "modulus 11", secret=TYPO_NHS, nhs_number=TYPO_NHS),
    register(
        "NHS number check digit 10", 422, "nhs_number", "modulus 11", secret="1234567890", nhs_number="123 456 7890"
    ),
    register("NHS number of 9 digits", 422, "nhs_number", "10 digits", secret="943476591", nhs_number="943476591"),
    register("NHS number with letters", 422, "nhs_number", "10 digits", secret="94347659AB", nhs_number="94347659AB"),
    # -- step durations within the catalogue's range ---------------------------------------------------------
    register(
        "apheresis of 5 days (1..4)", 422, "durations.apheresis", "outside the allowed 1..4", durations={"apheresis": 5}
    ),
    register("apheresis of 0 days", 422, "durations.apheresis", "outside the allowed 1..4", durations={"apheresis": 0}),
    register("negative duration", 422, "durations.apheresis", "outside the allowed", durations={"apheresis": -1}),
    register("huge duration", 422, "durations.apheresis", "outside the allowed", durations={"apheresis": 10**30}),
    register(
        "fixed manufacture changed",
        422,
        "durations.manufacture",
        "outside the allowed 28..28",
        durations={"manufacture": 40},
    ),
    register(
        "duration of a step the pathway lacks",
        422,
        "durations.teleport",
        "has no step 'teleport'",
        durations={"teleport": 1},
    ),
    register("duration in words", 422, "durations.apheresis", "valid integer", durations={"apheresis": "two"}),
    # -- unknown fields refused, the body must be a JSON object -----------------------------------------------
    register("unknown field", 422, "colour", "Extra inputs are not permitted", colour="red"),
    register(
        "unknown field in a blackout",
        422,
        "blackouts[0].why",
        "Extra inputs",
        blackouts=[{"first_day": "2027-02-01", "last_day": "2027-02-02", "why": "x"}],
    ),
    Bad("body is a list", "POST", "/patients", "coordinator", 422, "body", "valid dictionary", json=[referral()]),
    Bad("body is not JSON", "POST", "/patients", "coordinator", 422, "body", "JSON", content=b'{"id": "BAD-1",'),
    Bad(
        "body is not UTF-8",
        "POST",
        "/patients",
        "coordinator",
        400,
        None,
        "parsing the body",
        content=b'{"id": "\xff\xfe"}',
    ),
    # -- edits -----------------------------------------------------------------------------------------------------
    edit("edit: month 13", {"approval_date": "2027-13-01"}, 422, "approval_date", "not a real calendar date"),
    edit("edit: remove the pathway", {"pathway": None}, 422, "pathway", "cannot be removed"),
    edit("edit: unknown centre", {"centre": "manchester"}, 422, "centre", "unknown centre"),
    edit(
        "edit: target before approval",
        {"target_infusion_date": "2026-12-01"},
        422,
        "target_infusion_date",
        "before the approval date",
    ),
    edit(
        "edit: duration out of range",
        {"urgency": "urgent", "durations": {"apheresis": 9}},
        422,
        "durations.apheresis",
        "outside the allowed",
    ),
    edit("edit: NHS number typo", {"nhs_number": TYPO_NHS}, 422, "nhs_number", "modulus 11", secret=TYPO_NHS),
    edit("edit: unknown field", {"bogus": 1}, 422, "bogus", "Extra inputs"),
    edit("edit: pathway of a booked patient", {"pathway": "cilta-cel"}, 409, None, "cannot change"),
    edit("edit: unknown patient", {"urgency": "soon"}, 404, None, "no patient 'NOPE-1'", patient="NOPE-1"),
    # -- capacity changes ----------------------------------------------------------------------------------------
    closure("unknown resource", "resource", "no resource 'teleporter'", resource="teleporter"),
    closure("resource at an unknown centre", "resource", "at centre 'manchester'", centre="manchester"),
    closure("ends before it starts", "last_day", "last_day is before first_day", last_day="2027-01-31"),
    closure("negative capacity", "capacity", "greater than or equal to 0", capacity=-1),
    closure("capacity beyond any resource", "capacity", "less than or equal to", capacity=10**12),
    closure("capacity in words", "capacity", "valid integer", capacity="many"),
    closure("first day dd/mm/yyyy", "first_day", "YYYY-MM-DD", first_day="01/02/2027"),
    closure("closure into year 9999", "last_day", "outside the years", last_day="9999-12-31"),
    closure("no reason", "reason", "Field required", reason=NOTHING),
    closure("empty reason", "reason", "at least 1 character", reason=""),
    closure("NUL in the reason", "reason", "NUL", reason="broken\x00pump"),
    closure("unknown field", "note", "Extra inputs", note="x"),
    Bad(
        "withdraw an unknown change",
        "DELETE",
        "/capacity/changes/999999",
        "lab_manager",
        404,
        None,
        "no capacity change 999999",
    ),
    Bad(
        "withdraw change 0",
        "DELETE",
        "/capacity/changes/0",
        "lab_manager",
        422,
        "change_id",
        "greater than or equal to 1",
    ),
    Bad(
        "replan an unknown change",
        "POST",
        "/capacity/changes/999999/replan",
        "lab_manager",
        404,
        None,
        "no capacity change 999999",
    ),
    # -- capacity views -------------------------------------------------------------------------------------------
    capacity("range of 367 days", {"from": "2027-01-01", "to": "2028-01-02"}, 422, "to", "at most 366 days"),
    capacity(
        "csv range of 367 days",
        {"from": "2027-01-01", "to": "2028-01-02"},
        422,
        "to",
        "at most 366 days",
        "/capacity.csv",
    ),
    capacity("to before from", {"from": "2027-02-01", "to": "2027-01-31"}, 422, "to", "before from"),
    capacity("from month 13", {"from": "2027-13-01"}, 422, "from", "not a real calendar date"),
    capacity("from as 0", {"from": "0"}, 422, "from", "YYYY-MM-DD"),
    capacity("from in year 9999", {"from": "9999-12-31"}, 422, "from", "outside the years"),
    capacity("unknown resource", {"resource": "teleporter"}, 404, None, "no resource 'teleporter'"),
    # -- unknown patients, proposals, plan versions ---------------------------------------------------------------
    Bad("unknown patient", "GET", "/patients/NOPE-1", "coordinator", 404, None, "no patient 'NOPE-1'"),
    Bad(
        "timeline of an unknown patient",
        "GET",
        "/patients/NOPE-1/timeline",
        "coordinator",
        404,
        None,
        "no patient 'NOPE-1'",
    ),
    Bad(
        "calendar of an unknown patient",
        "GET",
        "/patients/NOPE-1/calendar.ics",
        "coordinator",
        404,
        None,
        "no patient 'NOPE-1'",
    ),
    Bad(
        "proposal for an unknown patient",
        "POST",
        "/patients/NOPE-1/proposals",
        "coordinator",
        404,
        None,
        "no patient 'NOPE-1'",
    ),
    Bad(
        "withdraw an unknown patient",
        "POST",
        "/patients/NOPE-1/withdraw",
        "coordinator",
        404,
        None,
        "no patient 'NOPE-1'",
        json={"reason": "x"},
    ),
    Bad(
        "defer an unknown patient",
        "POST",
        "/patients/NOPE-1/defer",
        "coordinator",
        404,
        None,
        "no patient 'NOPE-1'",
        json={"from_date": "2027-03-01", "reason": "x"},
    ),
    Bad(
        "unknown patient out of specification",
        "POST",
        "/patients/NOPE-1/out-of-specification",
        "coordinator",
        404,
        None,
        "no patient 'NOPE-1'",
        json={"redo": "re-apheresis", "reason": "x"},
    ),
    Bad("patient id with dots", "GET", "/patients/S.AXI.1", "coordinator", 422, "patient_id", "pattern"),
    Bad(
        "confirm an unknown proposal",
        "POST",
        f"/proposals/{UNKNOWN_PROPOSAL}/confirm",
        "coordinator",
        404,
        None,
        f"no proposal '{UNKNOWN_PROPOSAL}'",
        json={"option": 0},
    ),
    Bad("read an unknown proposal", "GET", f"/proposals/{UNKNOWN_PROPOSAL}", "coordinator", 404, None, "no proposal"),
    Bad(
        "malformed proposal id",
        "POST",
        "/proposals/not-a-proposal/confirm",
        "coordinator",
        422,
        "proposal_id",
        "pattern",
        json={"option": 0},
    ),
    Bad(
        "negative option",
        "POST",
        f"/proposals/{UNKNOWN_PROPOSAL}/confirm",
        "coordinator",
        422,
        "option",
        "greater than or equal to 0",
        json={"option": -1},
    ),
    Bad(
        "option 99",
        "POST",
        f"/proposals/{UNKNOWN_PROPOSAL}/confirm",
        "coordinator",
        422,
        "option",
        "less than or equal to 20",
        json={"option": 99},
    ),
    Bad(
        "diff to an unknown version",
        "GET",
        "/plans/diff",
        "coordinator",
        404,
        None,
        "no plan version 99",
        params={"from": 1, "to": 99},
    ),
    Bad(
        "diff from an unknown version",
        "GET",
        "/plans/diff",
        "coordinator",
        404,
        None,
        "no plan version 99",
        params={"from": 99, "to": 1},
    ),
    Bad("diff without 'to'", "GET", "/plans/diff", "coordinator", 422, "to", "Field required", params={"from": 1}),
    Bad(
        "diff from a word",
        "GET",
        "/plans/diff",
        "coordinator",
        422,
        "from",
        "valid integer",
        params={"from": "first", "to": 1},
    ),
    Bad("unknown plan version", "GET", "/plans/99", "coordinator", 404, None, "no plan version 99"),
    Bad("plan version 0", "GET", "/plans/0", "coordinator", 422, "version_id", "greater than or equal to 1"),
    Bad(
        "plans from offset 2**63",
        "GET",
        "/plans",
        "coordinator",
        422,
        "offset",
        "less than or equal to",
        params={"offset": 2**63},
    ),
    Bad(
        "patients of an unknown status",
        "GET",
        "/patients",
        "coordinator",
        422,
        "status",
        "should be 'referred'",
        params={"status": "lost"},
    ),
    Bad("audit page of 0", "GET", "/audit", "admin", 422, "limit", "greater than or equal to 1", params={"limit": 0}),
    Bad("audit entity with NUL", "GET", "/audit", "admin", 422, "entity", "NUL", params={"entity": "patient\x00"}),
    # -- deferral, out of specification, withdrawal ---------------------------------------------------------------
    Bad(
        "defer into the past",
        "POST",
        "/patients/S-AXI-3/defer",
        "coordinator",
        422,
        "from_date",
        "in the past",
        json={"from_date": "2026-12-01", "reason": "infection"},
    ),
    Bad(
        "defer to dd/mm/yyyy",
        "POST",
        "/patients/S-AXI-3/defer",
        "coordinator",
        422,
        "from_date",
        "YYYY-MM-DD",
        json={"from_date": "01/03/2027", "reason": "infection"},
    ),
    Bad(
        "defer without a reason",
        "POST",
        "/patients/S-AXI-3/defer",
        "coordinator",
        422,
        "reason",
        "Field required",
        json={"from_date": "2027-03-01"},
    ),
    Bad(
        "defer with a 501-character reason",
        "POST",
        "/patients/S-AXI-3/defer",
        "coordinator",
        422,
        "reason",
        "at most 500 characters",
        json={"from_date": "2027-03-01", "reason": "x" * 501},
    ),
    Bad(
        "unknown redo",
        "POST",
        "/patients/S-AXI-3/out-of-specification",
        "coordinator",
        422,
        "redo",
        "re-apheresis",
        json={"redo": "re-nothing", "reason": "failed release"},
    ),
    Bad(
        "re-manufacture without a manufacture step",
        "POST",
        "/patients/S-ASCT-1/out-of-specification",
        "coordinator",
        422,
        "redo",
        "has no manufacture step",
        json={"redo": "re-manufacture", "reason": "failed"},
    ),
    Bad(
        "out of specification before collection",
        "POST",
        "/patients/S-AXI-3/out-of-specification",
        "coordinator",
        409,
        None,
        "apheresis has not started",
        json={"redo": "re-apheresis", "reason": "failed release"},
    ),
    Bad(
        "withdraw with an empty reason",
        "POST",
        "/patients/S-AXI-3/withdraw",
        "coordinator",
        422,
        "reason",
        "at least 1 character",
        json={"reason": ""},
    ),
    Bad(
        "withdraw with NUL in the reason",
        "POST",
        "/patients/S-AXI-3/withdraw",
        "coordinator",
        422,
        "reason",
        "NUL",
        json={"reason": "moved\x00away"},
    ),
    # -- re-plans and the catalogue ---------------------------------------------------------------------------------
    Bad("replan nobody", "POST", "/replan", "coordinator", 422, "patients", "at least 1 item", json={"patients": []}),
    Bad(
        "replan an unknown patient",
        "POST",
        "/replan",
        "coordinator",
        404,
        None,
        "no patient 'NOPE-1'",
        json={"patients": ["S-AXI-1", "NOPE-1"]},
    ),
    Bad(
        "replan a malformed id",
        "POST",
        "/replan",
        "coordinator",
        422,
        "patients[0]",
        "pattern",
        json={"patients": ["S AXI 1"]},
    ),
    Bad("catalogue of an unknown kind", "PUT", "/catalogue/drugs", "admin", 422, "kind", "pattern", json={"name": "x"}),
    Bad(
        "site without its fields",
        "PUT",
        "/catalogue/site",
        "admin",
        422,
        "name",
        "Field required",
        json={"centres": ["liverpool"]},
    ),
]


def _check_answer(case: Bad, response) -> None:
    assert response.status_code == case.status, response.text
    if case.secret:
        assert case.secret not in response.text
        assert case.secret.replace(" ", "") not in response.text
    detail = response.json()["detail"]
    if case.status == 422:
        assert isinstance(detail, list) and detail, detail
        for entry in detail:
            assert set(entry) == {"field", "problem"} and entry["field"] and entry["problem"], entry
        named = [e for e in detail if case.field in e["field"]]
        assert named, f"no error names {case.field!r}: {detail}"
        assert any(case.says in e["problem"] for e in named), f"{case.says!r} not said about {case.field!r}: {detail}"
    else:
        assert isinstance(detail, str) and case.says in detail, detail


def _snapshot(client) -> tuple[Any, ...]:
    admin = auth(client, "admin")
    return (
        client.get("/patients", headers=admin).json(),
        client.get("/plans/current", headers=admin).json(),
        [p["id"] for p in client.get("/plans", headers=admin).json()],
        client.get("/capacity/changes", headers=admin).json(),
        len(client.get("/audit", params={"limit": 1000}, headers=admin).json()),
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request, tmp_path_factory):
    from fastapi.testclient import TestClient

    from api.app import create_app

    url = fresh_database(request.param, tmp_path_factory.mktemp("bad-input"))
    settings, tokens = prepared_site(url, "bad-input")
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.tokens = tokens
        yield test_client


def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_refused_clearly_and_changes_nothing(client, case: Bad):
    before = _snapshot(client)
    kwargs: dict[str, Any] = {"params": case.params, "headers": auth(client, case.role)}
    if case.content is not None:
        kwargs["content"] = case.content
        kwargs["headers"] = kwargs["headers"] | {"Content-Type": "application/json"}
    elif case.json is not NOTHING:
        kwargs["json"] = case.json
    response = client.request(case.method, case.path, **kwargs)
    _check_answer(case, response)
    assert _snapshot(client) == before


def test_a_range_of_366_days_is_accepted(client):
    """The limit is inclusive: one year and a day (2027 has 365 days) is the longest range."""
    params = {"from": "2027-01-01", "to": "2028-01-01", "resource": "bed"}
    response = client.get("/capacity", params=params, headers=auth(client, "lab_manager"))
    assert response.status_code == 200, response.text
    assert len(response.json()["cells"]) == 366


def test_nhs_number_is_stored_but_never_shown_nor_audited(client, caplog):
    """Register with a valid NHS number: nothing the API answers, nor the audit log, nor the logs
    contain it, whichever way it is written; a second referral with the same number is refused
    (409) without showing it, and so is an edit giving another patient that number, whose other
    changes are not stored either."""
    caplog.set_level(logging.DEBUG)
    digits = normalise_nhs_number(VALID_NHS)
    digits_2 = normalise_nhs_number(VALID_NHS_2)
    forms = {digits, VALID_NHS, f"{digits[:3]}-{digits[3:6]}-{digits[6:]}", digits_2, VALID_NHS_2}
    coordinator, admin = auth(client, "coordinator"), auth(client, "admin")

    response = client.post("/patients", json=referral(id="NHS-1", nhs_number=VALID_NHS), headers=coordinator)
    assert response.status_code == 201, response.text
    assert response.json()["nhs_number_recorded"] is True
    answers = [response.text]

    before = _snapshot(client)
    for body in (
        referral(id="NHS-2", nhs_number=digits),
        referral(id="NHS-2", nhs_number=f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"),
    ):
        response = client.post("/patients", json=body, headers=coordinator)
        assert response.status_code == 409, response.text
        assert "NHS number" in response.json()["detail"]
        answers.append(response.text)
    response = client.patch(
        "/patients/S-INH-1", json={"urgency": "routine", "nhs_number": VALID_NHS}, headers=coordinator
    )
    assert response.status_code == 409, response.text
    answers.append(response.text)
    assert _snapshot(client) == before  # S-INH-1 is still urgent

    response = client.patch("/patients/S-INH-1", json={"nhs_number": VALID_NHS_2}, headers=coordinator)
    assert response.status_code == 200, response.text
    assert response.json()["nhs_number_recorded"] is True
    answers.append(response.text)
    response = client.patch("/patients/S-INH-1", json={"nhs_number": None}, headers=coordinator)
    assert response.status_code == 200 and response.json()["nhs_number_recorded"] is False, response.text
    answers.append(response.text)

    for path in (
        "/patients",
        "/patients/NHS-1",
        "/patients/NHS-1/timeline",
        "/patients/NHS-1/calendar.ics",
        "/patients/S-INH-1",
    ):
        answers.append(client.get(path, headers=coordinator).text)
    audit = client.get("/audit", params={"limit": 1000}, headers=admin)
    assert audit.status_code == 200
    answers.append(audit.text)
    for answer in answers:
        for form in forms:
            assert form not in answer
    for record in caplog.records:
        for form in forms:
            assert form not in record.getMessage()

    # the audit log says that a number was given, changed and removed, without the number
    rows = client.get("/audit", params={"entity": "patient", "entity_id": "NHS-1"}, headers=admin).json()
    assert rows[-1]["action"] == "patient.register" and rows[-1]["after"]["nhs_number"] == "<set>"
    edits = client.get("/audit", params={"entity": "patient", "entity_id": "S-INH-1"}, headers=admin).json()
    assert [(e["before"]["nhs_number"], e["after"]["nhs_number"]) for e in edits[:2]] == [
        ("<set>", None),
        (None, "<set>"),
    ]
