"""Load benchmark: many clients at once against a real server, reads and writes mixed (measured,
never asserted in tests).

    v2v-bench --load [sqlite|postgresql|both] [--clients N] [--rounds R] [--reads-only] [--markdown FILE]

For each database it prepares the regional demo (``bench.api.prepare_database``: 100 patients
planned and confirmed), registers ``REFERRED`` more referrals waiting for a proposal and one
referral per client and round for the writes (350 patients in all with the defaults; issue 14's
finding had about 150), starts ``v2v serve`` (``bench.api.Server``), then runs ``clients``
threads at once, each with its own HTTP connection and no pause between requests (a closed loop:
the harshest load that many clients can make). Each client does ``rounds`` rounds, each in its
own shuffled order:

- reads: three pages of ``GET /patients`` (no filter, a status, an id prefix; a page's
  ``next_after`` is followed by the next one), ``GET /patients/{id}`` twice,
  ``GET /patients/{id}/timeline``, ``GET /capacity`` over 90 days, ``GET /health``;
- writes: ``POST /patients/{id}/proposals`` for one of its referrals, then
  ``POST /proposals/{id}/confirm`` of the first option.

A confirm may get 409 (another client took the capacity first) and a proposal 503 (the solver
queue is full, with Retry-After): both are answers the service promises under load, counted
apart. Anything else that is not 2xx, or no answer, is a failure (exit status 1).
Figures: p50/p95/p99/max per route (client-side wall time) and requests per second; the target
is p95 <= ``TARGET_READ_P95_MS`` for every read route.
"""

from __future__ import annotations

import collections
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.api import (
    COHORT,
    POSTGRES_URL,
    BenchError,
    Server,
    _client,
    _ms,
    _referral,
    _reset_postgres,
    _settings,
    _stop_on_signals,
    markdown_path,
    percentile,
    prepare_database,
)

CLIENTS = 20
ROUNDS = 10  # per client: 8 reads and 2 writes each
REFERRED = 50  # referrals waiting for a proposal, besides the cohort's patients
CAPACITY_DAYS = 90
TARGET_READ_P95_MS = 300.0
READS = ("GET /patients", "GET /patients/{id}", "GET /patients/{id}/timeline", "GET /capacity", "GET /health")
WRITES = ("POST /patients/{id}/proposals", "POST /proposals/{id}/confirm")
EXPECTED = {"POST /patients/{id}/proposals": {503}, "POST /proposals/{id}/confirm": {409}}


@dataclass
class RouteFigures:
    route: str
    samples_ms: list[float] = field(default_factory=list)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, status: int, ms: float, detail: str = "") -> None:
        self.samples_ms.append(ms)
        self.statuses[status] += 1
        if not (200 <= status < 300 or status in EXPECTED.get(self.route, ())) and len(self.failures) < 3:
            self.failures.append(f"{status}: {detail[:200]}")

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if not (200 <= s < 300 or s in EXPECTED.get(self.route, ())))

    def p(self, q: float) -> float:
        return percentile(self.samples_ms, q)

    @property
    def met(self) -> bool | None:
        """Whether a read route met its target (None for a write: no target)."""
        return self.p(95) <= TARGET_READ_P95_MS if self.route in READS and self.samples_ms else None


@dataclass
class LoadResult:
    backend: str
    clients: int
    rounds: int
    writes: bool = True
    workers: int = 1
    patients: int = 0
    routes: dict[str, RouteFigures] = field(default_factory=dict)
    wall_s: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    server_errors: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def requests(self) -> int:
        return sum(len(r.samples_ms) for r in self.routes.values())

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.routes.values()) + len(self.server_errors)


