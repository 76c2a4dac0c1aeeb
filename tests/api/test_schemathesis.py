"""Property-based tests of the whole HTTP API from its own OpenAPI schema (schemathesis).

Every operation gets generated requests, valid and invalid, with a real token.
What a hospital user cares about: no input whatever gives a server error (5xx),
and every answer is one of the status codes the schema documents, with the
content type and the body shape it documents (so a client written from /docs is
never surprised). SQLite only, a bounded number of
examples per operation; the routes that run a whole-site solve get a handful.
"""

from __future__ import annotations

import zlib

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.settings import Settings
from api.setup import init_database, load_cohort, new_token
from tests.builders import make_settings
from tests.paths import COHORTS

EXAMPLES = 15
SOLVES = (
    ("POST", "/replan"),
    ("POST", "/capacity/changes/{change_id}/replan"),
    ("POST", "/patients/{patient_id}/proposals"),
)
SOLVE_EXAMPLES = 3
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# real things of the small site, so that generated requests get past "no such patient" and "unknown pathway"
PATIENTS = ("S-AXI-1", "S-AXI-2", "S-INH-1", "S-INH-3", "S-ASCT-1", "S-ALLO-1", "S-NOFIT-1")
PATHWAYS = ("axi-cel", "in-house-car-t", "asct-mel200", "allo-sct-fresh", "cilta-cel")
RESOURCES = ("apheresis_machine", "bed", "manufacturing_device", "high_risk_window")


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": 20270104,  # the same requests on every run: a failure here is reproducible
            "generation": {
                "mode": "all",  # valid and invalid requests
                "max-examples": EXAMPLES,
                "with-security-parameters": False,  # the token is ours, sent with each call
                "database": "none",
            },
            "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
            "operations": [
                {"include-method": method, "include-path": path, "generation": {"max-examples": SOLVE_EXAMPLES}}
                for method, path in SOLVES
            ],
        }
    )


def _openapi() -> dict:
    """The app's OpenAPI document: it does not depend on the database, so an app that never connects serves."""
    from api.app import create_app

    return create_app(Settings(database_url="sqlite://", _env_file=None)).openapi()


OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(OPENAPI, config=_config())


def _typed(schema: dict) -> bool:
    """A named response model (a ``$ref``), a list of them, or text (CSV, iCalendar)."""
    if schema.get("type") == "array":
        return _typed(schema.get("items") or {})
    return "$ref" in schema or schema.get("type") == "string"


def test_every_success_answer_documents_its_body():
    """Every 2xx answer of every operation names its media type and a typed schema for its body:
    a response model (not a bare object), a list of one, or text."""
    operations = [(method, path, op) for path, item in OPENAPI["paths"].items() for method, op in item.items()]
    assert len(operations) == 45
    untyped = []
    for method, path, operation in operations:
        successes = {code: answer for code, answer in operation["responses"].items() if code.startswith("2")}
        if not successes:
            untyped.append(f"{method.upper()} {path}: no 2xx answer")
        for code, answer in successes.items():
            content = answer.get("content") or {}
            if not content or not all(_typed(media.get("schema") or {}) for media in content.values()):
                untyped.append(f"{method.upper()} {path} {code}: {content}")
    assert untyped == []


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The small site, planned and confirmed, on SQLite; a client whose lifespan lasts the module; tokens."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = make_settings(
        f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'v2v.db'}", solve_time_limit=1, propose_time_limit=0.5
    )
    init_database(settings)
    load_cohort(settings, COHORTS / "small.json")
    # Our own client, not schemathesis' ASGI transport: that one stops the app's lifespan (and with it the
    # solver pool) after every operation's test.
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield {
            "client": client,
            "tokens": {role: new_token(settings, f"fuzz-{role}", role) for role in ("coordinator", "admin")},
        }


def _pick(value, choices):
    """One of ``choices`` for half of the values (chosen from the value, so a run is reproducible), else None."""
    digest = zlib.crc32(repr(value).encode())
    return choices[(digest // 2) % len(choices)] if digest % 2 == 0 else None


def _aim(case) -> None:
    """Point about half of the generated requests at things that exist (patients, centre, pathways,
    resources), the rest of each request staying as generated. The whole-site solves are not aimed."""
    if "replan" in case.operation.path:
        return
    params = case.path_parameters or {}
    if "patient_id" in params:
        params["patient_id"] = _pick(params["patient_id"], PATIENTS) or params["patient_id"]
    body = case.body
    if isinstance(body, dict):
        if case.operation.path == "/patients" and _pick(body, (True,)):  # a referral with its keys filled in plausibly
            digest = zlib.crc32(repr(body).encode())
            body.update(
                id=f"F-{digest:08x}",
                centre="liverpool",
                pathway=PATHWAYS[digest % len(PATHWAYS)],
                approval_date=f"2027-01-{4 + digest % 20:02d}",
            )
        elif isinstance(body.get("pathway"), str):
            body["pathway"] = _pick(body["pathway"], PATHWAYS) or body["pathway"]
        if isinstance(body.get("centre"), str) and _pick(body["centre"], (True,)):
            body["centre"] = "liverpool"
        if isinstance(body.get("resource"), str) and _pick(body["resource"], (True,)):
            body["resource"] = _pick(body["resource"], RESOURCES) or "bed"
            body["centre"] = "liverpool"


def _send(client, kwargs: dict):
    """A request as schemathesis serialised it (for ``requests``), sent with the TestClient (httpx)."""
    body = kwargs.get("data")
    return client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=dict(kwargs.get("headers") or {}),
        json=kwargs.get("json"),
        content=body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else None,
        data=body if isinstance(body, dict) else None,
    )


def _call(case, api, role: str) -> None:
    _aim(case)
    headers = {"Authorization": f"Bearer {api['tokens'][role]}"}
    response = _send(api["client"], case.as_transport_kwargs(base_url="http://testserver", headers=headers))
    case.validate_response(response, checks=CHECKS, headers=headers)


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_as_admin_no_server_error_and_only_documented_statuses(case, api):
    _call(case, api, "admin")


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_as_coordinator_no_server_error_and_only_documented_statuses(case, api):
    _call(case, api, "coordinator")
