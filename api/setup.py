"""Preparing a database: migrate, load the catalogue, create tokens, import and plan a cohort.

Used by ``v2v db init``, ``v2v token create``, ``v2v demo`` and the tests.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from api import migrate, services
from api.audit import SYSTEM, Actor
from api.auth import create_token, revoke
from api.db import ApiToken, make_engine, make_sessionmaker
from api.settings import Settings
from api.state import Conflict
from pathway.cohort import Problem, load_problem
from pathway.plan import Plan


IMPORT_ATTEMPTS = 3


def init_database(settings: Settings) -> None:
    """Bring the schema to the newest migration and load the catalogue and site if absent."""
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            services.load_catalogue_files(session, settings, SYSTEM)
    finally:
        engine.dispose()


def new_token(settings: Settings, name: str, role: str, by: Actor = SYSTEM) -> str:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            return create_token(session, name, role, by)
    finally:
        engine.dispose()


def revoke_token(settings: Settings, name: str, by: Actor = SYSTEM) -> None:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            revoke(session, name, by)
    finally:
        engine.dispose()


def list_tokens(settings: Settings) -> list[tuple]:
    """(name, role, created_at, revoked_at) of every token; secrets are not stored, so not shown."""
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return [(t.name, t.role, t.created_at, t.revoked_at) for t in session.scalars(select(ApiToken).order_by(ApiToken.name))]
    finally:
        engine.dispose()


def load_cohort(settings: Settings, path: Path | str, time_limit: float | None = None, status: str = "confirmed") -> Plan:
    """Register a cohort file's patients, solve the whole site and publish the plan (one new version).

    Registering and publishing are two transactions around the solve; if anyone wrote in between,
    the plan is made again on what is there (up to IMPORT_ATTEMPTS times)."""
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        file_problem: Problem = load_problem(path)
        with sessions() as session, session.begin():
            services.import_cohort(session, file_problem, SYSTEM)
        patients = {p.id for p in file_problem.patients}
        if time_limit is not None:
            settings = settings.model_copy(update={"solve_time_limit": time_limit})
        for attempt in range(IMPORT_ATTEMPTS):
            with sessions() as session, session.begin():
                data = services.replan_input(session, patients, settings)
            plan = services.run_replan(data, settings)
            try:
                with sessions() as session, session.begin():
                    services.publish_plan(
                        session,
                        plan,
                        patients,
                        data.base_changes,
                        "import",
                        f"cohort {file_problem.cohort.name} planned and confirmed on import",
                        status,
                        settings,
                        SYSTEM,
                    )
                break
            except Conflict:  # someone wrote while it solved: plan again on what is there now
                if attempt == IMPORT_ATTEMPTS - 1:
                    raise
        return plan
    finally:
        engine.dispose()