class Client:
    """One user: its own connection, its own referrals to propose for, its own random order."""

    def __init__(self, server: Server, token: str, today: date, index: int, referrals: list[str], known: list[str]):
        self.http = _client(server, token)
        self.today = today
        self.random = random.Random(index)
        self.referrals = referrals
        self.known = known
        self.cursor: str | None = None
        self.figures: dict[str, RouteFigures] = {name: RouteFigures(name) for name in READS + WRITES}

    def timed(self, route: str, method: str, path: str, **kwargs) -> Any:
        import httpx

        started = time.perf_counter()
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.figures[route].add(-1, 1000 * (time.perf_counter() - started), type(exc).__name__)
            return None
        self.figures[route].add(response.status_code, 1000 * (time.perf_counter() - started), response.text)
        return response if response.is_success else None

    def patients_page(self, kind: str) -> None:
        params: dict[str, Any] = {"limit": 50}
        if kind == "status":
            params["status"] = self.random.choice(("scheduled", "referred", "unschedulable"))
        elif kind == "prefix":
            params["q"] = self.random.choice(("R-00", "R-01", "L-", "P-"))
        elif self.cursor:
            params["after"] = self.cursor
        response = self.timed("GET /patients", "GET", "/patients", params=params)
        if response is not None and kind == "all":
            self.cursor = response.json()["next_after"]  # the next page next time; from the start after the last

    def capacity(self) -> None:
        first = self.today + timedelta(days=7 * self.random.randrange(5))
        last = first + timedelta(days=CAPACITY_DAYS - 1)
        self.timed("GET /capacity", "GET", "/capacity", params={"from": first.isoformat(), "to": last.isoformat()})

    def propose_and_confirm(self) -> None:
        patient = self.referrals.pop()
        response = self.timed("POST /patients/{id}/proposals", "POST", f"/patients/{patient}/proposals")
        if response is None:
            return
        options = response.json()["options"]
        if options:
            body = {"option": options[0]["rank"]}
            self.timed("POST /proposals/{id}/confirm", "POST", f"/proposals/{response.json()['id']}/confirm", json=body)

    def round(self) -> None:
        patient = self.random.choice(self.known)
        steps = [
            lambda: self.patients_page("all"),
            lambda: self.patients_page("status"),
            lambda: self.patients_page("prefix"),
            lambda: self.timed("GET /patients/{id}", "GET", f"/patients/{self.random.choice(self.known)}"),
            lambda: self.timed("GET /patients/{id}", "GET", f"/patients/{self.random.choice(self.known)}"),
            lambda: self.timed("GET /patients/{id}/timeline", "GET", f"/patients/{patient}/timeline"),
            self.capacity,
            lambda: self.timed("GET /health", "GET", "/health"),
        ]
        if self.referrals:  # none in a reads-only run
            steps.append(self.propose_and_confirm)
        self.random.shuffle(steps)
        for step in steps:
            step()


def run_load(
    database_url: str,
    workdir: Path,
    clients: int = CLIENTS,
    rounds: int = ROUNDS,
    cohort: Path = COHORT,
    referred: int = REFERRED,
    backend: str = "",
    writes: bool = True,
    workers: int = 1,
    log=print,
) -> LoadResult:
    """Prepare ``database_url`` (emptied first by the caller), serve it, run the clients; the figures.
    Without ``writes``, the rounds are the reads alone (no proposal, no confirm)."""
    from pathway.cohort import load_problem

    result = LoadResult(backend or database_url.split(":", 1)[0], clients, rounds, writes=writes, workers=workers)
    today = load_problem(cohort).horizon.start
    settings = _settings(database_url, today).model_copy(update={"workers": workers})
    log(f"[{result.backend}] preparing the database ({cohort.stem} cohort) ...")
    setup = prepare_database(settings, cohort)
    tokens = setup["tokens"]
    server_dir = workdir / f"server-load-{result.backend}"
    server_dir.mkdir(parents=True)
    with Server(settings, server_dir) as server:
        with _client(server, tokens["coordinator"]) as http:
            waiting = [f"P-{i:04d}" for i in range(referred)]
            mine = [[f"L-{c:02d}-{r:03d}" for r in range(rounds)] if writes else [] for c in range(clients)]
            for i, patient in enumerate(waiting + [p for theirs in mine for p in theirs]):
                response = http.post("/patients", json=_referral(patient, i, today, 85))
                if response.status_code != 201:
                    raise BenchError(f"POST /patients: {response.status_code} {response.text[:300]}")
            known, after = [], None
            while True:  # the ids a user could open, read the way the page reads them
                page = http.get("/patients", params={"limit": 200, **({"after": after} if after else {})}).json()
                known += [p["id"] for p in page["patients"]]
                after = page["next_after"]
                if after is None:
                    break
        result.patients = len(known)
        users = [Client(server, tokens["coordinator"], today, c, mine[c], known) for c in range(clients)]
        for user in users:
            user.http.get("/health")  # the connection is open before the start
        barrier = threading.Barrier(clients + 1)

        def work(user: Client) -> None:
            barrier.wait(timeout=60)
            for _ in range(rounds):
                user.round()

        threads = [threading.Thread(target=work, args=(user,), daemon=True) for user in users]
        for t in threads:
            t.start()
        log(f"[{result.backend}] {len(known)} patients; {clients} clients x {rounds} rounds ...")
        result.load_before = os.getloadavg()
        barrier.wait(timeout=60)
        started = time.perf_counter()
        for t in threads:
            t.join(timeout=600)
        result.wall_s = time.perf_counter() - started
        result.load_after = os.getloadavg()
        for user in users:
            user.http.close()
        if any(t.is_alive() for t in threads):
            result.error = "a client did not finish within 600 s"
        result.server_errors = server.errors_logged()
    for name in READS + WRITES:
        merged = RouteFigures(name)
        for user in users:
            mine = user.figures[name]
            merged.samples_ms += mine.samples_ms
            merged.statuses.update(mine.statuses)
            merged.failures += mine.failures[: 3 - len(merged.failures)]
        result.routes[name] = merged
    return result


