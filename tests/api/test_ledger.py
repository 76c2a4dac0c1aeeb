"""The nightly job's trigger and run ledger: one run per night, whatever the clocks or the processes do."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from api import migrate
from api.db import make_engine, make_sessionmaker
from api.ledger import claim, finish, history, night_trigger

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
        previous, now = fire, (fire.astimezone(timezone.utc) + timedelta(microseconds=1)).astimezone(LONDON)
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
        assert claim(session, "nightly", night + timedelta(days=1)) is not None  # the next night is free
        assert claim(session, "other-job", night) is not None  # another job is its own ledger
    with sessions() as session, session.begin():
        run = history(session, "nightly")[-1]
        finish(session, run, "kept", {"moved": 0}, {"summary": "nothing changed"}, None)
    with sessions() as session:
        runs = history(session, "nightly")
        assert [(r.run_date, r.status) for r in runs] == [(night + timedelta(days=1), "running"), (night, "kept")]
    engine.dispose()
