"""The nightly re-solve: every night the plan is re-optimised around what happened that day.

A run (``execute``):

1. **Claim.** A scheduled night is claimed in the run ledger (``api.ledger``),
   so however many server processes share the database one of them runs it.
   An admin's run is claimed in the same ledger: whatever starts it, one run
   at a time (a second gets 409 naming the first; a night that finds a run
   going waits for it). An interrupted night's re-run is a new row linked to
   the interrupted one, which stays in the history as failed.
2. **Read** in a short transaction: every active patient as a Problem in which
   what has started, every booking inside the freeze window (the next
   ``freeze_working_days`` working days) and every product already collected
   are frozen; the current plan; which bookings were confirmed to the patient.
   If nothing has changed since the last finished run (same fingerprint of
   patients, bookings, capacity changes, catalogue and day), the plan is kept
   without a solve: two runs in a row move nothing.
3. **Solve** outside any transaction (``solver.resolve``): minimal disruption,
   the current plan as the hint and the fallback.
4. **Publish** in one transaction, together with the ledger row's result. It
   succeeds only if nobody changed the plan during the solve (the plan head's
   change count); a confirmation that landed meanwhile makes the run read and
   solve again (up to ``ATTEMPTS`` times), so it is never lost. A crash or kill
   before this commit leaves the previous plan current and intact; the ledger
   row stays ``running`` until a server starts and marks it failed.
5. **Report:** per patient, every booking moved (from, to, why), patients who
   became unschedulable first; moved patients get a ``moved`` event.

``NightlyScheduler`` runs it inside the service: APScheduler 3's background
scheduler with a cron trigger (02:30 Europe/London by default), a generous
misfire grace, coalescing and one instance at a time; at start-up a night
missed while no server ran is run once (only the latest missed night).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from api import ledger, outage, replanning, services, state, views
from api.audit import Actor, record
from api.db import EventRow, JobRun, PatientRow, as_utc, utcnow
from api.replanning import Publication, StalePlan
from api.settings import Settings
from api.state import Conflict, NotFound
from api.unit_of_work import Database, UnitOfWork
from pathway.cohort import Problem
from pathway.dates import say_day
from pathway.plan import Plan
from pathway.usage import step_cells

if TYPE_CHECKING:
    from solver.resolve import Resolution

log = logging.getLogger("vein2vein.nightly")

JOB = "nightly"
NIGHTLY = Actor("nightly", "admin")  # who the plan versions, events and audit rows name
ATTEMPTS = replanning.ATTEMPTS  # read-solve-publish rounds before a run gives up on a plan that keeps changing
WAIT_S = 60  # a night that finds another run going is tried again this much later
WAITING = f"{JOB}-waiting"  # the scheduler's id of that later try
MISFIRE_GRACE_S = 12 * 3600  # a night's run delayed (suspended host, busy executor) still runs the same day
RETRY_S = 600  # a night that could not start or finish (database unreachable) is tried again this often
EVENT_WORDS = {
    "referral": "new referral",
    "deferral": "deferral",
    "oos": "product out of specification",
    "withdrawal": "withdrawal",
    "reinstatement": "reinstatement",
}
NOT_NEWS = ("moved", "confirmation")  # events that tell of a plan, not of something the plan must absorb


# -- one run ------------------------------------------------------------------------------------
@dataclasses.dataclass
class NightlyInput:
    problem: Problem
    current: Plan
    confirmed: set[tuple[str, str]]
    base_changes: int
    base_version: int | None
    fingerprint: str


def fingerprint(session: Session, settings: Settings) -> str:
    """A hash of everything a nightly run plans from: the day, patients, current bookings,
    capacity changes and catalogue versions. Equal fingerprints: nothing to re-plan."""
    rows = session.scalars(select(PatientRow).where(PatientRow.status != "withdrawn").order_by(PatientRow.id))
    content = {
        "today": settings.planning_day().isoformat(),
        "settings": [settings.horizon_days, settings.freeze_working_days],
        "catalogue": [state.latest(session, "pathways").id, state.latest(session, "site").id],
        "changes": [state.change_dict(c) for c in state.active_changes(session)],
        "patients": [state.patient_fields(r) | {"status": r.status} for r in rows],
        "bookings": sorted(
            (b.patient_id, b.step, b.first_day.isoformat(), b.last_day.isoformat(), b.status)
            for b in state.current_rows(session)
        ),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def prepare(session: Session, settings: Settings) -> NightlyInput:
    # The change counter first: on PostgreSQL (READ COMMITTED) each later statement may see newer
    # writes, each of which moved the counter on, so publishing on this base then fails safe.
    base_changes = state.head(session).changes
    problem = state.held_problem(session, settings)
    rows = state.current_rows(session)
    version = state.current_version(session)
    return NightlyInput(
        problem=problem,
        current=state.current_plan(session),
        confirmed={(b.patient_id, b.step) for b in rows if b.status == "confirmed"},
        base_changes=base_changes,
        base_version=version.id if version else None,
        fingerprint=fingerprint(session, settings),
    )


def solve(data: NightlyInput, settings: Settings) -> Resolution:
    """The re-solve itself (no database)."""
    from solver.resolve import resolve
    from solver.solve import SolveOptions

    return resolve(
        data.problem, data.current, data.confirmed, SolveOptions(time_limit=settings.nightly_time_limit, workers=4)
    )


def execute(
    sessions: sessionmaker, settings: Settings, run_id: int, after_solve: Callable[[int], None] | None = None
) -> bool:
    """Carry out the claimed run ``run_id`` and record its outcome in the ledger; never raises.
    False if the database went away during the run (the night is to be tried again).

    ``after_solve(attempt)`` is called between a solve and its publish (tests use it to land a
    real confirmation at exactly that moment)."""
    database = Database(sessions)
    night = NightlyRound(run_id, settings, after_solve)
    try:
        replanning.solve_and_publish(database, night, ATTEMPTS)
    except StalePlan:
        _failed(
            database,
            night,
            f"the plan changed during each of {ATTEMPTS} solves; nothing was published (the next run tries again)",
        )
    except Exception as exc:  # the service stays up; the ledger says what failed
        if outage.unreachable(exc):
            _cut_off(database, night)
            return False
        # messages can carry patient ids: the error level names the type only, the trace is for debugging
        log.error("nightly run %s failed: %s", run_id, type(exc).__name__)
        log.debug("nightly run %s failed", run_id, exc_info=True)
        _failed(database, night, f"failed: {type(exc).__name__}; the plan was not changed")
    return True


def _cut_off(database: Database, night: NightlyRound) -> None:
    """The database went away during the run: recorded as interrupted (so that the night is claimed again)
    if it is back already; else its row is closed by ``recover`` once the database is back (the claim
    is finished in this process: ``ledger.alive``); one log line."""
    summary = "interrupted: the database became unreachable; the plan was not changed"
    try:
        _failed(database, night, summary, interrupted=True)
        recorded = "recorded as interrupted"
    except DBAPIError as exc:
        if not outage.unreachable(exc):
            raise
        recorded = "its ledger row is closed once the database is back"
    log.warning(
        "nightly run %s stopped: the database is unreachable; the plan was not changed; %s", night.run_id, recorded
    )


def _failed(database: Database, night: NightlyRound, summary: str, interrupted: bool = False) -> None:
    """Close the run's ledger row as failed, with ``summary`` as its report (``interrupted``: its night
    is claimed again, in a new row linked to this one)."""
    report = {"summary": summary} | ({"interrupted": True} if interrupted else {})
    with database.write() as work:
        stats = night.stats | _elapsed(night.started)
        ledger.finish(work.session, work.session.get(JobRun, night.run_id), "failed", stats, report, None)


@dataclasses.dataclass
class Reading:
    """What one attempt of a run read: the input, the last finished run, and since when events are news."""

    data: NightlyInput
    previous: JobRun | None
    since: datetime | None


class NightlyRound:
    """A run as a planning round (``api.replanning``). When nothing changed since the last
    finished run (same fingerprint) it does not solve, and its publish keeps the plan."""

    def __init__(self, run_id: int, settings: Settings, after_solve: Callable[[int], None] | None = None):
        self.run_id = run_id
        self.settings = settings
        self.after_solve = after_solve
        self.name = f"nightly run {run_id}"
        self.started = time.perf_counter()
        self.stats: dict[str, Any] = {"attempts": 0}

    def read(self, session: Session, attempt: int) -> Reading:
        self.stats["attempts"] = attempt
        data = prepare(session, self.settings)
        previous = _last_finished(session, self.run_id)
        # events since the last run are news; before any run, those since the current plan was made
        version = state.current_version(session)
        since = previous.started_at if previous else version.created_at if version else None
        return Reading(data, previous, since)

    def solve(self, reading: Reading) -> Resolution | None:
        if reading.previous is not None and reading.previous.stats.get("fingerprint") == reading.data.fingerprint:
            return None
        log.info(
            "%s: solving (attempt %d, %d patients)",
            self.name,
            self.stats["attempts"],
            len(reading.data.problem.patients),
        )
        resolution = solve(reading.data, self.settings)
        if self.after_solve is not None:
            self.after_solve(self.stats["attempts"])
        return resolution

    def keeps(self, reading: Reading, resolution: Resolution | None) -> bool:
        return resolution is None or _changes_nothing(reading.data, resolution)

    def publish(self, work: UnitOfWork, reading: Reading, resolution: Resolution | None) -> None:
        if resolution is None:
            summary = f"nothing changed since run {reading.previous.id}: the plan stays as it is"
            stats = self.stats | {"fingerprint": reading.data.fingerprint, "skipped_solve": True}
            _keep(work.session, self.run_id, reading.data, stats, summary, self.started)
            return
        _publish(work, self.run_id, reading.data, resolution, self.settings, reading.since, self.stats, self.started)


def _elapsed(started: float) -> dict[str, float]:
    return {"wall_time_s": round(time.perf_counter() - started, 3)}


def _last_finished(session: Session, run_id: int) -> JobRun | None:
    query = select(JobRun).where(JobRun.job == JOB, JobRun.id != run_id, JobRun.status.in_(("published", "kept")))
    return session.scalars(query.order_by(JobRun.finished_at.desc(), JobRun.id.desc())).first()


def _keep(
    session: Session, run_id: int, data: NightlyInput, stats: dict[str, Any], summary: str, started: float
) -> None:
    version = state.current_version(session)
    report = {
        "summary": summary,
        "from_version": data.base_version,
        "to_version": None,
        "bookings_moved": 0,
        "unschedulable": list(version.unschedulable) if version else [],
        "patients": [],
    }
    stats = stats | {"bookings_moved": 0} | _elapsed(started)
    ledger.finish(session, session.get(JobRun, run_id), "kept", stats, report, None)


def _added(data: NightlyInput, resolution: Resolution) -> list:
    current = {(b.patient, b.step) for b in data.current.bookings}
    return [b for b in resolution.plan.bookings if (b.patient, b.step) not in current]


def _changes_nothing(data: NightlyInput, resolution: Resolution) -> bool:
    """No booking moves or is added, and the same patients are unschedulable."""
    added = _added(data, resolution)
    active = {p.id for p in data.problem.patients}
    refused_before = {u.patient for u in data.current.unschedulable} & active  # a withdrawn patient's entry is history
    refused_now = {u.patient for u in resolution.plan.unschedulable}
    return not resolution.moves and not added and refused_now == refused_before


def _publish(
    work: UnitOfWork,
    run_id: int,
    data: NightlyInput,
    resolution: Resolution,
    settings: Settings,
    since: datetime | None,
    stats: dict[str, Any],
    started: float,
) -> None:
    """Make the re-solved plan current, or keep the current one if nothing in it changes (one planning write)."""
    session = work.session
    stats = stats | resolution.stats
    active = {p.id for p in data.problem.patients}
    if _changes_nothing(data, resolution):
        summary = (
            "the re-solve found no plan better than the current one by more than moving bookings costs: nothing moved"
        )
        _keep(session, run_id, data, stats | {"fingerprint": data.fingerprint}, summary, started)
        return
    affected = _affected(session, data, resolution, since)
    why = _reasons(session, data, resolution, affected, since)
    run = session.get(JobRun, run_id)
    reason = f"nightly re-solve of {run.run_date.isoformat()} (run {run.id})"
    publication = Publication(kind="nightly", reason=reason, actor=NIGHTLY, why=why, details={"nightly_run": run.id})
    version = services.publish_plan(work, resolution.plan, active, data.base_changes, publication, settings)
    report = views.diff(session, version.parent_id, version.id)
    for entry in report["patients"]:
        for change in entry["changes"]:
            change["why"] = why.get(entry["patient"], change.get("why", ""))
    moved = [m for m in resolution.moves if m.to_first_day is not None]
    added = _added(data, resolution)
    unaffected = [m for m in moved if m.patient not in affected]
    report["summary"] = (
        f"{len(moved)} booking(s) of {len({m.patient for m in moved})} patient(s) moved, "
        f"{len(added)} added, {len(resolution.moves) - len(moved)} removed; "
        f"{len(unaffected)} moved booking(s) belong to patients no event touched"
    )
    stats = (
        stats
        | {
            "fingerprint": fingerprint(session, settings),
            "bookings_added": len(added),
            "moved_unaffected": len(unaffected),
            "affected_patients": len(affected),
        }
        | _elapsed(started)
    )
    ledger.finish(session, run, "published", stats, report, version.id)
    record(
        session,
        NIGHTLY,
        "nightly.published",
        "plan_version",
        version.id,
        None,
        {"run": run.id, "bookings_moved": len(moved)},
    )


def _events_since(session: Session, since: datetime | None) -> list[EventRow]:
    query = select(EventRow).where(EventRow.kind.not_in(NOT_NEWS))
    if since is not None:
        query = query.where(EventRow.created_at >= since)
    return list(session.scalars(query.order_by(EventRow.id)))


def _affected(session: Session, data: NightlyInput, resolution: Resolution, since: datetime | None) -> set[str]:
    """Patients an event touched directly: no standing schedule before the run (new, released,
    broken by a change), or an event of their own since the last run."""
    active = {p.id for p in data.problem.patients}
    own = {e.patient_id for e in _events_since(session, since) if e.patient_id in active}
    return set(resolution.unplanned) | set(resolution.broken) | own


def _reasons(
    session: Session, data: NightlyInput, resolution: Resolution, affected: set[str], since: datetime | None
) -> dict[str, str]:
    """Why each patient's bookings move, appear or go, in a coordinator's words."""
    events = _events_since(session, since)
    own: dict[str, list[EventRow]] = defaultdict(list)
    for e in events:
        if e.patient_id:
            own[e.patient_id].append(e)
    site_changes = [e for e in events if e.patient_id is None and e.kind in ("closure", "capacity_change")]
    freed = [f"{e.patient_id}'s withdrawal" for e in events if e.kind == "withdrawal"]
    freed += [_change_words(e) for e in site_changes if e.kind == "capacity_change"]  # a closure frees nothing
    before = {(b.patient, b.step): b.first_day for b in data.current.bookings}
    new = {(b.patient, b.step): b.first_day for b in resolution.plan.bookings}
    placed = {b.patient for b in resolution.plan.bookings if (b.patient, b.step) not in before}
    touched = {m.patient for m in resolution.moves} | placed
    helped = sorted((placed | {m.patient for m in resolution.moves}) & affected)  # affected patients this plan serves
    refused = {u.patient: u.reason for u in resolution.plan.unschedulable}
    out = {}
    for pid in sorted(touched | (set(refused) - {u.patient for u in data.current.unschedulable})):
        patient = data.problem.patient(pid)
        if pid in refused:
            out[pid] = f"unschedulable: {refused[pid]}"
        elif own.get(pid):
            out[pid] = "after " + "; ".join(_event_words(e) for e in own[pid])
        elif pid in resolution.broken:
            rules = resolution.broken[pid]
            hits = [_change_words(e) for e in site_changes if "CAPACITY" in rules and _hits(data, patient, e)]
            out[pid] = f"its bookings broke {', '.join(rules)}" + (f" after {'; '.join(hits)}" if hits else "")
        elif pid in resolution.unplanned:
            out[pid] = "not planned before (no standing schedule)"
        else:
            infusion = next((s.step.name for s in data.problem.steps(patient) if s.step.kind.value == "infusion"), None)
            was, now = before.get((pid, infusion)), new.get((pid, infusion))
            others = [h for h in helped if h != pid]
            if was and now and now < was:
                opened = f" (after {'; '.join(freed[:3])})" if freed else ""
                out[pid] = f"a better slot opened{opened}: infusion {say_day(now)} instead of {say_day(was)}"
            elif others:
                more = f" and {len(others) - 5} more" if len(others) > 5 else ""
                out[pid] = f"moved to make room for {', '.join(others[:5])}{more}"
            else:
                out[pid] = "moved for a better plan overall (the plan's cost, moves included, went down)"
    return out


def _hits(data: NightlyInput, patient, event: EventRow) -> bool:
    """Whether a capacity change's resource and days meet one of the patient's current bookings."""
    d = event.details or {}
    first, last = date.fromisoformat(d["first_day"]), date.fromisoformat(d["last_day"])
    booked = data.current.bookings_of(patient.id)
    for step in data.problem.steps(patient):
        booking = booked.get(step.step.name)
        if booking is None:
            continue
        for resource, day, _ in step_cells(step, booking.first_day):  # the cells the checker counts
            first_day, last_day = resource.cell_days(day)
            if (
                resource.kind == d.get("resource")
                and resource.centre == d.get("centre")
                and first_day <= last
                and first <= last_day
            ):
                return True
    return False


def _event_words(event: EventRow) -> str:
    words = EVENT_WORDS.get(event.kind, event.kind)
    details = event.details or {}
    if event.kind == "deferral" and details.get("from_date"):
        words += f" (not before {details['from_date']})"
    if event.kind == "oos" and details.get("redo"):
        words += f" ({details['redo']})"
    return f"{words} on {event.created_at:%d %b %Y}"


def _change_words(event: EventRow) -> str:
    return state.change_words(event.details or {})


# -- starting runs ------------------------------------------------------------------------------
def longest_run_s(settings: Settings) -> float:
    """How long a run may take at most before a 'running' ledger row from another host counts as abandoned."""
    return ATTEMPTS * (settings.nightly_time_limit + 60) + 600


def recover(session: Session, settings: Settings) -> list[int]:
    """Mark runs whose process ended mid-run as failed; returns their ids."""
    now = utcnow()
    out = []
    for run in session.scalars(select(JobRun).where(JobRun.job == JOB, JobRun.status == "running")):
        if not ledger.alive(run.claimed_by, run.started_at, now, longest_run_s(settings)):
            ledger.abandon(session, run)
            out.append(run.id)
    return out


def claim_night(sessions: sessionmaker, settings: Settings, night: date, trigger: str) -> int | None:
    """The id of the run claimed for ``night``, or None if the night is (being) run elsewhere;
    ``ledger.InProgress`` while another run is going. A run whose process ended is marked failed first."""
    with Database(sessions).write() as work:
        recover(work.session, settings)
        run = ledger.claim(work.session, JOB, night, settings.planning_day(), trigger)
        return run.id if run is not None else None


def start_manual(session: Session, settings: Settings) -> JobRun:
    """An admin's run: ``ledger.InProgress`` (409) while another run is in progress. A run whose
    process ended mid-run does not count: it is marked failed first."""
    recover(session, settings)
    return ledger.start_manual(session, JOB, settings.planning_day())


def last_fire(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The trigger's latest fire time at or before ``now`` (None if none in the last two days)."""
    fire = trigger.get_next_fire_time(None, now - timedelta(days=2))
    last = None
    for _ in range(100):  # at most a few fires in two days
        if fire is None or fire > now:
            break
        last = fire
        # step in UTC: adding to a local time in October's repeated hour drops its fold and loops back
        after = (fire.astimezone(UTC) + timedelta(microseconds=1)).astimezone(fire.tzinfo)
        fire = trigger.get_next_fire_time(fire, after)
    return last


