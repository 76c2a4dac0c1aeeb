"""Benchmark of the HTTP API on the regional demo data (measured, never asserted in tests).

    v2v-bench --api [sqlite|postgresql|both] [--markdown FILE]     (or: python -m bench --api ...)

What it does, for each database:

1. prepares a fresh database the way ``v2v demo --no-serve`` does: migrate, load the
   catalogue and the site, import the packaged regional cohort (``cohorts/data/regional.json``), solve it (10 s)
   and confirm the plan, with "today" the cohort's first day (2027-01-04);
2. starts a real server process (``v2v serve``) on 127.0.0.1 and a free port;
3. **propose**: registers new referrals (``POST /patients``) and times
   ``POST /patients/{id}/proposals`` for each, one at a time (target p95 <= 200 ms, issue 13);
4. **capacity**: times ``GET /capacity?from=..&to=..`` over 90 days (target p95 <= 100 ms);
5. **confirm under concurrency**: registers more referrals who want the same early
   capacity, proposes for all of them against the same base plan, then fires every
   confirm at once from 20 client threads (a barrier). Expected: 200 or 409 only;
   afterwards every resource-day must be within capacity (the rule checker on
   ``api.state.build_problem`` + ``api.state.current_plan``, and ``GET /capacity``'s
   ``overbooked`` over the whole horizon), a 409'd patient must hold no bookings
   (all or nothing), no proposal may be confirmed twice, and the plan must have gained
   exactly one version per 200;
6. stops the server (always, also on errors or Ctrl-C);
7. diagnostic: proposals again on a second server with ``V2V_ALTERNATIVES=0`` (the
   fast path alone, no CP-SAT search for alternatives), to show where propose's time goes.

Everything is bounded: request counts are fixed, every request has a timeout,
only loopback addresses are used. Exit status 1 if the server failed, an
unexpected status came back, or the plan was left invalid; latency targets are
reported, not enforced.

PostgreSQL: ``postgresql://postgres@127.0.0.1:5432/v2v_bench`` (created if missing; or
``V2V_BENCH_POSTGRES_URL``); its ``public`` schema is dropped and recreated, so the
run refuses to start while other sessions are connected to that database.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cohorts import DEMO_COHORT

COHORT = DEMO_COHORT
# Its own database on the local server, created if missing: the test suite resets the ``test``
# database's schema for every test, which would pull the tables from under a running benchmark.
POSTGRES_URL = os.environ.get("V2V_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/v2v_bench")
POSTGRES_MAINTENANCE_DB = "test"  # connected to for CREATE DATABASE (the database make test sets up; trust auth)

PROPOSE_REQUESTS = 24  # timed proposals (plus warm-up, not counted)
PROPOSE_WARMUP = 2
CAPACITY_REQUESTS = 60  # timed capacity views (plus warm-up)
CAPACITY_WARMUP = 3
CAPACITY_DAYS = 90
CLIENTS = 20
CONFIRM_PATIENTS = 40  # proposals confirmed at once (one request each)
CONFIRM_DUPLICATES = 4  # the same proposal confirmed twice at the same moment ("double click")
SOLVE_TIME_LIMIT = 10.0  # the demo's whole-cohort solve
REQUEST_TIMEOUT = 120.0
SERVER_START_TIMEOUT = 90.0
PATHWAYS = ("axi-cel", "in-house-car-t", "asct-mel200")
CENTRE = "liverpool"
TARGET_PROPOSE_P95_MS = 200.0  # issue 13 (was 500 ms before column generation)
TARGET_CAPACITY_P95_MS = 100.0


class BenchError(Exception):
    """The benchmark could not run (server did not start, set-up refused)."""


# -- figures ------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Latency:
    name: str
    backend: str
    target_ms: float
    samples_ms: list[float] = field(default_factory=list)
    cold_ms: list[float] = field(default_factory=list)  # warm-up requests, reported apart
    statuses: collections.Counter = field(default_factory=collections.Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    @property
    def max(self) -> float:
        return max(self.samples_ms, default=float("nan"))

    @property
    def met(self) -> bool:
        return bool(self.samples_ms) and self.p95 <= self.target_ms and set(self.statuses) <= {200, 201}


@dataclass
class Concurrency:
    backend: str
    clients: int = 0
    requests: int = 0
    ok: int = 0
    conflicts: int = 0
    other: int = 0
    other_examples: list[str] = field(default_factory=list)
    overbooked_checker: int | None = None  # CAPACITY violations of the whole current plan (rule checker)
    overbooked_view: int | None = None  # GET /capacity summary.overbooked cells over the horizon
    overbooked_before: int | None = None
    violations_after: dict[str, int] = field(default_factory=dict)
    violations_before: dict[str, int] = field(default_factory=dict)
    confirmed_twice: int = 0
    partial: int = 0  # a 409'd patient holding bookings, or a 200'd one without
    versions_added: int | None = None  # plan versions written during the run (must equal the 200s)
    refused_but_fit: int = 0  # "resource full" 409s whose option (no moves) fits the final plan
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    conflict_kinds: collections.Counter = field(default_factory=collections.Counter)
    proposals_without_option: int = 0
    alternatives_confirmed: int = 0

    @property
    def clean(self) -> bool:
        return (
            self.other == 0
            and not self.overbooked_checker
            and not self.overbooked_view
            and self.confirmed_twice == 0
            and self.partial == 0
            and self.versions_added == self.ok
        )


@dataclass
class Result:
    backend: str
    setup: dict[str, Any] = field(default_factory=dict)
    propose: Latency | None = None
    capacity: Latency | None = None
    propose_fast: Latency | None = None  # diagnostic: alternatives off
    confirm: Concurrency | None = None
    error: str | None = None


# -- database and server ------------------------------------------------------------------------
def _settings(database_url: str, today: date):
    from api.settings import Settings

    return Settings(
        database_url=database_url, today=today, solve_time_limit=SOLVE_TIME_LIMIT, nightly_enabled=False, _env_file=None
    )  # no nightly run competing with the measured requests


def _create_postgres_database(url: str) -> None:
    """CREATE DATABASE for ``url`` if it does not exist (connected to the maintenance database)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from api.db import make_engine, normalise_url

    target = make_url(normalise_url(url))
    name = target.database
    if not name or not name.replace("_", "").isalnum():
        raise BenchError(f"PostgreSQL database name {name!r}: letters, digits and _ only")
    engine = make_engine(target.set(database=POSTGRES_MAINTENANCE_DB).render_as_string(hide_password=False))
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def _reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from api.db import make_engine

    _create_postgres_database(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            others = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            if others:
                raise BenchError(
                    f"{others} other session(s) are connected to {engine.url.database!r} (a test run?): "
                    "not dropping its schema; try again when it is idle"
                )
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def prepare_database(settings, cohort: Path = COHORT) -> dict[str, Any]:
    """What ``v2v demo --no-serve`` does (``cohort``: the regional one), plus one token per role."""
    from api.setup import init_database, load_cohort, new_token

    started = time.perf_counter()
    init_database(settings)
    plan = load_cohort(settings, cohort, time_limit=settings.solve_time_limit)
    tokens = {role: new_token(settings, f"bench-{role}", role) for role in ("coordinator", "lab_manager", "admin")}
    s = plan.stats
    return {
        "tokens": tokens,
        "patients": s["patients"],
        "scheduled": s["scheduled"],
        "unschedulable": s["unschedulable"],
        "status": s["status"],
        "prepare_s": time.perf_counter() - started,
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_command() -> list[str]:
    v2v = Path(sys.executable).with_name("v2v")
    if v2v.exists():
        return [str(v2v)]
    return [sys.executable, "-m", "api.cli"]


def _die_with_parent() -> None:
    """In the server's child process before exec (Linux): SIGTERM when the benchmark dies,
    however it dies (even SIGKILL), so a server is never left behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the run like Ctrl-C does: the ``finally`` blocks stop the server."""

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # started in the background
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _server_env(settings, port: int) -> dict[str, str]:
    """The child's environment: exactly the harness's settings (no stray V2V_* or .env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("V2V_") and k != "DATABASE_URL"}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        key = "DATABASE_URL" if name == "database_url" else f"V2V_{name.upper()}"
        env[key] = value.isoformat() if isinstance(value, date) else str(value)
    env["V2V_HOST"] = "127.0.0.1"
    env["V2V_PORT"] = str(port)
    return env


class Server:
    """``v2v serve`` in a subprocess on 127.0.0.1; always stopped by ``stop`` (use as a context manager)."""

    def __init__(self, settings, workdir: Path):
        self.settings = settings
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        import httpx

        self.port = free_port()
        command = [*_server_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self._log = open(self.log_path, "wb")
        # cwd is the temp dir, so the repo's .env (if any) is not read
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=_server_env(self.settings, self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise BenchError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"the server did not answer /health within {SERVER_START_TIMEOUT:g} s:\n{self.log_tail()}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def errors_logged(self) -> list[str]:
        """Tracebacks and 5xx lines in the server's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if "Traceback" in line or '" 50' in line or "ERROR" in line]


# -- clients ------------------------------------------------------------------------------------
def _client(server: Server, token: str):
    import httpx

    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT)


def _referral(patient_id: str, index: int, first_approval: date, spread_days: int) -> dict[str, Any]:
    return {
        "id": patient_id,
        "centre": CENTRE,
        "pathway": PATHWAYS[index % len(PATHWAYS)],
        "approval_date": (first_approval + timedelta(days=(index * 7) % max(spread_days, 1))).isoformat(),
        "urgency": ("routine", "soon", "routine", "urgent")[index % 4],
    }


def _register(client, body: dict[str, Any]) -> None:
    response = client.post("/patients", json=body)
    if response.status_code != 201:
        raise BenchError(f"POST /patients {body['id']}: {response.status_code} {response.text[:300]}")


def _timed(call, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    response = call(*args, **kwargs)
    return response, 1000 * (time.perf_counter() - started)


def bench_propose(
    server: Server, tokens: dict[str, str], today: date, backend: str, prefix: str = "B", name: str = ""
) -> Latency:
    """One new patient at a time: register, then time the proposal (nothing is confirmed)."""
    result = Latency(f"propose{name} (POST /patients/{{id}}/proposals)", backend, TARGET_PROPOSE_P95_MS)
    options = collections.Counter()
    with _client(server, tokens["coordinator"]) as client:
        for i in range(PROPOSE_WARMUP + PROPOSE_REQUESTS):
            patient_id = f"{prefix}-{i + 1:04d}"
            # approvals spread over Jan-Mar 2027
            _register(client, _referral(patient_id, i, today, 85))
            response, ms = _timed(client.post, f"/patients/{patient_id}/proposals")
            if i < PROPOSE_WARMUP:
                result.cold_ms.append(ms)
                continue
            result.samples_ms.append(ms)
            result.statuses[response.status_code] += 1
            if response.status_code == 201:
                body = response.json()
                kinds = [o["kind"] for o in body["options"]]
                options["with fast option" if "fast" in kinds else "no fast option"] += 1
                options["alternatives offered"] += kinds.count("alternative")
    result.notes.append(", ".join(f"{k}: {v}" for k, v in sorted(options.items())))
    return result


def bench_capacity(server: Server, tokens: dict[str, str], today: date, backend: str) -> Latency:
    """90-day capacity views, windows starting on today and the next 4 Mondays."""
    result = Latency(f"capacity {CAPACITY_DAYS} d (GET /capacity)", backend, TARGET_CAPACITY_P95_MS)
    sizes = []
    with _client(server, tokens["lab_manager"]) as client:
        for i in range(CAPACITY_WARMUP + CAPACITY_REQUESTS):
            first = today + timedelta(days=7 * (i % 5))
            last = first + timedelta(days=CAPACITY_DAYS - 1)
            response, ms = _timed(client.get, "/capacity", params={"from": first.isoformat(), "to": last.isoformat()})
            if i < CAPACITY_WARMUP:
                result.cold_ms.append(ms)
                continue
            result.samples_ms.append(ms)
            result.statuses[response.status_code] += 1
            if response.status_code == 200:
                sizes.append((len(response.content), len(response.json()["cells"])))
    if sizes:
        result.notes.append(f"{sizes[0][1]} cells, {sizes[0][0] / 1024:.0f} KiB per response")
    return result


def _overbooked_view(client, today: date, horizon_days: int) -> int:
    """summary.overbooked cells of GET /capacity over the whole planning horizon."""
    from api.views import MAX_RANGE_DAYS

    count = 0
    first, end = today, today + timedelta(days=horizon_days - 1)
    while first <= end:
        last = min(end, first + timedelta(days=MAX_RANGE_DAYS - 1))
        response = client.get("/capacity", params={"from": first.isoformat(), "to": last.isoformat()})
        if response.status_code != 200:
            raise BenchError(f"GET /capacity {first}..{last}: {response.status_code} {response.text[:300]}")
        count += len(response.json()["summary"]["overbooked"])
        first = last + timedelta(days=1)
    return count


def _checker(settings) -> tuple[dict[str, int], dict[str, tuple[str, int]]]:
    """Violations of the current plan (every patient with bookings) by rule, and each patient's
    (status, number of current bookings)."""
    from sqlalchemy import select

    from api import state
    from api.db import PatientRow, make_engine, make_sessionmaker
    from pathway.rules import check_plan

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine, readonly=True)() as session, session.begin():
            plan = state.current_plan(session)
            booked = collections.Counter(b.patient for b in plan.bookings)
            # referrals with no booking yet (proposed, not confirmed) are not part of the plan
            problem = state.build_problem(session, settings.planning_day(), settings.horizon_days, include=set(booked))
            patients = {row.id: (row.status, booked[row.id]) for row in session.scalars(select(PatientRow))}
    finally:
        engine.dispose()
    return dict(collections.Counter(v.rule for v in check_plan(problem, plan))), patients


def _fits_final_plan(settings, options: list[dict[str, Any]]) -> int:
    """How many of these options (no moves) would fit, alone, on top of the final current plan.

    A "resource full" 409 whose option fits the final plan was not needed: the plan only
    gained bookings during the run (moves of a confirmed alternative aside)."""
    from api import state
    from api.db import make_engine, make_sessionmaker
    from pathway.plan import Booking
    from pathway.usage import resource_load

    if not options:
        return 0
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine, readonly=True)() as session, session.begin():
            plan = state.current_plan(session)
            who = {b.patient for b in plan.bookings} | {o["bookings"][0]["patient"] for o in options}
            problem = state.build_problem(session, settings.planning_day(), settings.horizon_days, include=who)
    finally:
        engine.dispose()
    base = resource_load(problem, plan.bookings)
    fits = 0
    for option in options:
        new = [Booking.model_validate(b) for b in option["bookings"]]
        added = resource_load(problem, new)
        fits += all(
            base.booked(rid, day) + added.booked(rid, day) <= problem.site.capacity_on(added.resources[rid], day)
            for rid, day in added.cells
        )
    return fits


