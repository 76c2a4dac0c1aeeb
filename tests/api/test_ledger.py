"""The nightly job's trigger and run ledger: one run per night, whatever the clocks or the processes do."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api import migrate
from api.db import make_engine, make_sessionmaker
from api.ledger import InProgress, claim, finish, history, night_trigger

LONDON = ZoneInfo("Europe/London")


def fire_times(trigger, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in [start, end), as the scheduler would see them, stepping in UTC (adding a
    timedelta to a local time drops the "second 01:30" fold and would step back an hour)."""
    times, previous, now = [], None, start
    for _ in range(100):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire >= end:
            return times
        times.append(fire)
        previous, now = fire, (fire.astimezone(UTC) + timedelta(microseconds=1)).astimezone(LONDON)
    raise AssertionError("more than 100 fire times: the trigger loops")


@pytest.mark.parametrize("sunday", [date(2027, 3, 28), date(2027, 10, 31), date(2026, 3, 29), date(2026, 10, 25)])
def test_the_night_trigger_fires_once_on_the_days_the_clocks_change(sunday):
    day_start = datetime(sunday.year, sunday.month, sunday.day, tzinfo=LONDON)
    fires = fire_times(night_trigger(), day_start, day_start + timedelta(days=1))
    assert len(fires) == 1
    assert (fires[0].hour, fires[0].minute) == (2, 30)


def test_a_time_in_the_repeated_hour_fires_twice_in_october_and_the_ledger_runs_it_once(tmp_path):
    sunday = datetime(2027, 10, 31, tzinfo=LONDON)
    fires = fire_times(night_trigger("01:30"), sunday, sunday + timedelta(days=1))
    assert len(fires) == 2  # 01:30 BST and 01:30 GMT: why the default is 02:30, and why the ledger exists
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    claimed = []
    for fire in fires:
        with sessions() as session, session.begin():
            claimed.append(claim(session, "nightly", fire.date()) is not None)
    assert claimed == [True, False]
    engine.dispose()


def test_one_claim_per_job_and_date_among_racing_processes(database_url):
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    night = date(2027, 1, 5)
    racers = 8
    barrier = threading.Barrier(racers)
    won: list[bool] = [False] * racers

    def race(i: int) -> None:
        barrier.wait()
        with sessions() as session, session.begin():
            won[i] = claim(session, "nightly", night) is not None

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(won) == 1

    with sessions() as session, session.begin():
        assert claim(session, "nightly", night) is None  # and not later either
        with pytest.raises(InProgress, match=r"nightly run \d+ is in progress"):
            claim(session, "nightly", night + timedelta(days=1))  # the next night waits: one run at a time
        assert claim(session, "other-job", night) is not None  # another job is its own ledger
    with sessions() as session, session.begin():
        run = history(session, "nightly")[-1]
        finish(session, run, "kept", {"moved": 0}, {"summary": "nothing changed"}, None)
    with sessions() as session, session.begin():
        assert claim(session, "nightly", night + timedelta(days=1)) is not None  # the first run over: free
    with sessions() as session:
        runs = history(session, "nightly")
        assert [(r.run_date, r.status) for r in runs] == [(night + timedelta(days=1), "running"), (night, "kept")]
    engine.dispose()


# -- missed nights, and the scheduler in a server process -----------------------------------------
def _ledger(tmp_path, *nights: date):
    from api.db import JobRun

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        for night in nights:
            session.add(JobRun(job="nightly", night=night, run_date=night, status="kept", claimed_by="elsewhere:1"))
    return engine, sessions


