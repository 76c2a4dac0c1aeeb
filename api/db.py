"""The database: engine set-up and the typed ORM tables.

Schema is created by Alembic migrations (``api/migrations``), never by
``create_all``. One writer at a time touches the plan: every write transaction
starts by bumping the single ``plan_head`` row (a row lock on PostgreSQL; on
SQLite every write transaction is ``BEGIN IMMEDIATE``), so a check of free
capacity and the booking that follows it cannot interleave with another's.

Bookings are versioned by validity: a booking belongs to every plan version
from ``from_version`` up to (not including) ``to_version``; the current plan
is ``plan_head.version_id`` and its bookings are those with no ``to_version``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy import text as sa_text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

READONLY = "v2v_readonly"
ROLES = ("coordinator", "lab_manager", "admin")
PATIENT_STATUSES = ("referred", "scheduled", "unschedulable", "withdrawn")
BOOKING_STATUSES = ("planned", "confirmed")
RUN_STATUSES = ("running", "published", "kept", "failed")
RUN_TRIGGERS = ("schedule", "catch-up", "manual")
STEP_OUTCOMES = ("started", "done", "missed", "cancelled")
CUSTODY_KINDS = (
    "collected",
    "shipped",
    "received",
    "manufacture_started",
    "expected_back",
    "shipped_back",
    "received_at_centre",
    "released",
    "out_of_specification",
    "exceptional_release",
    "issued",
    "infused",
    "lost",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC, PostgreSQL aware: the same aware UTC moment from either."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class CatalogueVersion(Base):
    """The pathway catalogue or the site definition, one row per edit (the latest of a kind is in force)."""

    __tablename__ = "catalogue_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    __table_args__ = (CheckConstraint("kind IN ('pathways', 'site')", name="kind"), Index(None, "kind", "id"))


class CapacityChangeRow(Base):
    """A closure (capacity 0) or capacity change entered by a lab manager, on top of the site's own."""

    __tablename__ = "capacity_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(64))
    centre: Mapped[str | None] = mapped_column(String(64))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    capacity: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None]
    # the planning days it was entered and withdrawn on (NULL: before 0005, or not withdrawn)
    created_on: Mapped[date | None] = mapped_column(Date)
    withdrawn_on: Mapped[date | None] = mapped_column(Date)
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity"),
        CheckConstraint("last_day >= first_day", name="days"),
    )


class PatientRow(Base):
    """A referral. ``id`` is pseudonymous; ``nhs_number`` is optional, validated, never logged or audited."""

    __tablename__ = "patients"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    centre: Mapped[str] = mapped_column(String(64))
    pathway: Mapped[str] = mapped_column(String(64))
    approval_date: Mapped[date] = mapped_column(Date)
    earliest_start: Mapped[date | None] = mapped_column(Date)
    urgency: Mapped[str] = mapped_column(String(16))
    target_infusion_date: Mapped[date | None] = mapped_column(Date)
    last_doses: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blackouts: Mapped[list[Any]] = mapped_column(default=list)
    durations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    nhs_number: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default="referred")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # one active referral per NHS number: a withdrawn patient keeps theirs, and a new referral may reuse it
    __table_args__ = (
        CheckConstraint(f"status IN {PATIENT_STATUSES}", name="status"),
        Index(
            "uq_patients_active_nhs_number",
            "nhs_number",
            unique=True,
            sqlite_where=sa_text("status != 'withdrawn'"),
            postgresql_where=sa_text("status != 'withdrawn'"),
        ),
    )


class SolverRun(Base):
    __tablename__ = "solver_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(32))
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(64))


class PlanVersion(Base):
    """One version of the site's plan; ``unschedulable`` lists the patients it could not place, with why."""

    __tablename__ = "plan_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    solver_run_id: Mapped[int | None] = mapped_column(ForeignKey("solver_runs.id"))
    unschedulable: Mapped[list[Any]] = mapped_column(default=list)
    planning_day: Mapped[date | None] = mapped_column(Date)  # the day it was made on (NULL: before 0005)


class PlanHead(Base):
    """The one row naming the current plan version; every plan write bumps ``changes`` first."""

    __tablename__ = "plan_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    changes: Mapped[int] = mapped_column(default=0)
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class BookingRow(Base):
    __tablename__ = "bookings"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    step: Mapped[str] = mapped_column(String(64))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    fixed_by: Mapped[str] = mapped_column(Text, default="")
    from_version: Mapped[int] = mapped_column(ForeignKey("plan_versions.id"))
    to_version: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    __table_args__ = (
        CheckConstraint(f"status IN {BOOKING_STATUSES}", name="status"),
        CheckConstraint("last_day >= first_day", name="days"),
        Index(None, "to_version", "first_day"),
        Index(None, "patient_id", "to_version"),
        Index(None, "from_version"),
    )


class ProposalRow(Base):
    """Options offered to a coordinator for one patient, against the plan version they were computed on."""

    __tablename__ = "proposals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    base_version: Mapped[int] = mapped_column(ForeignKey("plan_versions.id"))
    options: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    __table_args__ = (CheckConstraint("status IN ('open', 'confirmed', 'superseded')", name="status"),)