def _conflict_kind(detail: str) -> str:
    if " is full " in detail:
        return "resource full"
    if "stale" in detail:
        return "stale proposal"
    if "is confirmed" in detail or "is superseded" in detail:
        return "proposal already confirmed"
    if "no longer satisfies" in detail:
        return "rules"
    return detail[:60]


def bench_confirm(server: Server, tokens: dict[str, str], settings, backend: str) -> Concurrency:
    today = settings.planning_day()
    result = Concurrency(backend, clients=CLIENTS)
    result.violations_before, _ = _checker(settings)
    with _client(server, tokens["admin"]) as admin:
        result.overbooked_before = _overbooked_view(admin, today, settings.horizon_days)
        version_before = admin.get("/health").json()["plan_version"]

    # N new patients wanting the same early capacity (approvals in the first two weeks)
    ids = [f"C-{i + 1:04d}" for i in range(CONFIRM_PATIENTS)]
    with _client(server, tokens["coordinator"]) as client:
        for i, pid in enumerate(ids):
            _register(client, _referral(pid, i, today, 14))

    # every proposal against the same base plan: none is confirmed before all exist
    def make_proposal(pid: str) -> dict[str, Any]:
        with _client(server, tokens["coordinator"]) as client:
            response = client.post(f"/patients/{pid}/proposals")
        if response.status_code != 201:
            raise BenchError(f"POST /patients/{pid}/proposals: {response.status_code} {response.text[:300]}")
        return response.json()

    with ThreadPoolExecutor(max_workers=2) as pool:  # the server's solver pool has 2 threads
        proposals = list(pool.map(make_proposal, ids))
    bases = {p["base_version"] for p in proposals}
    if len(bases) != 1:
        raise BenchError(f"proposals were computed on different plan versions {sorted(bases)}")

    # the jobs: (proposal id, option rank); every 4th with an alternative confirms the alternative
    jobs: list[tuple[str, int, str]] = []
    chosen: dict[str, dict[str, Any]] = {}  # proposal id -> the option confirmed
    for i, p in enumerate(proposals):
        ranks = [o["rank"] for o in p["options"]]
        if not ranks:
            result.proposals_without_option += 1
            continue
        alternatives = [o["rank"] for o in p["options"] if o["kind"] == "alternative"]
        rank = alternatives[0] if (i % 4 == 3 and alternatives) else ranks[0]
        result.alternatives_confirmed += rank in alternatives
        jobs.append((p["id"], rank, p["patient"]))
        chosen[p["id"]] = next(o for o in p["options"] if o["rank"] == rank)
    random.Random(7).shuffle(jobs)
    for k, job in enumerate(jobs[:CONFIRM_DUPLICATES]):  # the same proposal twice, in the first wave
        jobs.insert(CLIENTS // 2 + k, job)
    result.requests = len(jobs)

    per_client = [jobs[k::CLIENTS] for k in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS + 1)
    outcomes: list[tuple[str, str, int, float, str]] = []  # (proposal, patient, status, ms, detail)
    lock = threading.Lock()

    def run_client(mine: list[tuple[str, int, str]]) -> None:
        import httpx

        with _client(server, tokens["coordinator"]) as client:
            client.get("/health")  # open the connection before the barrier
            barrier.wait(timeout=60)
            for proposal_id, rank, pid in mine:
                started = time.perf_counter()
                try:
                    response = client.post(f"/proposals/{proposal_id}/confirm", json={"option": rank})
                    status, detail = response.status_code, response.text[:300]
                except httpx.HTTPError as exc:
                    status, detail = -1, f"{type(exc).__name__}: {exc}"
                ms = 1000 * (time.perf_counter() - started)
                with lock:
                    outcomes.append((proposal_id, pid, status, ms, detail))

    threads = [threading.Thread(target=run_client, args=(mine,), daemon=True) for mine in per_client]
    for t in threads:
        t.start()
    barrier.wait(timeout=60)
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT * (len(jobs) // CLIENTS + 2))
    result.wall_s = time.perf_counter() - started
    if any(t.is_alive() for t in threads):
        result.other_examples.append("a client thread did not finish in time")

    ok_by_proposal = collections.Counter()
    patient_outcome: dict[str, set[int]] = collections.defaultdict(set)
    for proposal_id, pid, status, ms, detail in outcomes:
        result.latencies_ms.append(ms)
        patient_outcome[pid].add(status)
        if status == 200:
            result.ok += 1
            ok_by_proposal[proposal_id] += 1
        elif status == 409:
            result.conflicts += 1
            try:
                text = json.loads(detail).get("detail", detail)
            except ValueError:
                text = detail
            result.conflict_kinds[_conflict_kind(str(text))] += 1
        else:
            result.other += 1
            if len(result.other_examples) < 5:
                result.other_examples.append(f"{status}: {detail}")
    result.other += len(jobs) - len(outcomes)  # requests that never came back
    result.confirmed_twice = sum(1 for n in ok_by_proposal.values() if n > 1)

    refused_full = {
        proposal_id
        for proposal_id, _pid, status, _ms, detail in outcomes
        if status == 409 and " is full " in detail and proposal_id not in ok_by_proposal
    }
    result.refused_but_fit = _fits_final_plan(
        settings, [chosen[p] for p in sorted(refused_full) if not chosen[p]["moves"]]
    )
    result.violations_after, patients = _checker(settings)
    result.overbooked_checker = result.violations_after.get("CAPACITY", 0)
    for pid, statuses in patient_outcome.items():
        status, bookings = patients.get(pid, ("missing", 0))
        if 200 in statuses and (status != "scheduled" or bookings == 0):
            result.partial += 1
        if 200 not in statuses and bookings:
            result.partial += 1
    with _client(server, tokens["admin"]) as admin:
        result.overbooked_view = _overbooked_view(admin, today, settings.horizon_days)
        # one new plan version per successful confirm, none for a refused one
        result.versions_added = admin.get("/health").json()["plan_version"] - version_before
    return result


# -- one backend --------------------------------------------------------------------------------
def run_backend(backend: str, workdir: Path, log=print) -> Result:
    from pathway.cohort import load_problem

    result = Result(backend)
    today = load_problem(COHORT).horizon.start
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        _reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
    settings = _settings(url, today)
    log(f"[{backend}] preparing the database (regional cohort, {settings.solve_time_limit:g} s solve) ...")
    setup = prepare_database(settings)
    tokens = setup.pop("tokens")
    result.setup = setup | {
        "propose_time_limit": settings.propose_time_limit,
        "alternatives": settings.alternatives,
        "solver_threads": settings.solver_threads,
        "horizon_days": settings.horizon_days,
        "today": today.isoformat(),
    }
    log(
        f"[{backend}] {setup['patients']} patients, {setup['scheduled']} scheduled ({setup['status']}), "
        f"prepared in {setup['prepare_s']:.1f} s; starting the server ..."
    )
    server_dir = workdir / f"server-{backend}"
    server_dir.mkdir()
    with Server(settings, server_dir) as server:
        log(f"[{backend}] server on {server.url}; propose x{PROPOSE_REQUESTS} ...")
        result.propose = bench_propose(server, tokens, today, backend)
        log(f"[{backend}] {_latency_line(result.propose)}; capacity x{CAPACITY_REQUESTS} ...")
        result.capacity = bench_capacity(server, tokens, today, backend)
        log(f"[{backend}] {_latency_line(result.capacity)}; confirm, {CLIENTS} clients ...")
        result.confirm = bench_confirm(server, tokens, settings, backend)
        c = result.confirm
        log(
            f"[{backend}] confirm: {c.requests} requests, {c.ok} x 200, {c.conflicts} x 409, {c.other} other, "
            f"overbooked after {c.overbooked_checker}/{c.overbooked_view}, {c.wall_s:.1f} s"
        )
        logged = server.errors_logged()
        if logged:
            result.confirm.other_examples.extend(f"server log: {line}" for line in logged[:3])
    # diagnostic: the same proposals without the alternatives' search (fast path only), on a
    # second server over the same database (run last, so the figures above are not affected)
    fast_settings = settings.model_copy(update={"alternatives": 0})
    fast_dir = workdir / f"server-{backend}-fast"
    fast_dir.mkdir()
    with Server(fast_settings, fast_dir) as server:
        log(f"[{backend}] server with alternatives=0 on {server.url}; propose x{PROPOSE_REQUESTS} ...")
        result.propose_fast = bench_propose(
            server, tokens, today, backend, prefix="F", name=", fast path only (V2V_ALTERNATIVES=0)"
        )
        log(f"[{backend}] {_latency_line(result.propose_fast)}")
    return result


# -- report -------------------------------------------------------------------------------------
def _latency_line(r: Latency) -> str:
    return f"{r.name}: p50 {r.p50:.0f} ms, p95 {r.p95:.0f} ms, max {r.max:.0f} ms"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def table(results: list[Result]) -> str:
    lines = [
        "| measure | database | requests | p50 ms | p95 ms | max ms | target p95 | met | first requests (not counted) ms | notes |",
        "|" + "---|" * 10,
    ]
    for res in results:
        for r in (res.propose, res.capacity, res.propose_fast):
            if r is None:
                continue
            statuses = ", ".join(f"{n} x {s}" for s, n in sorted(r.statuses.items()))
            lines.append(
                f"| {r.name} | {r.backend} | {len(r.samples_ms)} | {_ms(r.p50)} | {_ms(r.p95)} | {_ms(r.max)} "
                f"| <= {r.target_ms:g} ms | {'yes' if r.met else 'no'} | {', '.join(_ms(c) for c in r.cold_ms)} "
                f"| {statuses}; {'; '.join(n for n in r.notes if n)} |"
            )
    lines += [
        "",
        (
            "| confirm under concurrency | database | clients | requests | 200 | 409 | other "
            "| overbooked cells after (checker / GET /capacity) | other violations after | confirmed twice | partial "
            "| plan versions added | wall s | confirm p50 / p95 / max ms | 409 reasons | 409s that fit the final plan |"
        ),
        "|" + "---|" * 16,
    ]
    for res in results:
        c = res.confirm
        if c is None:
            continue
        other_rules = {k: v for k, v in c.violations_after.items() if k != "CAPACITY"}
        lines.append(
            f"| POST /proposals/{{id}}/confirm | {c.backend} | {c.clients} | {c.requests} | {c.ok} | {c.conflicts} | {c.other} "
            f"| {c.overbooked_checker} / {c.overbooked_view} | {_rules(other_rules)} | {c.confirmed_twice} | {c.partial} "
            f"| {c.versions_added} | {c.wall_s:.1f} | {_ms(percentile(c.latencies_ms, 50))} / {_ms(percentile(c.latencies_ms, 95))} / "
            f"{_ms(max(c.latencies_ms, default=float('nan')))} | {_rules(dict(c.conflict_kinds))} | {c.refused_but_fit} |"
        )
    return "\n".join(lines)


def _rules(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "0"


def report(results: list[Result], wall_s: float) -> str:
    parts = [table(results), ""]
    for res in results:
        if res.error:
            parts.append(f"- **{res.backend}: failed**: {res.error}")
            continue
        s = res.setup
        parts.append(
            f"- {res.backend}: regional cohort, {s['patients']} patients, {s['scheduled']} scheduled and confirmed "
            f"({s['status']}, {SOLVE_TIME_LIMIT:g} s solve); today {s['today']}, horizon {s['horizon_days']} d, "
            f"propose time limit {s['propose_time_limit']:g} s, {s['alternatives']} alternatives, "
            f"{s['solver_threads']} solver threads."
        )
        c = res.confirm
        if c is not None:
            parts.append(
                f"  Confirm: {CONFIRM_PATIENTS} new patients (approvals in the first two weeks, {', '.join(PATHWAYS)}) "
                f"proposed on the same plan version, {c.proposals_without_option} without any option; "
                f"{c.alternatives_confirmed} confirm(s) chose an alternative (with moves); {CONFIRM_DUPLICATES} proposals "
                f"confirmed twice at the same moment. Before: {c.overbooked_before} overbooked cells, "
                f"violations {_rules(c.violations_before)}."
            )
            for example in c.other_examples:
                parts.append(f"  Unexpected: `{example}`")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    parts.append(
        f"\nMade with `v2v-bench --api` on this machine ({os.cpu_count()} cores), server and clients on loopback; "
        f"latencies are client-side wall times, sequential requests (one client) after the warm-up. "
        f"Whole run {wall_s:.0f} s; load average at the end {load} (1 / 5 / 15 min: above the core count, "
        "other processes were competing for the CPU and the figures are pessimistic)."
    )
    return "\n".join(parts) + "\n"


def markdown_path(markdown: Path, tag: str = "api") -> Path:
    """``--markdown out/bench.md`` writes ``out/bench-api.md`` (``tag`` api; the solver table is not overwritten)."""
    if markdown.stem.endswith(f"-{tag}"):
        return markdown
    return markdown.with_name(f"{markdown.stem}-{tag}{markdown.suffix or '.md'}")


def main(backends: tuple[str, ...] = ("sqlite",), markdown: Path | None = None) -> int:
    try:
        import httpx  # noqa: F401
    except ImportError:
        print("v2v-bench --api needs httpx: pip install -e '.[test]'", file=sys.stderr)
        return 2
    _stop_on_signals()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="v2v-bench-api-"))
    results: list[Result] = []
    failed, finished = False, False
    try:
        for backend in backends:
            try:
                results.append(run_backend(backend, workdir))
            except Exception as exc:  # one backend failing (server, database, network) does not stop the others
                message = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
                print(f"[{backend}] failed: {message}", file=sys.stderr, flush=True)
                results.append(Result(backend, error=message.splitlines()[0] if message else type(exc).__name__))
                failed = True
        finished = True
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): the server was stopped", file=sys.stderr)
        return 130
    finally:
        if finished and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"server logs kept in {workdir}", file=sys.stderr)
    text = report(results, time.perf_counter() - started)
    print()
    print(text)
    if markdown:
        path = markdown_path(markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"written {path}")
    dirty = any(r.confirm is not None and not r.confirm.clean for r in results)
    return 1 if failed or dirty else 0
