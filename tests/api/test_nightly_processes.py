"""The nightly job across real processes: killed mid-run, and two servers sharing one database.

Each test starts ``v2v`` as a subprocess on a real SQLite file or the PostgreSQL
test database, as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from api import state
from api.db import BookingRow, make_engine, make_sessionmaker
from api.setup import init_database, load_cohort, new_token
from tests.builders import free_port, fresh_database, ledger_runs, make_settings, refer_directly, wait_until_serving
from tests.paths import COHORTS, ROOT

LONDON = ZoneInfo("Europe/London")


def _env(settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("V2V_") and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=settings.database_url,
        V2V_TODAY=settings.planning_day().isoformat(),
        V2V_HORIZON_DAYS=str(settings.horizon_days),
        V2V_SOLVE_TIME_LIMIT="3",
        V2V_PROPOSE_TIME_LIMIT="1",
        **extra,
    )
    return env


def _snapshot(settings) -> tuple:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            bookings = session.execute(
                select(
                    BookingRow.id,
                    BookingRow.patient_id,
                    BookingRow.step,
                    BookingRow.first_day,
                    BookingRow.status,
                    BookingRow.to_version,
                )
            ).all()
            head = state.head(session)
            return head.version_id, head.changes, sorted(bookings)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_run_killed_mid_solve_leaves_the_previous_plan_current_and_intact(kind, tmp_path):
    settings = make_settings(fresh_database(kind, tmp_path), solve_time_limit=3)
    init_database(settings)
    load_cohort(settings, COHORTS / "regional.json", time_limit=3)
    refer_directly(settings, "N-KILL-1")  # something new to plan: the run must solve, not skip
    before = _snapshot(settings)

    command = [sys.executable, "-m", "api.cli", "nightly", "run"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_env(settings, V2V_NIGHTLY_TIME_LIMIT="120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = []
        for line in process.stdout:  # wait until it is solving, then kill it as the OOM killer would
            output.append(line)
            if "solving" in line:
                break
        else:
            pytest.fail("the run never reached its solve: " + "".join(output))
        time.sleep(1.0)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL

    assert _snapshot(settings) == before  # same current version, same change count, every booking as it was
    [run] = ledger_runs(settings)
    assert run.status == "running" and run.plan_version_id is None

    # the next run of the same night marks the killed one failed, then runs the night again as a
    # new row linked to it, and publishes
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=_env(settings, V2V_NIGHTLY_TIME_LIMIT="3"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    killed, finished = ledger_runs(settings)
    assert killed.status == "failed" and "interrupted" in killed.report["summary"]
    assert (finished.night, finished.retry_of) == (killed.night, killed.id)
    assert finished.status == "published" and any(p["patient"] == "N-KILL-1" for p in finished.report["patients"])


@contextmanager
def _servers(settings, count: int):
    ports = [free_port() for _ in range(count)]
    processes = []
    try:
        for port in ports:
            env = _env(settings, V2V_NIGHTLY_ENABLED="true", V2V_NIGHTLY_TIME_LIMIT="3", V2V_PORT=str(port))
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "api.cli", "serve"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        for port, process in zip(ports, processes, strict=True):
            # its output can be read whole only once it has exited (a pipe): that is when a failure shows it
            wait_until_serving(
                f"http://127.0.0.1:{port}", process, lambda p=process: p.stdout.read() if p.poll() is not None else ""
            )
        yield ports, processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_servers_on_one_database_run_the_night_once(kind, tmp_path):
    settings = make_settings(fresh_database(kind, tmp_path))
    init_database(settings)
    load_cohort(settings, COHORTS / "small.json")
    admin = new_token(settings, "processes-admin", "admin")
    night = datetime.now(LONDON).date()

    with _servers(settings, 2) as (ports, processes):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            runs = ledger_runs(settings)
            if runs and all(r.status != "running" for r in runs):
                break
            time.sleep(0.2)
        # both servers found the night missed at start-up; the ledger let one of them run it
        assert [(r.trigger, r.status) for r in runs] == [("catch-up", "kept")]
        assert runs[0].night in (night, night.fromordinal(night.toordinal() - 1))
        for port in ports:
            body = httpx.get(
                f"http://127.0.0.1:{port}/jobs/nightly/runs", headers={"Authorization": f"Bearer {admin}"}, timeout=10
            ).json()
            assert [r["id"] for r in body["runs"]] == [runs[0].id]
            assert body["enabled"] and body["next_run"] and body["next_run"].endswith(("+00:00", "+01:00"))
        # a path with an identifier in it: the server's log names the route, never the patient
        timeline = httpx.get(
            f"http://127.0.0.1:{ports[0]}/patients/S-AXI-1/timeline",
            headers={"Authorization": f"Bearer {admin}"},
            timeout=10,
        )
        assert timeline.status_code == 200
    logs = [p.stdout.read() for p in processes]
    assert "GET /patients/{patient_id}/timeline 200" in logs[0], logs[0]
    assert not any("S-AXI-1" in log for log in logs), logs
    winner = [log for log in logs if f"nightly run {runs[0].id} (catch-up" in log]
    assert len(winner) == 1, logs
    # the other one lost the claim, or started after the run was in the ledger and found nothing missed
    assert sum("is claimed by another process" in log or "was missed" not in log for log in logs) == 1, logs
    assert len(ledger_runs(settings)) == 1