# -- report -------------------------------------------------------------------------------------
def table(results: list[LoadResult]) -> str:
    lines = [
        "| route | database | requests | p50 ms | p95 ms | p99 ms | max ms | answers | target p95 | met |",
        "|" + "---|" * 10,
    ]
    for res in results:
        for r in res.routes.values():
            if not r.samples_ms:
                continue
            answers = ", ".join(f"{n} x {s}" for s, n in sorted(r.statuses.items()))
            target = f"<= {TARGET_READ_P95_MS:g} ms" if r.met is not None else "-"
            met = "-" if r.met is None else "yes" if r.met else "no"
            lines.append(
                f"| {r.route} | {res.backend} | {len(r.samples_ms)} | {_ms(r.p(50))} | {_ms(r.p(95))} | {_ms(r.p(99))} "
                f"| {_ms(max(r.samples_ms))} | {answers} | {target} | {met} |"
            )
    return "\n".join(lines)


def report(results: list[LoadResult]) -> str:
    parts = [table(results), ""]
    for res in results:
        if res.error and not res.routes:
            parts.append(f"- **{res.backend}: failed**: {res.error}")
            continue
        reads = sum(len(res.routes[name].samples_ms) for name in READS)
        before = " / ".join(f"{x:.2f}" for x in res.load_before)
        after = " / ".join(f"{x:.2f}" for x in res.load_after)
        parts.append(
            f"- {res.backend}: {res.clients} clients x {res.rounds} rounds{'' if res.writes else ' of reads only'}, "
            f"{res.patients} patients listed, {res.workers} server process(es); "
            f"{res.requests} requests in {res.wall_s:.1f} s = {res.requests / res.wall_s:.1f} requests/s "
            f"({reads / res.wall_s:.1f} reads/s); {res.failed} failed. Load average (1 / 5 / 15 min) "
            f"{before} at the start, {after} at the end, on {os.cpu_count()} cores."
        )
        for r in res.routes.values():
            parts += [f"  Unexpected on {r.route}: `{f}`" for f in r.failures]
        parts += [f"  Server log: `{line}`" for line in res.server_errors[:3]]
        if res.error:
            parts.append(f"  **{res.error}**")
    return "\n".join(parts) + "\n"


def main(
    backends: tuple[str, ...] = ("sqlite",),
    clients: int = CLIENTS,
    rounds: int = ROUNDS,
    markdown: Path | None = None,
    writes: bool = True,
    workers: int = 1,
) -> int:
    try:
        import httpx  # noqa: F401
    except ImportError:
        print("v2v-bench --load needs httpx: pip install -e '.[test]'", file=sys.stderr)
        return 2
    _stop_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="v2v-bench-load-"))
    results: list[LoadResult] = []
    try:
        for backend in backends:
            if backend == "postgresql":
                _reset_postgres(POSTGRES_URL)
                url = POSTGRES_URL
            else:
                url = f"sqlite:///{workdir / 'load.db'}"
            try:
                results.append(run_load(url, workdir, clients, rounds, backend=backend, writes=writes, workers=workers))
            except Exception as exc:  # one database failing does not stop the other
                message = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
                print(f"[{backend}] failed: {message}", file=sys.stderr, flush=True)
                results.append(LoadResult(backend, clients, rounds, writes, error=message.splitlines()[0]))
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): the server was stopped", file=sys.stderr)
        return 130
    failed = any(r.error or r.failed for r in results)
    if failed:
        print(f"server logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(results)
    print()
    print(text)
    if markdown:
        path = markdown_path(markdown, "load")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"written {path}")
    return 1 if failed else 0
