"""Preparing a database: migrate, load the catalogue, create tokens, import and plan a cohort.

Used by ``v2v db init`` (``--roles``: ``api.database_roles`` first), ``v2v token create``, ``v2v demo`` and the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from api import migrate, replanning, services, state
from api.audit import SYSTEM, Actor
from api.auth import create_token, revoke
from api.db import ApiToken, make_engine, make_sessionmaker
from api.replanning import BookingStatus, Publication
from api.settings import Settings
from api.unit_of_work import Database
from pathway.cohort import Problem, load_problem
from pathway.plan import Plan

IMPORT_ATTEMPTS = replanning.ATTEMPTS


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    """The configured database for one command (its engine disposed of afterwards)."""
    engine = make_engine(settings.database_url)
    try:
        yield Database(make_sessionmaker(engine))
    finally:
        engine.dispose()


def init_database(settings: Settings) -> None:
    """Bring the schema to the newest migration (as the owner role, if ``migration_database_url``
    names one) and load the catalogue and site if absent."""
    engine = make_engine(settings.migration_database_url or settings.database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    with _database(settings) as database:
        with database.write() as work:
            services.load_catalogue_files(work.session, settings, SYSTEM)
            planned = state.head(work.session).version_id is not None
        if not planned:
            with database.plan_write() as work:
                services.start_empty_plan(work, SYSTEM, settings.planning_day())


def new_token(settings: Settings, name: str, role: str, by: Actor = SYSTEM) -> str:
    with _database(settings) as database, database.write() as work:
        return create_token(work.session, name, role, by)


def revoke_token(settings: Settings, name: str, by: Actor = SYSTEM) -> None:
    with _database(settings) as database, database.write() as work:
        revoke(work.session, name, by)


def list_tokens(settings: Settings) -> list[tuple]:
    """(name, role, created_at, revoked_at) of every token; secrets are not stored, so not shown."""
    with _database(settings) as database, database.read() as work:
        return [
            (t.name, t.role, t.created_at, t.revoked_at)
            for t in work.session.scalars(select(ApiToken).order_by(ApiToken.name))
        ]


def load_cohort(
    settings: Settings, path: Path | str, time_limit: float | None = None, status: BookingStatus = "confirmed"
) -> Plan:
    """Register a cohort file's patients, solve the whole site and publish the plan (one new version).

    Registering and publishing are two transactions around the solve; if anyone wrote in between,
    the plan is made again on what is there (up to IMPORT_ATTEMPTS times)."""
    file_problem: Problem = load_problem(path)
    if time_limit is not None:
        settings = settings.model_copy(update={"solve_time_limit": time_limit})
    publication = Publication(
        kind="import",
        reason=f"cohort {file_problem.cohort.name} planned and confirmed on import",
        actor=SYSTEM,
        booking_status=status,
    )
    with _database(settings) as database:
        with database.plan_write() as work:
            services.import_cohort(work, file_problem, SYSTEM)
        cohort = services.Replan({p.id for p in file_problem.patients}, publication, settings, name="import")
        return replanning.solve_and_publish(database, cohort, IMPORT_ATTEMPTS).plan
