"""The run ledger of scheduled jobs: exactly one run per job and night.

Every server process runs its own scheduler, so the database decides who runs a
night: a row per (job, night) under a UNIQUE constraint. On PostgreSQL a
transaction-scoped advisory lock on the pair is taken first, so a second
claimer gives up at once instead of waiting on the first one's insert. Runs an
admin starts have no night and are not limited.

``night_trigger`` is the cron trigger the nightly job is scheduled with;
tests check its fire times date-in/date-out, never by sleeping.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import JobRun, as_utc, utcnow


def night_trigger(at: str = "02:30", timezone: str = "Europe/London") -> CronTrigger:
    """Every day at ``at`` (HH:MM, local time in ``timezone``).

    Times between 01:00 and 01:59 in Europe/London occur twice on the last Sunday
    of October; the ledger keeps that to one run, but 02:30 avoids it.
    """
    hour, minute = (int(part) for part in at.split(":"))
    return CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(timezone))


def _lock_key(job: str, run_date: date) -> int:
    """A signed 64-bit key for pg_try_advisory_xact_lock."""
    digest = hashlib.sha256(f"{job}:{run_date.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_INCARNATION = secrets.token_hex(
    4
)  # tells this process from an earlier one that had the same pid (a restarted container)


def claimer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_INCARNATION}"


def claim(
    session: Session, job: str, night: date, run_date: date | None = None, trigger: str = "schedule"
) -> JobRun | None:
    """The new ledger row if this process may run ``job`` for ``night``, else None (someone has).

    ``run_date`` is the planning day (default: the night's date). Call inside a
    transaction; the claim holds once that transaction commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        locked = session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _lock_key(job, night)}
        ).scalar()
        if not locked:
            return None
    existing = session.scalars(select(JobRun).where(JobRun.job == job, JobRun.night == night)).first()
    if existing is not None:
        return _retake(session, existing, run_date or night, trigger) if interrupted(existing) else None
    run = JobRun(job=job, night=night, run_date=run_date or night, trigger=trigger, claimed_by=claimer())
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:  # another process inserted it first
        return None
    return run


def finish(
    session: Session, run: JobRun, status: str, stats: dict[str, Any], report: dict[str, Any], plan_version: int | None
) -> None:
    run.status = status
    run.stats = stats
    run.report = report
    run.plan_version_id = plan_version
    run.finished_at = utcnow()


def start_manual(session: Session, job: str, run_date: date) -> JobRun:
    """A run started on demand (no night: never clashes with the ledger's nights)."""
    run = JobRun(job=job, night=None, run_date=run_date, trigger="manual", claimed_by=claimer())
    session.add(run)
    session.flush()
    return run


def running(session: Session, job: str) -> JobRun | None:
    return session.scalars(
        select(JobRun).where(JobRun.job == job, JobRun.status == "running").order_by(JobRun.id.desc())
    ).first()


def last_night(session: Session, job: str) -> date | None:
    """The latest night the ledger holds for ``job`` (None: it has never run on schedule)."""
    return session.scalars(
        select(JobRun.night).where(JobRun.job == job, JobRun.night.is_not(None)).order_by(JobRun.night.desc())
    ).first()


def abandon(session: Session, run: JobRun) -> None:
    """A run still marked running whose process ended mid-run (killed, crashed, restarted): it
    is marked failed. The plan it was computing was never published (publishing is one transaction).
    Its night may be claimed again (``claim``)."""
    summary = "interrupted: the process ended before the run finished; the plan was not changed"
    finish(session, run, "failed", run.stats, {"summary": summary, "interrupted": True}, None)


def interrupted(run: JobRun) -> bool:
    return run.status == "failed" and bool((run.report or {}).get("interrupted"))


def _retake(session: Session, run: JobRun, run_date: date, trigger: str) -> JobRun | None:
    """Claim an interrupted night again: a guarded update, so of two claimers only one wins."""
    taken = session.execute(
        update(JobRun)
        .where(JobRun.id == run.id, JobRun.status == "failed")
        .values(
            status="running",
            claimed_by=claimer(),
            started_at=utcnow(),
            finished_at=None,
            run_date=run_date,
            trigger=trigger,
            stats={},
            report={},
        )
    )
    if taken.rowcount != 1:
        return None
    session.refresh(run)
    return run


def alive(claimed_by: str, started_at: datetime, now: datetime, longest: float) -> bool:
    """Whether a run marked running may still be running. Never once it is older than ``longest``
    seconds; on this host, only if its process exists (and, for this very pid, is this process)."""
    if (now - as_utc(started_at)).total_seconds() >= longest:
        return False
    host, pid, incarnation = (claimed_by.split(":") + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return incarnation == _INCARNATION
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def history(session: Session, job: str, limit: int = 30, offset: int = 0) -> list[JobRun]:
    query = select(JobRun).where(JobRun.job == job).order_by(JobRun.started_at.desc(), JobRun.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))
