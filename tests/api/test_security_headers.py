"""Security headers on every answer (api.security_headers): pages, JSON with patient data, static
files, the docs, and the framework's own errors; no server banner from a real ``v2v serve``."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from api.settings import Settings
from api.setup import init_database
from tests.builders import auth, free_port, make_settings, wait_until_serving
from tests.paths import ROOT

STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)


def assert_protected(response: httpx.Response, cache: str = "no-store") -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    headers = response.headers
    assert headers.get("content-security-policy") == STRICT_POLICY, where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("cache-control") == cache, where


def test_every_kind_of_answer_carries_the_headers_and_patient_data_is_never_cached(client):
    coordinator = auth(client, "coordinator")
    page = client.get("/ui/patients/S-AXI-1")
    patient = client.get("/patients/S-AXI-1", headers=coordinator)
    capacity_csv = client.get("/capacity.csv", params={"from": "2027-01-04", "to": "2027-01-10"}, headers=coordinator)
    assert (page.status_code, patient.status_code, capacity_csv.status_code) == (200, 200, 200)
    assert patient.json()["id"] == "S-AXI-1"
    for answer in (page, patient, capacity_csv, client.get("/health"), client.get("/openapi.json")):
        assert_protected(answer)
    # the framework's own errors: no route, wrong method, bad input, no token
    unknown = client.get("/no-such-page")
    wrong_method = client.delete("/health")
    bad_input = client.get("/capacity", params={"from": "not-a-day", "to": "2027-01-10"}, headers=coordinator)
    no_token = client.get("/patients")
    assert [r.status_code for r in (unknown, wrong_method, bad_input, no_token)] == [404, 405, 422, 401]
    for answer in (unknown, wrong_method, bad_input, no_token):
        assert_protected(answer)
    # static assets hold no patient data: cacheable, revalidated each time (an upgrade is seen at once)
    for path in ("/static/js/patients.js", "/static/css/pages.css", "/static/docs/swagger-ui-bundle.js"):
        asset = client.get(path)
        assert asset.status_code == 200
        assert_protected(asset, cache="no-cache")
    assert_protected(client.get("/docs"))


def test_an_unexpected_error_is_a_json_500_with_the_headers_and_without_its_message(small_site):
    """A fault (here a route of the real app whose view fails) is answered by the last-resort layer,
    outside every middleware added to the app: the headers must still be there, and the body JSON."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(small_site)

    def fails():
        raise RuntimeError("patient S-AXI-1 broke something")

    app.add_api_route("/fails", fails)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/fails")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "an unexpected error; it has been logged"}
    assert "S-AXI-1" not in answer.text
    assert_protected(answer)


def test_redoc_alone_allows_its_own_style_elements_by_a_fresh_nonce_and_no_script(client):
    first, second = client.get("/redoc"), client.get("/redoc")
    nonces = []
    for answer in (first, second):
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy and "frame-ancestors 'none'" in policy
        nonce = policy.split("'nonce-")[1].split("'")[0]
        assert f'data-style-nonce="{nonce}"' in answer.text  # handed to ReDoc, which puts it on its styles
        nonces.append(nonce)
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
    assert nonces[0] != nonces[1] and len(nonces[0]) >= 22


def test_a_real_server_sends_the_headers_and_no_server_banner(tmp_path):
    settings: Settings = make_settings(f"sqlite:///{tmp_path / 'v2v.db'}")
    init_database(settings)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("V2V_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=settings.database_url, V2V_NIGHTLY_ENABLED="false", V2V_PORT=str(port))
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process, log.read_text)
        answers = [httpx.get(f"{base}{path}", timeout=10) for path in ("/ui/sign-in", "/health", "/nowhere")]
        asset = httpx.get(f"{base}/static/css/pages.css", timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert [a.status_code for a in answers] == [200, 200, 404] and asset.status_code == 200
    for answer in [*answers, asset]:
        assert "server" not in answer.headers, answer.headers  # no "server: uvicorn" banner
    for answer in answers:
        assert_protected(answer)
    assert_protected(asset, cache="no-cache")
