"""The schema comes from the Alembic migrations, and they match the ORM models exactly."""

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, Date, DateTime, Integer, String, column, insert, inspect, select, table, text

from api import migrate
from api.db import Base, JobRun, make_engine, make_sessionmaker


def test_migrations_build_the_models_schema_and_roll_back(database_url):
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        migrate.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_run_attempts_migration_keeps_every_run_and_leaves_one_running(database_url):
    """Before 0004 several runs could be marked running at once (the race it closes): the upgrade
    keeps every row, closes all but the newest running one as failed saying why, and links nothing."""
    runs = table(
        "job_runs",
        column("id", Integer),
        column("job", String),
        column("run_date", Date),
        column("night", Date),
        column("trigger", String),
        column("started_at", DateTime(timezone=True)),
        column("status", String),
        column("claimed_by", String),
        column("stats", JSON),
        column("report", JSON),
    )
    day = date(2027, 1, 4)
    rows = [
        (1, day, "schedule", "kept", {"summary": "nothing changed"}),
        (2, None, "manual", "running", {}),
        (3, None, "manual", "running", {}),
        (4, day + timedelta(days=1), "schedule", "failed", {"summary": "interrupted", "interrupted": True}),
    ]
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0003")
        with engine.begin() as connection:
            for id_, night, trigger, status, report in rows:
                connection.execute(
                    insert(runs).values(
                        id=id_,
                        job="nightly",
                        run_date=day,
                        night=night,
                        trigger=trigger,
                        started_at=datetime(2027, 1, 4, 2, 30, id_, tzinfo=UTC),
                        status=status,
                        claimed_by="elsewhere:1:0",
                        stats={},
                        report=report,
                    )
                )
        migrate.upgrade(engine)
        with make_sessionmaker(engine)() as session:
            after = {r.id: r for r in session.scalars(select(JobRun))}
    finally:
        engine.dispose()
    assert sorted(after) == [1, 2, 3, 4] and all(r.retry_of is None for r in after.values())
    assert [(after[i].night, after[i].trigger) for i in sorted(after)] == [(n, t) for _, n, t, _, _ in rows]
    assert {i: after[i].status for i in after} == {1: "kept", 2: "failed", 3: "running", 4: "failed"}
    assert "one run at a time" in after[2].report["summary"] and after[2].finished_at is not None
    assert after[4].report == rows[3][4] and after[1].report == rows[0][4]


def test_the_actuals_migration_keeps_every_referral_and_plan_and_frees_a_withdrawn_patients_number(database_url):
    """0005 adds what happened (records, products, custody, calendar links) and the planning days of
    versions and changes, keeping every row; an NHS number becomes unique among patients not withdrawn."""
    from sqlalchemy.exc import IntegrityError

    patients = table(
        "patients",
        column("id", String),
        column("centre", String),
        column("pathway", String),
        column("approval_date", Date),
        column("urgency", String),
        column("last_doses", JSON),
        column("blackouts", JSON),
        column("durations", JSON),
        column("nhs_number", String),
        column("status", String),
        column("created_at", DateTime(timezone=True)),
        column("updated_at", DateTime(timezone=True)),
    )
    versions = table(
        "plan_versions",
        column("id", Integer),
        column("kind", String),
        column("reason", String),
        column("created_at", DateTime(timezone=True)),
        column("created_by", String),
        column("unschedulable", JSON),
    )
    moment = datetime(2027, 1, 4, 9, tzinfo=UTC)
    common = {"centre": "liverpool", "pathway": "axi-cel", "approval_date": date(2027, 1, 4), "urgency": "routine"}
    common |= {"last_doses": {}, "blackouts": [], "durations": {}, "created_at": moment, "updated_at": moment}
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0004")
        with engine.begin() as connection:
            connection.execute(
                insert(patients).values(id="M-OLD-1", nhs_number="9434765919", status="withdrawn", **common)
            )
            connection.execute(
                insert(patients).values(id="M-OLD-2", nhs_number="4010232137", status="scheduled", **common)
            )
            connection.execute(
                insert(versions).values(
                    id=1, kind="init", reason="", created_at=moment, created_by="x", unschedulable=[]
                )
            )
        migrate.upgrade(engine)
        with engine.begin() as connection:
            kept = connection.execute(select(patients.c.id, patients.c.nhs_number).order_by(patients.c.id)).all()
            days = connection.execute(text("SELECT planning_day FROM plan_versions")).all()
            # the withdrawn patient's number may be used by a new referral, not an active one's
            connection.execute(
                insert(patients).values(id="M-NEW-1", nhs_number="9434765919", status="referred", **common)
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                insert(patients).values(id="M-NEW-2", nhs_number="4010232137", status="referred", **common)
            )
    finally:
        engine.dispose()
    assert kept == [("M-OLD-1", "9434765919"), ("M-OLD-2", "4010232137")]
    assert days == [(None,)]
