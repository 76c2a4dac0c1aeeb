"""The run ledger of scheduled jobs: exactly one run per job and planning date.

Every server process runs its own scheduler, so the database decides who runs a
night: a row per (job, run date) under a UNIQUE constraint. On PostgreSQL a
transaction-scoped advisory lock on the pair is taken first, so a second
claimer gives up at once instead of waiting on the first one's insert.

``night_trigger`` is the cron trigger the nightly job is scheduled with;
tests check its fire times date-in/date-out, never by sleeping.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import JobRun, utcnow


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


def claimer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(session: Session, job: str, run_date: date) -> JobRun | None:
    """The new ledger row if this process may run ``job`` for ``run_date``, else None (someone has).

    Call inside a transaction; the claim holds once that transaction commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        locked = session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _lock_key(job, run_date)}).scalar()
        if not locked:
            return None
    if session.scalars(select(JobRun).where(JobRun.job == job, JobRun.run_date == run_date)).first() is not None:
        return None
    run = JobRun(job=job, run_date=run_date, claimed_by=claimer())
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:  # another process inserted it first
        return None
    return run


def finish(session: Session, run: JobRun, status: str, stats: dict[str, Any], report: dict[str, Any], plan_version: int | None) -> None:
    run.status = status
    run.stats = stats
    run.report = report
    run.plan_version_id = plan_version
    run.finished_at = utcnow()


def history(session: Session, job: str, limit: int = 30) -> list[JobRun]:
    return list(session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.run_date.desc()).limit(limit)))
