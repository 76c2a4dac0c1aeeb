"""NHS numbers typed where they do not belong are refused, never stored and never echoed.

Reasons, notes and codes are kept for ever (the audit log is append-only, events and
timelines repeat them), so a number typed into one could never be erased. Every text a
client can send, found by walking the OpenAPI document rather than listed by hand (a
new field is swept the day it is added), is sent holding a valid NHS number: the answer
must be a 422 naming that field and saying why, the number must appear nowhere in the
answer, and the audit log must not have grown. The one field made for the number
(``nhs_number``) is the exception.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from api.db import AuditEntry
from pathway.nhs import SCREENED, first_mention, mentions_nhs_number
from tests.builders import auth

NHS = "943 476 5919"  # valid (modulus 11)
IN_TEXT = f"patient {NHS} moved to another trust"
IN_CODE = "R" + NHS.replace(" ", "")  # fits an id's or a code's pattern, still holds the number
PATH_VALUES = {
    "patient_id": "S-AXI-1",
    "proposal_id": "0" * 32,
    "kind": "pathways",
    "secret": "x",
    "step": "apheresis",
} | dict.fromkeys(("change_id", "version_id", "run_id", "link_id", "product_id"), "1")


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("9434765919", True),
        ("943 476 5919", True),
        ("943-476-5919", True),
        ("moved: 943 476 5919.", True),
        ("ref 12 943 476 5919", True),  # inside a longer run of groups
        ("R9434765919", True),  # letters around it do not hide it
        ("943  476  5919", True),  # two spaces
        ("943\u00a0476\u00a05919", True),  # no-break spaces, as a word processor pastes them
        ("943\t476\t5919", True),
        ("943.476.5919", True),
        ("943/476/5919", True),
        ("943 - 476 - 5919", True),
        ("\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19", True),  # full-width digits
        ("94347 65919", True),
        ("closed 2027-01-04 10 30", False),  # a date and a time: groups of two digits
        ("9434765918", False),  # the check digit does not hold
        ("123456789012", False),  # ten digits inside a longer unbroken number
        ("0151 706 2000", False),  # a phone number: 11 digits
        ("dose 10 mg on 12 03", False),
        ("", False),
    ],
)
def test_what_reads_as_an_nhs_number(text, mentions):
    assert mentions_nhs_number(text) is mentions


def test_a_document_is_searched_in_keys_and_values():
    assert first_mention({"templates": [{"id": "x", "notes": IN_TEXT}]}) == "templates[0].notes"
    assert first_mention({"a": {NHS: 1}}) == "a.<key>"
    assert first_mention({"templates": [{"id": "x"}]}) is None


def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _texts(schema: dict, components: dict, path: tuple) -> list[tuple[tuple, dict]]:
    """Every place in a request body schema that takes text: (path of keys and list indexes, its schema).
    A map's keys are a place too (path ending in ``<key>``)."""
    schema = _resolve(schema, components)
    choices = [_resolve(s, components) for s in schema.get("anyOf", [schema])]
    out = []
    for choice in choices:
        kind = choice.get("type")
        if kind == "string" and "enum" not in choice and choice.get("format") != "date":
            out.append((path, choice))
        elif kind == "array" and "items" in choice:
            out += _texts(choice["items"], components, (*path, 0))
        elif kind == "object":
            for name, sub in choice.get("properties", {}).items():
                if name != "nhs_number":
                    out += _texts(sub, components, (*path, name))
            if choice.get("patternProperties"):
                out.append(((*path, "<key>"), {"pattern": next(iter(choice["patternProperties"]))}))
    return out


