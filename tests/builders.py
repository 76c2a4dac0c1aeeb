"""Builders the tests share: settings and databases, referrals and API clients, server processes.

Test modules and conftest fixtures import from here; nothing imports a conftest module.
PostgreSQL is the one on 127.0.0.1:5432 (database ``test``; ``make test`` starts it), or
``V2V_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import date

import httpx
import pytest
from sqlalchemy import select, text

from api import state
from api.db import make_engine, make_sessionmaker
from api.settings import Settings
from api.setup import init_database, load_cohort, new_token
from pathway.rules import check_plan
from tests.paths import COHORTS

POSTGRES_URL = os.environ.get("V2V_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TODAY = date(2027, 1, 4)  # the small and regional cohorts' first day
ROLES = ("coordinator", "lab_manager", "admin")
DESKTOP = {"width": 1280, "height": 900}  # browser viewports of the page tests
TABLET = {"width": 768, "height": 1024}


# -- settings and databases ------------------------------------------------------------------------


def reset_postgres(url: str = POSTGRES_URL) -> str:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return url


def make_settings(url: str, **overrides) -> Settings:
    """Settings for a test database: today is the small cohort's first day, solves are short."""
    values = (
        dict(
            today=TODAY,
            horizon_days=200,
            solve_time_limit=3,
            propose_time_limit=1,
            alternatives=1,
            nightly_enabled=False,
        )
        | overrides
    )
    return Settings(database_url=url, _env_file=None, **values)


def plan_small_cohort(settings: Settings) -> Settings:
    """Migrate ``settings``' database and plan and confirm the small cohort (9 patients) as plan
    version 2 (1 is the empty start)."""
    init_database(settings)
    load_cohort(settings, COHORTS / "small.json")
    return settings


def prepared_site(url: str, label: str, **overrides) -> tuple[Settings, dict[str, str]]:
    """A migrated database at ``url`` with the small cohort planned and confirmed, and a token per role."""
    settings = plan_small_cohort(make_settings(url, **overrides))
    return settings, {role: new_token(settings, f"{label}-{role}", role) for role in ROLES}


def fresh_database(kind: str, directory) -> str:
    """The URL of an empty database: a SQLite file in ``directory``, or the reset PostgreSQL one."""
    return f"sqlite:///{directory / 'v2v.db'}" if kind == "sqlite" else reset_postgres()


# -- referrals and API clients (a TestClient with ``tokens``, one per role) ------------------------


def auth(client, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[role]}"}


def refer(client, patient_id: str, pathway: str = "axi-cel", approval: str = "2027-01-04", **extra) -> None:
    body = {"id": patient_id, "centre": "liverpool", "pathway": pathway, "approval_date": approval, **extra}
    response = client.post("/patients", json=body, headers=auth(client, "coordinator"))
    assert response.status_code == 201, response.text


def propose(client, patient_id: str) -> dict:
    response = client.post(f"/patients/{patient_id}/proposals", headers=auth(client, "coordinator"))
    assert response.status_code == 201, response.text
    return response.json()


def confirm(client, proposal_id: str, option: int = 0):
    return client.post(
        f"/proposals/{proposal_id}/confirm", json={"option": option}, headers=auth(client, "coordinator")
    )


def din_text(number: str) -> str:
    """An ISBT 128 donation identification number with its check character, as a label prints it."""
    from pathway.isbt import check_character

    return number + check_character(number)


def assert_complete_and_clean(problem, plan) -> None:
    """The plan breaks no rule, and every patient is either scheduled or listed unschedulable, with a reason."""
    assert check_plan(problem, plan) == []
    scheduled = plan.scheduled_patients()
    unschedulable = {u.patient for u in plan.unschedulable}
    assert not scheduled & unschedulable
    assert scheduled | unschedulable == {p.id for p in problem.patients}
    for u in plan.unschedulable:
        assert u.rule and len(u.reason) > 20


def assert_plan_valid(settings) -> None:
    """The current plan of every patient it books (referrals awaiting a proposal aside) breaks no rule."""
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            plan = state.current_plan(session)
            planned = {b.patient for b in plan.bookings} | {u.patient for u in plan.unschedulable}
            # as the service sees it: what has started, what lies in the freeze window and collected
            # products are fixed (an unschedulable patient may keep those, and only those)
            problem = state.held_problem(session, settings, include=planned)
            violations = check_plan(problem, plan)
    finally:
        engine.dispose()
    assert [v.message for v in violations] == [], [v.message for v in violations]


def run_nightly(settings: Settings, night: date | None = None, trigger: str = "schedule", after_solve=None) -> int:
    """One nightly run on ``settings``' database, here and now (claimed for ``night``, default the planning day)."""
    from api import nightly

    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        run_id = nightly.claim_night(sessions, settings, night or settings.planning_day(), trigger)
        assert run_id is not None, "that night has been run already"
        nightly.execute(sessions, settings, run_id, after_solve)
        return run_id
    finally:
        engine.dispose()


def ledger_runs(settings: Settings) -> list:
    """Every row of the run ledger, oldest first (detached, to read after the engine is gone)."""
    from api.db import JobRun

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            runs = list(session.scalars(select(JobRun).order_by(JobRun.id)))
            session.expunge_all()
            return runs
    finally:
        engine.dispose()


def refer_directly(settings: Settings, patient_id: str, pathway: str = "axi-cel") -> None:
    """Register a referral through the service layer (for tests with no HTTP client)."""
    refer_many(settings, [patient_id], pathway)


def refer_many(settings: Settings, patient_ids: list[str], pathway: str = "axi-cel", centre: str = "liverpool") -> None:
    """Register referrals through the service layer, in one transaction (many at once, quickly)."""
    from api import services
    from api.audit import SYSTEM
    from api.schemas import ReferralIn
    from api.unit_of_work import Database

    engine = make_engine(settings.database_url)
    try:
        with Database(make_sessionmaker(engine)).plan_write() as work:
            for patient_id in patient_ids:
                referral = ReferralIn(
                    id=patient_id, centre=centre, pathway=pathway, approval_date=settings.planning_day()
                )
                fields = referral.model_dump(mode="json", exclude={"nhs_number"})
                services.register_referral(work, fields, None, settings, SYSTEM)
    finally:
        engine.dispose()


# -- server processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(
    base_url: str, process: subprocess.Popen, output: Callable[[], str], seconds: float = 60
) -> None:
    """Until ``GET /health`` answers 200; fails with the server's ``output()`` if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{output()[-3000:]}", pytrace=False)
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not answer within {seconds:.0f} s:\n{output()[-3000:]}", pytrace=False)
        time.sleep(0.2)
