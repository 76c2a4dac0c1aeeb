"""Who may do what, for every route of the app.

``ROUTES`` is the table: each (method, path) of the app with the roles allowed on it
and one request to send. The table is checked against ``app.routes``, so a new
route cannot be added without deciding who may call it. Then, for each route:
no token and an unknown (or revoked) token get 401, every other role gets 403 and
nothing is stored, and every allowed role gets through to the route itself.

The requests carry valid bodies and name real (or plainly unknown) things, so the
answer an allowed role gets is the route's own (200, 201, or 404 for an unknown
patient), never a 422: and a 403 for a refused role cannot be hiding behind a 422.
``test_role_is_checked_before_the_body`` pins the order FastAPI uses (dependencies,
so the role, before body validation) with bodies that are invalid on purpose.

One database per backend for the whole module (setting up the small site takes a
few seconds); the tests only read, or write things no other test here looks at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from api.db import make_engine
from api.pages import PAGES
from api.setup import new_token
from tests.builders import ROLES, auth, fresh_database, prepared_site, run_nightly

PUBLIC: tuple[str, ...] = ()  # no token needed
ANYONE = ("coordinator", "lab_manager", "admin")
COORDINATOR = ("coordinator", "admin")
LAB_MANAGER = ("lab_manager", "admin")
ADMIN = ("admin",)

UNKNOWN_PROPOSAL = "0" * 32
UNKNOWN_CHANGE = 999_999


@dataclass
class Probe:
    """One request to a route, and what an allowed role gets back."""

    allowed: tuple[str, ...]
    path: str
    expect: int = 200
    params: dict[str, Any] | None = None
    body: Callable[[Any, str], Any] | None = None  # (client, role) -> JSON body
    public: bool = False


def _referral(client, role: str) -> dict[str, Any]:
    return {"id": f"ROLES-{role}", "centre": "liverpool", "pathway": "axi-cel", "approval_date": "2027-01-11"}


def _site(client, role: str) -> dict[str, Any]:
    """The site as it is: a PUT of it is valid, and changes nothing but the version number."""
    return client.get("/catalogue", headers=auth(client, "admin")).json()["site"]


def _change(client, role: str) -> dict[str, Any]:
    return {
        "resource": "bed",
        "centre": "liverpool",
        "first_day": "2027-03-01",
        "last_day": "2027-03-02",
        "capacity": 9,
        "reason": f"role test ({role})",
    }


ROUTES: dict[tuple[str, str], Probe] = {
    # public: the service's health and its documentation
    ("GET", "/health"): Probe(PUBLIC, "/health", public=True),
    ("GET", "/openapi.json"): Probe(PUBLIC, "/openapi.json", public=True),
    ("GET", "/docs"): Probe(PUBLIC, "/docs", public=True),
    ("GET", "/redoc"): Probe(PUBLIC, "/redoc", public=True),
    # the pages: HTML shells holding no data (their scripts read the API with the signed-in token)
    **{("GET", path): Probe(PUBLIC, path, public=True) for path in ("/", "/ui", "/ui/")},
    **{("GET", f"/ui/{slug}"): Probe(PUBLIC, f"/ui/{slug}", public=True) for slug in PAGES},
    ("GET", "/ui/patients/{patient_id}"): Probe(PUBLIC, "/ui/patients/S-AXI-1", public=True),
    # a calendar feed: no sign-in, the secret in its path is the key (an unknown one: the route's own 404)
    ("GET", "/calendar/{secret}.ics"): Probe(PUBLIC, "/calendar/not-a-link.ics", expect=404, public=True),
    # everyone with a token reads
    ("GET", "/me"): Probe(ANYONE, "/me"),
    ("GET", "/catalogue"): Probe(ANYONE, "/catalogue"),
    ("GET", "/jobs/nightly/report"): Probe(ANYONE, "/jobs/nightly/report"),
    ("GET", "/plans"): Probe(ANYONE, "/plans"),
    ("GET", "/plans/current"): Probe(ANYONE, "/plans/current"),
    ("GET", "/plans/diff"): Probe(ANYONE, "/plans/diff", params={"from": 1, "to": 1}),
    ("GET", "/plans/{version_id}"): Probe(ANYONE, "/plans/1"),
    ("GET", "/patients"): Probe(ANYONE, "/patients"),
    ("GET", "/patients/{patient_id}"): Probe(ANYONE, "/patients/S-AXI-1"),
    ("GET", "/patients/{patient_id}/timeline"): Probe(ANYONE, "/patients/S-AXI-1/timeline"),
    ("GET", "/patients/{patient_id}/calendar.ics"): Probe(ANYONE, "/patients/S-AXI-1/calendar.ics"),
    ("GET", "/proposals/{proposal_id}"): Probe(ANYONE, f"/proposals/{UNKNOWN_PROPOSAL}", expect=404),
    ("GET", "/capacity"): Probe(ANYONE, "/capacity", params={"from": "2027-01-04", "to": "2027-01-10"}),
    ("GET", "/capacity.csv"): Probe(ANYONE, "/capacity.csv", params={"from": "2027-01-04", "to": "2027-01-10"}),
    ("GET", "/capacity/changes"): Probe(ANYONE, "/capacity/changes"),
    # coordinators (and admin) edit patients and their schedules; lab managers may not
    ("POST", "/patients"): Probe(COORDINATOR, "/patients", expect=201, body=_referral),
    ("PATCH", "/patients/{patient_id}"): Probe(
        COORDINATOR, "/patients/S-AXI-2", body=lambda c, r: {"urgency": "urgent"}
    ),
    # S-NOFIT-1's washout ends after the horizon: the proposal is an explained refusal, found fast
    ("POST", "/patients/{patient_id}/proposals"): Probe(COORDINATOR, "/patients/S-NOFIT-1/proposals", expect=201),
    ("POST", "/proposals/{proposal_id}/confirm"): Probe(
        COORDINATOR, f"/proposals/{UNKNOWN_PROPOSAL}/confirm", expect=404, body=lambda c, r: {"option": 0}
    ),
    ("POST", "/patients/{patient_id}/defer"): Probe(
        COORDINATOR,
        "/patients/NOPE-1/defer",
        expect=404,
        body=lambda c, r: {"from_date": "2027-03-01", "reason": "role test"},
    ),
    ("POST", "/patients/{patient_id}/out-of-specification"): Probe(
        COORDINATOR,
        "/patients/NOPE-1/out-of-specification",
        expect=404,
        body=lambda c, r: {"redo": "re-apheresis", "reason": "role test"},
    ),
    ("POST", "/patients/{patient_id}/withdraw"): Probe(
        COORDINATOR, "/patients/NOPE-1/withdraw", expect=404, body=lambda c, r: {"reason": "role test"}
    ),
    ("POST", "/patients/{patient_id}/reinstate"): Probe(
        COORDINATOR, "/patients/NOPE-1/reinstate", expect=404, body=lambda c, r: {"reason": "role test"}
    ),
    ("POST", "/patients/{patient_id}/confirmations"): Probe(
        COORDINATOR, "/patients/NOPE-1/confirmations", expect=404, body=lambda c, r: {"note": "role test"}
    ),
    ("POST", "/patients/{patient_id}/calendar-links"): Probe(COORDINATOR, "/patients/S-AXI-1/calendar-links", 201),
    ("GET", "/patients/{patient_id}/calendar-links"): Probe(COORDINATOR, "/patients/S-AXI-1/calendar-links"),
    ("DELETE", "/patients/{patient_id}/calendar-links/{link_id}"): Probe(
        COORDINATOR, "/patients/S-AXI-1/calendar-links/999999", expect=404
    ),
    ("POST", "/patients/{patient_id}/poor-mobilisation"): Probe(
        COORDINATOR, "/patients/NOPE-1/poor-mobilisation", expect=404, body=lambda c, r: {"reason": "role test"}
    ),
    # what happened is recorded by whoever saw it: coordinators (the bedside) and lab managers (the lab)
    ("POST", "/patients/{patient_id}/steps/{step}/records"): Probe(
        ANYONE, "/patients/NOPE-1/steps/apheresis/records", expect=404, body=lambda c, r: {"outcome": "done"}
    ),
    ("POST", "/patients/{patient_id}/products"): Probe(
        ANYONE, "/patients/NOPE-1/products", expect=404, body=lambda c, r: {"collection_step": "apheresis"}
    ),
    ("POST", "/products/{product_id}/custody"): Probe(
        ANYONE, "/products/999999/custody", expect=404, body=lambda c, r: {"kind": "collected", "day": "2027-01-04"}
    ),
    ("GET", "/patients/{patient_id}/products"): Probe(ANYONE, "/patients/S-AXI-1/products"),
    ("GET", "/products/{product_id}"): Probe(ANYONE, "/products/999999", expect=404),
    ("GET", "/worklist"): Probe(ANYONE, "/worklist"),
    # lab managers (and admin) change capacity; coordinators may not
    ("POST", "/capacity/changes"): Probe(LAB_MANAGER, "/capacity/changes", expect=201, body=_change),
    ("DELETE", "/capacity/changes/{change_id}"): Probe(LAB_MANAGER, f"/capacity/changes/{UNKNOWN_CHANGE}", expect=404),
    # either may ask for a re-plan (unknown things here: no whole-site solve runs)
    ("POST", "/capacity/changes/{change_id}/replan"): Probe(
        ANYONE, f"/capacity/changes/{UNKNOWN_CHANGE}/replan", expect=404
    ),
    ("POST", "/replan"): Probe(ANYONE, "/replan", expect=404, body=lambda c, r: {"patients": ["NOPE-1"]}),
    # admin only
    ("PUT", "/catalogue/{kind}"): Probe(ADMIN, "/catalogue/site", body=_site),
    ("GET", "/audit"): Probe(ADMIN, "/audit"),
    ("GET", "/jobs/nightly/runs"): Probe(ADMIN, "/jobs/nightly/runs"),
    ("GET", "/jobs/nightly/runs/{run_id}"): Probe(ADMIN, "/jobs/nightly/runs/1"),
    ("POST", "/jobs/nightly/runs"): Probe(ADMIN, "/jobs/nightly/runs", expect=202),
}

GUARDED = sorted(key for key, probe in ROUTES.items() if not probe.public)
ALLOWED = [(key, role) for key in GUARDED for role in ROUTES[key].allowed]
REFUSED = [(key, role) for key in GUARDED for role in ROLES if role not in ROUTES[key].allowed]


def _id(value) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], tuple):
        return f"{value[0][0]} {value[0][1]} as {value[1]}"
    return f"{value[0]} {value[1]}"


def _send(client, key: tuple[str, str], headers: dict[str, str], role: str = "admin"):
    probe = ROUTES[key]
    body = probe.body(client, role) if probe.body else None
    return client.request(key[0], probe.path, params=probe.params, json=body, headers=headers)


def _stored(client, key: tuple[str, str]) -> tuple[Any, ...]:
    """What a refused request must leave as it was: the patients, the plan, the capacity changes, the
    audit log (reads are not checked: they could not change anything even if they got through)."""
    if key[0] == "GET":
        return ()
    admin = auth(client, "admin")
    return (
        client.get("/patients", headers=admin).json(),
        client.get("/plans/current", headers=admin).json(),
        client.get("/capacity/changes", headers=admin).json(),
        len(client.get("/audit", params={"limit": 1000}, headers=admin).json()),
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory):
    url = fresh_database(request.param, tmp_path_factory.mktemp("roles"))
    settings, tokens = prepared_site(url, "roles")
    run_nightly(settings)  # run 1: the report and run routes have something to show
    return settings, tokens


@pytest.fixture(scope="module")
def client(site):
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings, tokens = site
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.tokens = tokens
        yield test_client


def _app_routes(app) -> list[tuple[str, Any]]:
    """(path, route) for every route of the app, those of its included routers too (FastAPI 0.16x
    keeps an included router as one entry of ``app.routes`` and resolves its routes lazily)."""
    from fastapi import routing

    if not hasattr(routing, "iter_route_contexts"):  # an older FastAPI copies them into app.routes
        return [(route.path, route) for route in app.routes]
    return [(context.path, context.original_route) for context in routing.iter_route_contexts(app.routes)]


def test_the_table_names_every_route_of_the_app(client):
    from fastapi.routing import APIRoute

    in_app = set()
    for path, route in _app_routes(client.app):
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                in_app.add((method, path))
    assert in_app - set(ROUTES) == set(), "routes with no decision on who may call them: add them to ROUTES"
    assert set(ROUTES) - in_app == set(), "ROUTES names routes the app does not have"
    # every route that is not public really has a role check among its dependencies
    api_routes = {(m, path): r for path, r in _app_routes(client.app) if isinstance(r, APIRoute) for m in r.methods}
    for key in GUARDED:
        names = {d.call.__name__ for d in api_routes[key].dependant.dependencies if d.call is not None}
        assert "check" in names, f"{key} has no role check"


@pytest.mark.parametrize("key", [k for k, p in ROUTES.items() if p.public], ids=_id)
def test_public_routes_need_no_token(client, key):
    assert client.request(key[0], ROUTES[key].path).status_code == ROUTES[key].expect


@pytest.mark.parametrize("key", GUARDED, ids=_id)
def test_no_token_is_401(client, key):
    before = _stored(client, key)
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {client.tokens['admin']}"},
    ):
        response = _send(client, key, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert _stored(client, key) == before


@pytest.mark.parametrize("key", GUARDED, ids=_id)
def test_unknown_token_is_401(client, key):
    before = _stored(client, key)
    admin = client.tokens["admin"]
    for token in ("v2v_not-a-token", admin[:-1] + ("A" if admin[-1] != "A" else "B"), admin + "x"):
        response = _send(client, key, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (token, response.text)
        assert "unknown or revoked token" in response.json()["detail"]
    assert _stored(client, key) == before


@pytest.mark.parametrize("case", REFUSED, ids=_id)
def test_a_role_that_is_not_allowed_gets_403_and_changes_nothing(client, case):
    key, role = case
    before = _stored(client, key)
    response = _send(client, key, auth(client, role), role)
    assert response.status_code == 403, response.text
    assert role in response.json()["detail"]  # "role lab_manager may not do this (needs coordinator)"
    assert _stored(client, key) == before


@pytest.mark.parametrize("case", ALLOWED, ids=_id)
def test_an_allowed_role_gets_through_to_the_route(client, case):
    key, role = case
    response = _send(client, key, auth(client, role), role)
    assert response.status_code not in (401, 403), response.text
    assert response.status_code == ROUTES[key].expect, response.text


def test_what_each_role_may_do(client):
    """The rules a hospital would state, spelled out (the table above must say the same)."""
    recording = [k for k in ROUTES if k[0] == "POST" and k[1].endswith(("/records", "/products", "/custody"))]
    for key in recording:  # what happened, recorded by whoever saw it
        assert ROUTES[key].allowed == ANYONE, key
    patient_edits = [
        k
        for k in ROUTES
        if k[0] in ("POST", "PATCH") and k[1].startswith(("/patients", "/proposals")) and k not in recording
    ]
    # register, edit, propose, confirm, defer, out-of-specification, withdraw, reinstate, dates confirmed,
    # a calendar link, poor mobilisation
    assert len(patient_edits) == 11
    for key in patient_edits:
        assert "lab_manager" not in ROUTES[key].allowed, key
        assert "coordinator" in ROUTES[key].allowed, key
    for key in (("POST", "/capacity/changes"), ("DELETE", "/capacity/changes/{change_id}")):
        assert ROUTES[key].allowed == LAB_MANAGER, key
    for key in (
        ("GET", "/audit"),
        ("PUT", "/catalogue/{kind}"),
        ("POST", "/jobs/nightly/runs"),
        ("GET", "/jobs/nightly/runs"),
    ):
        assert ROUTES[key].allowed == ADMIN, key
    assert all("admin" in ROUTES[k].allowed for k in GUARDED)


@pytest.mark.parametrize(
    "method, path, body, role",
    [
        ("POST", "/patients", {}, "lab_manager"),
        ("POST", "/patients", {"id": "12345", "approval_date": 0, "colour": "red"}, "lab_manager"),
        ("PATCH", "/patients/S-AXI-1", {"bogus": 1}, "lab_manager"),
        ("PATCH", "/patients/x", {"centre": None}, "lab_manager"),  # the path itself is invalid too
        ("POST", "/capacity/changes", {"capacity": -1}, "coordinator"),
        ("DELETE", "/capacity/changes/0", None, "coordinator"),
        ("PUT", "/catalogue/nonsense", {"x": 1}, "coordinator"),
        ("GET", "/audit", None, "lab_manager"),
    ],
)
def test_role_is_checked_before_the_body(client, method, path, body, role):
    """A refused role learns nothing about what a valid request looks like: 403, not 422."""
    params = {"limit": 0} if path == "/audit" else None
    response = client.request(method, path, json=body, params=params, headers=auth(client, role))
    assert response.status_code == 403, response.text
    response = client.request(method, path, json=body, params=params)
    assert response.status_code == 401, response.text


def test_a_revoked_token_is_401(client, site):
    settings, _ = site
    token = new_token(settings, "roles-leaver", "coordinator")
    assert client.get("/patients", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE name = 'roles-leaver'"))
    finally:
        engine.dispose()
    response = client.get("/patients", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert client.get("/patients", headers=auth(client, "coordinator")).status_code == 200