def _body(path: tuple, value: str) -> Any:
    """The smallest body that puts ``value`` at ``path`` (the other fields missing: each named apart)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "<key>":
        return {value: "2027-01-01"}
    if isinstance(head, int):
        return [_body(rest, value)]
    return {head: _body(rest, value)}


def _field(path: tuple) -> str:
    out = "body"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _value(schema: dict) -> str:
    """Free text, or for a field with a pattern (an id, a code) a value that fits it and holds the number."""
    return IN_CODE if "pattern" in schema else IN_TEXT


def _fits(schema: dict, value: str) -> bool:
    return re.search(schema["pattern"], value) is not None if "pattern" in schema else True


def _sweep(openapi: dict) -> list[tuple[str, str, str, dict, bool]]:
    """(method, url, field, request kwargs, whether the value fits the field's pattern) for every text of
    every operation's body and query. A value that does not fit (a field that takes a list of words) is
    refused by its pattern before any screening."""
    components = openapi["components"]["schemas"]
    cases = []
    for template, item in openapi["paths"].items():
        url = template.format(**PATH_VALUES)
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            for path, schema in _texts(body, components, ()) if body else []:
                value = _value(schema)
                cases.append((method, url, _field(path), {"json": _body(path, value)}, _fits(schema, value)))
            for parameter in operation.get("parameters", []):
                texts = _texts(parameter["schema"], components, ())
                if parameter["in"] == "query" and texts:
                    value = _value(texts[0][1])
                    params = {"params": {parameter["name"]: value}}
                    cases.append((method, url, f"query.{parameter['name']}", params, _fits(texts[0][1], value)))
    return cases


def _audit_rows(client) -> int:
    with client.app.state.runtime.database.read() as work:
        return work.session.scalar(select(func.count()).select_from(AuditEntry))


def test_every_text_field_refuses_an_nhs_number_without_echoing_it(client):
    cases = _sweep(client.app.openapi())
    fields = {case[2] for case in cases}
    # the texts of today's API, so that the sweep is known to reach them (a new one joins by itself)
    assert {
        "body.reason",
        "body.blackouts[0].reason",
        "body.centre",
        "body.pathway",
        "body.id",
        "body.last_doses.<key>",
        "body.durations.<key>",
        "body.patients[0]",
        "body.resource",
        "query.resource",
        "query.entity_id",
    } <= fields
    audit_before = _audit_rows(client)
    for method, url, field, kwargs, reaches_screen in cases:
        response = client.request(method.upper(), url, headers=auth(client, "admin"), **kwargs)
        where = f"{method.upper()} {url} {field}"
        assert response.status_code == 422, f"{where}: {response.status_code} {response.text}"
        assert NHS.replace(" ", "") not in response.text.replace(" ", ""), f"{where} echoes the number"
        problems = [e["problem"] for e in response.json()["detail"] if e["field"] == field]
        assert problems, f"{where}: no error names the field: {response.text}"
        if reaches_screen:
            assert SCREENED in problems, f"{where}: {problems}"
    assert _audit_rows(client) == audit_before


def test_a_withdrawal_reason_with_an_nhs_number_is_refused_and_the_patient_kept(client):
    response = client.post("/patients/S-AXI-1/withdraw", json={"reason": IN_TEXT}, headers=auth(client, "coordinator"))
    assert response.status_code == 422
    assert response.json() == {"detail": [{"field": "body.reason", "problem": SCREENED}]}
    patient = client.get("/patients/S-AXI-1", headers=auth(client, "coordinator")).json()
    assert patient["status"] == "scheduled"


def test_a_path_id_holding_an_nhs_number_is_refused_not_looked_up(client):
    response = client.get(f"/patients/{IN_CODE}", headers=auth(client, "coordinator"))
    assert response.status_code == 422
    assert NHS.replace(" ", "") not in response.text
    assert response.json()["detail"][0]["field"] == "path.patient_id"


def test_a_catalogue_version_holding_an_nhs_number_is_refused(client):
    catalogue = client.get("/catalogue", headers=auth(client, "admin")).json()["pathways"]
    catalogue["templates"][0]["name"] = IN_TEXT
    response = client.put("/catalogue/pathways", json=catalogue, headers=auth(client, "admin"))
    assert response.status_code == 422
    assert NHS not in response.text
    assert response.json()["detail"][0] == {"field": "body.templates[0].name", "problem": SCREENED}


def test_a_map_key_that_fails_is_not_echoed(client):
    body = {"durations": {"John Smith": 3}, "last_doses": {IN_CODE: "2027-01-01"}}
    response = client.patch("/patients/S-AXI-1", json=body, headers=auth(client, "coordinator"))
    assert response.status_code == 422
    assert "John Smith" not in response.text and IN_CODE not in response.text
    fields = {e["field"] for e in response.json()["detail"]}
    assert fields == {"body.durations.<key>", "body.last_doses.<key>"}


def test_a_catalogue_error_never_echoes_a_key_the_client_typed(client):
    site = client.get("/catalogue", headers=auth(client, "admin")).json()["site"]
    site["John Smith"] = "a field nobody declared"
    response = client.put("/catalogue/site", json=site, headers=auth(client, "admin"))
    assert response.status_code == 422
    assert "John Smith" not in response.text
    assert response.json()["detail"][0]["field"].endswith("<key>")