@pytest.mark.parametrize(
    "now, done, missed",
    [
        # down from Friday evening to Monday morning: only Monday's night is run, once
        (datetime(2027, 1, 11, 9, 0, tzinfo=LONDON), [date(2027, 1, 8)], date(2027, 1, 11)),
        # started at 01:00: the latest night is yesterday's, and it ran
        (datetime(2027, 1, 11, 1, 0, tzinfo=LONDON), [date(2027, 1, 10)], None),
        # started at 01:00, yesterday's night missed: yesterday's is run (not today's, still ahead)
        (datetime(2027, 1, 11, 1, 0, tzinfo=LONDON), [date(2027, 1, 9)], date(2027, 1, 10)),
        # tonight's ran already: nothing to catch up
        (datetime(2027, 1, 11, 9, 0, tzinfo=LONDON), [date(2027, 1, 11)], None),
        # the morning the clocks go forward, and the morning they go back
        (datetime(2027, 3, 28, 7, 0, tzinfo=LONDON), [date(2027, 3, 27)], date(2027, 3, 28)),
        (datetime(2027, 10, 31, 7, 0, tzinfo=LONDON), [date(2027, 10, 30)], date(2027, 10, 31)),
        # a new installation: the last night is planned at once
        (datetime(2027, 1, 11, 9, 0, tzinfo=LONDON), [], date(2027, 1, 11)),
    ],
)
def test_the_night_missed_while_no_server_ran_is_found_date_in_date_out(tmp_path, now, done, missed):
    from api.nightly import missed_night

    engine, sessions = _ledger(tmp_path, *done)
    try:
        with sessions() as session:
            assert missed_night(session, night_trigger(), now) == missed
    finally:
        engine.dispose()


def test_a_server_start_runs_the_missed_night_once_and_schedules_the_next(small_site):
    """The real scheduler, real runs: started with the last night missed, it runs it at once (one
    ledger row, trigger catch-up); started again, it finds nothing to catch up."""
    from sqlalchemy import select

    from api.db import JobRun
    from api.nightly import JOB, MISFIRE_GRACE_S, NightlyScheduler

    settings = small_site.model_copy(update={"nightly_enabled": True})
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        first = NightlyScheduler(sessions, settings)
        missed = first.start()
        assert missed == datetime.now(LONDON).date() or missed == datetime.now(LONDON).date() - timedelta(days=1)
        job = first.scheduler.get_job(JOB)
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, MISFIRE_GRACE_S)
        assert job.next_run_time == night_trigger().get_next_fire_time(None, datetime.now(LONDON))
        deadline = datetime.now() + timedelta(seconds=60)
        while datetime.now() < deadline:
            with sessions() as session:
                runs = list(session.scalars(select(JobRun)))
            if runs and runs[0].status != "running":
                break
            time.sleep(0.1)
        first.stop()
        assert [(r.night, r.trigger, r.status) for r in runs] == [(missed, "catch-up", "kept")]

        second = NightlyScheduler(sessions, settings)
        assert second.start() is None
        second.stop()
        with sessions() as session:
            assert len(list(session.scalars(select(JobRun)))) == 1
    finally:
        engine.dispose()


def test_with_the_job_switched_off_nothing_is_scheduled(small_site):
    """(Admins can still run it: test_nightly's run-now test runs with the job switched off.)"""
    from api.nightly import NightlyScheduler

    engine = make_engine(small_site.database_url)
    try:
        nightly = NightlyScheduler(make_sessionmaker(engine), small_site)  # nightly_enabled=False in tests
        assert nightly.start() is None
        assert nightly.scheduler is None and nightly.next_run() is None
        nightly.stop()
    finally:
        engine.dispose()


def test_on_postgresql_a_night_locked_by_another_claimer_is_refused_before_any_row_exists():
    """The advisory lock, not only the UNIQUE row: while one transaction holds the night's lock
    (its insert not yet committed), a second claimer gives up at once instead of waiting."""
    from sqlalchemy import text

    from api.ledger import _lock_key
    from tests.builders import reset_postgres

    engine = make_engine(reset_postgres())
    try:
        migrate.upgrade(engine)
        night = date(2027, 1, 4)
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key("nightly", night)})
            with make_sessionmaker(engine)() as session, session.begin():
                assert claim(session, "nightly", night) is None
            holder.rollback()
        with make_sessionmaker(engine)() as session, session.begin():
            assert claim(session, "nightly", night) is not None  # the lock gone, the night is free
    finally:
        engine.dispose()


def test_the_missed_night_is_found_for_a_time_in_octobers_repeated_hour():
    """01:30 happens twice on the last Sunday of October: the search ends, on the later 01:30."""
    from api.nightly import last_fire

    now = datetime(2027, 10, 31, 9, 0, tzinfo=LONDON)
    fire = last_fire(night_trigger("01:30"), now)
    assert fire.astimezone(UTC) == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 01:30 GMT, the second one