def missed_night(session: Session, trigger: CronTrigger, now: datetime) -> date | None:
    """The night to catch up at start-up: the latest scheduled night, if the ledger has no run
    for it or its latest attempt was interrupted. Nights before it are not run (coalesced): the
    latest one re-plans everything."""
    fire = last_fire(trigger, now)
    if fire is None:
        return None
    night = fire.date()
    done = ledger.latest_attempt(session, JOB, night)
    return night if done is None or ledger.interrupted(done) else None


# -- reading ------------------------------------------------------------------------------------
def run_view(run: JobRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "job": run.job,
        "run_date": run.run_date.isoformat(),
        "night": run.night.isoformat() if run.night else None,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": as_utc(run.started_at).isoformat(),
        "finished_at": as_utc(run.finished_at).isoformat() if run.finished_at else None,
        "claimed_by": run.claimed_by,
        "plan_version": run.plan_version_id,
        "retry_of": run.retry_of,
        "bookings_moved": (run.stats or {}).get("bookings_moved", 0),
        "summary": (run.report or {}).get("summary", ""),
        "stats": {k: v for k, v in (run.stats or {}).items() if k != "fingerprint"},
    }


def run_history(session: Session, limit: int, offset: int) -> list[dict[str, Any]]:
    """The nightly job's runs, newest first, as answers."""
    return [run_view(r) for r in ledger.history(session, JOB, limit, offset)]