class EventRow(Base):
    """Something that happened to a patient or the site: referral, deferral, OOS, withdrawal, closure."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    __table_args__ = (Index(None, "patient_id"),)


class AuditEntry(Base):
    """Append-only (database triggers refuse UPDATE and DELETE): who did what, before and after."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class StepRecord(Base):
    """What happened to a booked step, as a person recorded it. Append-only: the latest record of a
    booking is its state (started, then done; a correction is a newer record), earlier ones stay.

    ``booking_id`` is the booking it records: a step booked again after a miss is a new booking with
    records of its own. ``recorded_on`` is the planning day it was recorded on."""

    __tablename__ = "step_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    step: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(64))
    __table_args__ = (
        CheckConstraint(f"outcome IN {STEP_OUTCOMES}", name="outcome"),
        CheckConstraint("last_day IS NULL OR first_day IS NULL OR last_day >= first_day", name="days"),
        Index(None, "patient_id", "step"),
        Index(None, "booking_id"),
    )


class ProductRow(Base):
    """A product made from one collection of a patient's (or donor's) cells, with the identifiers the
    lab and the manufacturer issue (stored and shown, never generated). Its state is its custody events."""

    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    collection_step: Mapped[str] = mapped_column(String(64))
    # ISBT 128 donation identification number: one donation's products share it (a re-manufacture)
    din: Mapped[str | None] = mapped_column(String(13), index=True)
    din_check: Mapped[str | None] = mapped_column(String(1))  # its ISO 7064 mod 37-2 check character
    product_code: Mapped[str | None] = mapped_column(String(8))
    chain_of_identity: Mapped[str | None] = mapped_column(String(64))
    order_reference: Mapped[str | None] = mapped_column(String(64))
    bags: Mapped[int | None]
    created_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    __table_args__ = (CheckConstraint("bags IS NULL OR bags > 0", name="bags"), Index(None, "patient_id"))


class CustodyEvent(Base):
    """One link of a product's chain of custody, in the order it happened. Append-only."""

    __tablename__ = "custody_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    kind: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)  # the day it happened (expected_back: the day it is expected)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recorded_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(64))
    __table_args__ = (CheckConstraint(f"kind IN {CUSTODY_KINDS}", name="kind"), Index(None, "product_id", "id"))


class CalendarLink(Base):
    """A secret link to one patient's calendar feed, stored as SHA-256 of the secret; revocable."""

    __tablename__ = "calendar_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None]
    __table_args__ = (Index(None, "patient_id"),)


def _partial_unique(name: str, columns: list[str], where: str) -> Index:
    """A UNIQUE index over the rows matching ``where`` (both SQLite and PostgreSQL have them)."""
    return Index(name, *columns, unique=True, sqlite_where=sa_text(where), postgresql_where=sa_text(where))


class JobRun(Base):
    """The run ledger and run history of scheduled jobs: one row per attempt, never overwritten.

    ``night`` is the scheduled night a run stands for: however many server
    processes share the database, a night is claimed once (its first attempt is
    UNIQUE per job and night). A night whose run was interrupted is run again as
    a new row, ``retry_of`` the interrupted one (UNIQUE: one retry per attempt).
    A run an admin starts has no night (NULL, and NULLs never clash). Whatever
    starts it, one run of a job is ``running`` at a time (a partial UNIQUE index)."""

    __tablename__ = "job_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(32))
    run_date: Mapped[date] = mapped_column(Date)  # the planning day the run planned from
    night: Mapped[date | None] = mapped_column(Date)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    claimed_by: Mapped[str] = mapped_column(String(128))
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    plan_version_id: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"), unique=True)
    __table_args__ = (
        _partial_unique("uq_job_runs_night_first_attempt", ["job", "night"], "retry_of IS NULL"),
        _partial_unique("uq_job_runs_one_running", ["job"], "status = 'running'"),
        CheckConstraint(f"status IN {RUN_STATUSES}", name="status"),
        CheckConstraint(f"trigger IN {RUN_TRIGGERS}", name="trigger"),
        Index(None, "job", "started_at"),
    )


class ApiToken(Base):
    """Bearer tokens, stored as SHA-256 of the secret (the secret is shown once, at creation)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="role"),)


# -- engine -------------------------------------------------------------------------------------
def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// URLs use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: an error's text (which servers log) never carries stored values, e.g. an NHS number
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

    # pysqlite's own transaction handling is switched off so that every
    # transaction is BEGIN IMMEDIATE: writers queue on the database lock
    # instead of failing half-way with "database is locked".
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        readonly = connection.get_execution_options().get(READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: Engine, readonly: bool = False) -> sessionmaker:
    """Sessions for writes, or (``readonly``) for views: on SQLite those do not queue behind writers."""
    return sessionmaker(engine.execution_options(**{READONLY: True}) if readonly else engine, expire_on_commit=False)
