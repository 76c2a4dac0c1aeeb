"""The run ledger of scheduled jobs: exactly one run per job and night, one run of a job at a time.

Every server process runs its own scheduler, so the database decides who runs a
night: the night's first attempt is a row under a UNIQUE (job, night) index. On
PostgreSQL a transaction-scoped advisory lock on the pair is taken first, so a
second claimer gives up at once instead of waiting on the first one's insert.

Whatever starts a run (the schedule, a catch-up, an admin), a partial UNIQUE
index lets one row of a job be ``running`` at a time: of any number of racing
claimers, on any number of processes, one inserts its row and the others get
``InProgress`` naming the run that is going. A run whose process ended mid-run
holds nothing for long: ``abandon`` marks it failed (``api.nightly.recover``,
called before every claim), which frees the job.

Rows are never overwritten with another attempt: an interrupted night is run
again as a new row whose ``retry_of`` is the interrupted one (UNIQUE, so one
re-run per attempt however many claim it).

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
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import JobRun, as_utc, utcnow
from api.state import Conflict


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


_UNFINISHED: set[str] = set()  # this process's claims not yet finished (a claim token each)


def claimer() -> str:
    """Who claims a run: host, pid, this process's incarnation and a token for this one claim, which
    stays in ``_UNFINISHED`` until the run is finished (``finish``), whether or not that is stored."""
    token = secrets.token_hex(4)
    _UNFINISHED.add(token)
    return f"{socket.gethostname()}:{os.getpid()}:{_INCARNATION}:{token}"


class InProgress(Conflict):
    """Another run of the job is in progress: ``run_id`` (None if it ended while this was said)."""

    def __init__(self, job: str, run: JobRun | None):
        self.run_id = run.id if run is not None else None
        if run is None:
            super().__init__(f"another {job} run started at the same moment; see the run history")
        else:
            super().__init__(
                f"{job} run {run.id} is in progress (started {as_utc(run.started_at):%Y-%m-%d %H:%M:%S} UTC); "
                "wait for it to finish"
            )


def claim(
    session: Session, job: str, night: date, run_date: date | None = None, trigger: str = "schedule"
) -> JobRun | None:
    """The new ledger row if this process may run ``job`` for ``night``, else None (someone has).

    A night whose latest attempt was interrupted is claimed again with a new row linked to that
    attempt. ``InProgress`` if another run of the job is going (the night stays unclaimed).
    ``run_date`` is the planning day (default: the night's date). Call inside a transaction; the
    claim holds once that transaction commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        locked = session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _lock_key(job, night)}
        ).scalar()
        if not locked:
            return None
    latest = latest_attempt(session, job, night)
    if latest is not None and not interrupted(latest):
        return None
    run = JobRun(
        job=job,
        night=night,
        run_date=run_date or night,
        trigger=trigger,
        claimed_by=claimer(),
        retry_of=latest.id if latest is not None else None,
    )
    if _insert(session, run):
        return run
    now = latest_attempt(session, job, night)
    if now is not None and (latest is None or now.id != latest.id):  # another process claimed the night
        return None
    raise InProgress(job, running(session, job))


def start_manual(session: Session, job: str, run_date: date) -> JobRun:
    """A run started on demand (no night); ``InProgress`` while another run of ``job`` is going."""
    run = JobRun(job=job, night=None, run_date=run_date, trigger="manual", claimed_by=claimer())
    if not _insert(session, run):
        raise InProgress(job, running(session, job))
    return run


def _insert(session: Session, run: JobRun) -> bool:
    """Add ``run`` unless a UNIQUE index refuses it (a run of the job is going, or the same attempt
    was claimed by another process): the database decides, across threads and processes."""
    busy = running(session, run.job)
    if busy is not None:
        raise InProgress(run.job, busy)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:  # on PostgreSQL the insert waited for the winner's commit: it is visible now
        return False
    return True


def latest_attempt(session: Session, job: str, night: date) -> JobRun | None:
    """The newest row for ``job``'s ``night`` (a re-run comes after the attempt it repeats)."""
    query = select(JobRun).where(JobRun.job == job, JobRun.night == night).order_by(JobRun.id.desc())
    return session.scalars(query).first()


def finish(
    session: Session, run: JobRun, status: str, stats: dict[str, Any], report: dict[str, Any], plan_version: int | None
) -> None:
    _UNFINISHED.discard(run.claimed_by.rsplit(":", 1)[-1])  # finished here, even if this fails to be stored
    run.status = status
    run.stats = stats
    run.report = report
    run.plan_version_id = plan_version
    run.finished_at = utcnow()


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
    Its night may be claimed again (``claim``: a new row linked to this one)."""
    summary = "interrupted: the process ended before the run finished; the plan was not changed"
    finish(session, run, "failed", run.stats, {"summary": summary, "interrupted": True}, None)


def interrupted(run: JobRun) -> bool:
    return run.status == "failed" and bool((run.report or {}).get("interrupted"))


def alive(claimed_by: str, started_at: datetime, now: datetime, longest: float) -> bool:
    """Whether a run marked running may still be running. Never once it is older than ``longest``
    seconds; on this host, only if its process exists; for this very process, only if the run is not
    finished (a run cut off by a lost database, whose failure could not be stored, is not running)."""
    if (now - as_utc(started_at)).total_seconds() >= longest:
        return False
    host, pid, incarnation, token = (claimed_by.split(":") + ["", "", ""])[:4]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return incarnation == _INCARNATION and (token in _UNFINISHED or not token)
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
