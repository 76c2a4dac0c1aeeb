"""The load benchmark's harness (bench/load.py), small: two clients, two rounds, a real server on
the small cohort. Its figures are not checked (timings belong in bench/ and the README): only that
every route was exercised, every request answered as the service promises, and the report's table."""

from __future__ import annotations

from bench.load import READS, WRITES, report, run_load
from tests.paths import COHORTS


def test_the_load_harness_runs_every_route_with_no_failed_request(database_url, tmp_path):
    result = run_load(database_url, tmp_path, clients=2, rounds=2, cohort=COHORTS / "small.json", referred=3)
    assert result.error is None and result.server_errors == []
    assert result.failed == 0, {r.route: r.failures for r in result.routes.values()}
    assert set(result.routes) == set(READS + WRITES)
    for name in READS + ("POST /patients/{id}/proposals",):
        assert result.routes[name].samples_ms, name  # each read route and the proposals were timed
    assert result.patients == 9 + 3 + 2 * 2  # the cohort, the waiting referrals, one per client and round
    assert result.requests == sum(len(r.samples_ms) for r in result.routes.values()) > 2 * 2 * 8
    text = report([result])
    for name in READS:
        assert f"| {name} | " in text
    assert "requests/s" in text and "0 failed" in text
