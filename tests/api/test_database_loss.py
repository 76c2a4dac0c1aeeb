"""A lost database (api.outage): every route answers 503 with Retry-After and a JSON body,
/health says what is down, the log has one line per outage (none per request, no traceback),
the nightly job stops cleanly, and the service recovers on its own when the database is back.

In-process on a SQLite file moved away and back; on PostgreSQL with a real ``v2v serve``
process whose database is dropped (``DROP DATABASE ... WITH (FORCE)``) and restored from a
template copy, never restarted.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from datetime import date

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from api import nightly
from api.app import create_app
from api.outage import RETRY_AFTER_S, UNAVAILABLE
from tests.builders import POSTGRES_URL, free_port, prepared_site, wait_until_serving
from tests.paths import ROOT

PATIENT = "S-AXI-1"  # one of the small cohort's patients: never in an answer or a log line during an outage
NEW_REFERRAL = {"id": "LOSS-1", "centre": "liverpool", "pathway": "axi-cel", "approval_date": "2027-01-04"}


def _requests(send, tokens: dict[str, str]) -> dict[str, object]:
    """One request of each kind a client makes (``send(method, path, **kw)``), keyed by what it asks."""
    coordinator = {"Authorization": f"Bearer {tokens['coordinator']}"}
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    return {
        "list": send("GET", "/patients", headers=coordinator),
        "timeline": send("GET", f"/patients/{PATIENT}/timeline", headers=coordinator),
        "capacity": send("GET", "/capacity", params={"from": "2027-01-04", "to": "2027-01-10"}, headers=coordinator),
        "refer": send("POST", "/patients", json=NEW_REFERRAL, headers=coordinator),
        "runs": send("GET", "/jobs/nightly/runs", headers=admin),
    }


def _assert_unavailable(answers: dict) -> None:
    for what, answer in answers.items():
        assert answer.status_code == 503, (what, answer.status_code, answer.text)
        assert answer.headers["retry-after"] == str(RETRY_AFTER_S), what
        assert answer.headers["content-type"] == "application/json", what
        assert answer.json() == {"detail": UNAVAILABLE}, what
        assert answer.headers["cache-control"] == "no-store", what


def _assert_health_down(answer) -> None:
    assert answer.status_code == 503 and answer.headers["retry-after"] == str(RETRY_AFTER_S)
    assert answer.json() == {"status": "unavailable", "database": "unreachable", "detail": UNAVAILABLE}


def test_sqlite_moved_away_gives_503s_one_log_line_and_recovers_when_back(tmp_path, caplog):
    home = tmp_path / "data"
    settings, tokens = prepared_site(f"sqlite:///{home / 'v2v.db'}", "loss")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        runtime = client.app.state.runtime

        def send(method, path, **kw):
            return client.request(method, path, **kw)

        assert client.get("/health").status_code == 200
        with caplog.at_level(logging.INFO):
            # the database's folder goes away; connections the pool holds would go on reading the
            # moved file, so they are closed, as a restart of the pool would: every new one fails
            home.rename(tmp_path / "away")
            runtime.engine.dispose()

            _assert_health_down(client.get("/health"))
            for _ in range(3):
                _assert_unavailable(_requests(send, tokens))
            # the nightly job cannot claim tonight: it says so once and does not raise
            assert runtime.nightly.run_night(date(2027, 1, 4), "schedule") is None
            assert runtime.nightly.run_night(date(2027, 1, 4), "catch-up") is None

            (tmp_path / "away").rename(home)  # back: no restart, no dispose
            healthy = client.get("/health")
            back = _requests(send, tokens)
            run_id = runtime.nightly.run_night(date(2027, 1, 4), "catch-up")
            runs = client.get("/jobs/nightly/runs", headers={"Authorization": f"Bearer {tokens['admin']}"})

    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    assert back["list"].status_code == 200 and PATIENT in {p["id"] for p in back["list"].json()["patients"]}
    # the referral sent during the outage was not half-stored: it is stored now, once
    assert back["refer"].status_code == 201, back["refer"].text
    # tonight, once the database is back, runs and is in the ledger
    assert run_id is not None and [(r["id"], r["trigger"]) for r in runs.json()["runs"]] == [(run_id, "catch-up")]
    # the service's log (the test client's own, httpx, names the URLs it asked for)
    service = [r for r in caplog.records if r.name != "httpx"]
    lines = [(r.levelno, r.name, r.getMessage()) for r in service if r.name != "vein2vein.access"]
    down = [line for line in lines if "the database is unreachable (" in line[2]]
    assert len(down) == 1 and down[0][:2] == (logging.WARNING, "vein2vein.database"), lines
    recovered = [line for line in lines if line[2].startswith("the database is back after")]
    # 1 health + 3 x 5 requests + 2 nightly claims, each one failed database call
    assert len(recovered) == 1 and "; 18 database calls failed meanwhile" in recovered[0][2], lines
    nightly = [line for line in lines if "could not start: the database is unreachable" in line[2]]
    assert len(nightly) == 1 and "2027-01-04" in nightly[0][2], lines
    assert [(r.name, r.getMessage()) for r in service if r.exc_info] == [], "no traceback in the log"
    assert [r.getMessage() for r in service if PATIENT in r.getMessage()] == []


def test_a_nightly_run_cut_off_by_the_database_stops_cleanly_and_changes_nothing(tmp_path, caplog):
    home = tmp_path / "data"
    settings, tokens = prepared_site(f"sqlite:///{home / 'v2v.db'}", "cut")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        runtime = client.app.state.runtime
        before = client.get("/plans/current", headers={"Authorization": f"Bearer {tokens['admin']}"}).json()
        run_id = nightly.claim_night(runtime.database.sessions, settings, date(2027, 1, 4), "schedule")

        def lose_the_database(attempt: int) -> None:  # between the solve and its publish
            home.rename(tmp_path / "away")
            runtime.engine.dispose()

        with caplog.at_level(logging.INFO):
            nightly.execute(runtime.database.sessions, settings, run_id, lose_the_database)  # does not raise
            (tmp_path / "away").rename(home)
            after = client.get("/plans/current", headers={"Authorization": f"Bearer {tokens['admin']}"}).json()
            run = client.get(f"/jobs/nightly/runs/{run_id}", headers={"Authorization": f"Bearer {tokens['admin']}"})

    assert after == before  # nothing published
    assert run.json()["run"]["status"] == "running"  # its failure could not be written; a later start marks it
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("vein2vein")]
    stopped = [line for line in lines if line.startswith(f"nightly run {run_id} stopped: the database is unreachable")]
    assert len(stopped) == 1 and "the plan was not changed" in stopped[0], lines
    assert sum("the database is unreachable (" in line for line in lines) == 1, lines
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def _admin_engine():
    # CREATE and DROP DATABASE run outside a transaction; no connection is kept between them
    return create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )


def _drop(admin, *names: str) -> None:
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _create(admin, name: str, template: str | None = None) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))


def test_postgresql_dropped_under_a_running_server_gives_503s_and_recovers_when_restored(tmp_path):
    scratch = f"sec_{secrets.token_hex(4)}"
    backup = f"{scratch}_backup"
    admin = _admin_engine()
    _create(admin, scratch)
    process = None
    try:
        url = make_url(POSTGRES_URL).set(database=scratch).render_as_string(hide_password=False)
        settings, tokens = prepared_site(url, "pg-loss")
        _create(admin, backup, template=scratch)  # what an operator restores from

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("V2V_") and k != "DATABASE_URL"}
        env.update(
            DATABASE_URL=url,
            V2V_TODAY=settings.planning_day().isoformat(),
            V2V_HORIZON_DAYS=str(settings.horizon_days),
            V2V_NIGHTLY_ENABLED="false",
            V2V_PORT=str(port),
        )
        log = tmp_path / "server.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base, process, log.read_text)

        with httpx.Client(base_url=base, timeout=30) as client:

            def send(method, path, **kw):
                return client.request(method, path, **kw)

            before = _requests(send, tokens)
            assert before["list"].status_code == 200 and before["refer"].status_code == 201

            _drop(admin, scratch)
            _assert_health_down(client.get("/health"))
            for _ in range(3):
                _assert_unavailable(_requests(send, tokens))

            _create(admin, scratch, template=backup)  # restored; the server is not restarted
            healthy = client.get("/health")
            back = _requests(send, tokens)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        _drop(admin, scratch, backup)
        admin.dispose()

    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    assert back["list"].status_code == 200 and PATIENT in {p["id"] for p in back["list"].json()["patients"]}
    # the backup predates the referral made while serving: the restored database is the backup, as it was
    assert back["refer"].status_code == 201, back["refer"].text
    output = log.read_text()
    assert output.count("the database is unreachable (") == 1, output
    assert output.count("the database is back after") == 1, output
    assert "; 16 database calls failed meanwhile" in output  # 1 health + 3 x 5 requests
    assert "Traceback" not in output and PATIENT not in output, output