def run_with_report(session: Session, run_id: int) -> dict[str, Any]:
    """One run and its report, as an answer; NotFound if there is no such nightly run."""
    run = get_run(session, run_id)
    return {"run": run_view(run), "report": run.report}


def get_run(session: Session, run_id: int) -> JobRun:
    run = session.get(JobRun, run_id)
    if run is None or run.job != JOB:
        raise NotFound(f"no nightly run {run_id}")
    return run


def latest_report(session: Session) -> dict[str, Any]:
    """The last finished run with its report (a run still going is not shown until it ends)."""
    query = (
        select(JobRun)
        .where(JobRun.job == JOB, JobRun.status != "running")
        .order_by(JobRun.finished_at.desc(), JobRun.id.desc())
    )
    run = session.scalars(query).first()
    if run is None:
        raise NotFound("no nightly run yet")
    return {"run": run_view(run), "report": run.report}


# -- inside the service -------------------------------------------------------------------------
class NightlyScheduler:
    """The nightly job inside one server process (every process has one; the ledger picks the runner)."""

    def __init__(self, sessions: sessionmaker, settings: Settings):
        self.sessions = sessions
        self.database = Database(sessions)
        self.settings = settings
        self.trigger = ledger.night_trigger(settings.nightly_at, settings.nightly_timezone)
        self.scheduler: BackgroundScheduler | None = None
        self.manual: ThreadPoolExecutor | None = None
        self.waiting: date | None = None  # a night that could not start (database unreachable), tried again

    def start(self, now: datetime | None = None) -> date | None:
        """Start the scheduler (if enabled); returns the missed night it will run now, if any."""
        self.manual = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nightly-manual")
        with self.database.write() as work:
            abandoned = recover(work.session, self.settings)
        if abandoned:
            log.warning("nightly runs %s were interrupted (their process ended mid-run): marked failed", abandoned)
        if not self.settings.nightly_enabled:
            return None
        zone = ZoneInfo(self.settings.nightly_timezone)
        self.scheduler = BackgroundScheduler(
            timezone=zone,
            executors={"default": JobExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S},
        )
        self.scheduler.add_job(self.run_scheduled, self.trigger, id=JOB, name="nightly re-solve")
        now = now or datetime.now(zone)
        with self.database.read() as work:
            missed = missed_night(work.session, self.trigger, now)
        if missed is not None:
            log.info("the nightly run of %s was missed while no server ran: running it now", missed)
            self.scheduler.add_job(
                self.run_night, args=(missed, "catch-up"), id=f"{JOB}-catch-up", name="missed nightly re-solve"
            )
        self.scheduler.start()
        return missed

    def stop(self) -> None:
        """Stop taking runs; a run in progress finishes first (its publish is one transaction anyway)."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.scheduler = None
        if self.manual is not None:
            self.manual.shutdown(wait=True)
            self.manual = None

    def next_run(self) -> datetime | None:
        job = self.scheduler.get_job(JOB) if self.scheduler else None
        return job.next_run_time if job else None

    def run_scheduled(self) -> None:
        """The cron job: tonight's run, if no other process has claimed it."""
        self.run_night(datetime.now(ZoneInfo(self.settings.nightly_timezone)).date(), "schedule")

    def run_night(self, night: date, trigger: str) -> int | None:
        try:
            run_id = claim_night(self.sessions, self.settings, night, trigger)
        except DBAPIError as exc:
            if not outage.unreachable(exc):
                raise
            if self.waiting != night:  # said once per outage
                self.waiting = night
                log.warning(
                    "the nightly run of %s could not start: the database is unreachable; trying again every %d s",
                    night,
                    RETRY_S,
                )
            self._again(night, "catch-up", RETRY_S, f"{JOB}-retry", "nightly re-solve once the database is back")
            return None
        except ledger.InProgress as busy:
            log.info(
                "the nightly run of %s waits for run %s, in progress: tried again in %d s", night, busy.run_id, WAIT_S
            )
            self._again(night, trigger, WAIT_S, WAITING, "nightly re-solve, waiting for a run in progress")
            return None
        self.waiting = None
        if run_id is None:
            log.info("the nightly run of %s is claimed by another process", night)
            return None
        log.info("nightly run %s (%s of %s) started", run_id, trigger, night)
        if not execute(self.sessions, self.settings, run_id):
            self._again(night, "catch-up", RETRY_S, f"{JOB}-retry", "nightly re-solve once the database is back")
        return run_id

    def _again(self, night: date, trigger: str, delay_s: int, job_id: str, name: str) -> None:
        """``night`` could not start (the database unreachable, or another run going): tried again in
        ``delay_s`` seconds, one scheduled try per reason."""
        if self.scheduler is None or not self.scheduler.running:
            return
        self.scheduler.add_job(
            self.run_night,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=delay_s),
            args=(night, trigger),
            id=job_id,
            name=name,
            replace_existing=True,
        )

    def run_now(self, actor: Actor) -> dict[str, Any]:
        """An admin's run: recorded at once (ledger and audit), carried out in the background."""
        if self.manual is None:
            raise Conflict("the service is stopping: no new nightly run")
        with self.database.write() as work:
            run = start_manual(work.session, self.settings)
            record(work.session, actor, "nightly.run_now", "job_run", run.id)
            run_id = run.id
            view = run_view(run)
        self.manual.submit(execute, self.sessions, self.settings, run_id)
        return view
