"""The benchmarks' command line: ``v2v-bench`` (or ``python -m bench``).

    v2v-bench [--quick] [--markdown FILE]                        column generation, CP-SAT, greedy, bound (bench/run.py)
    v2v-bench --api [sqlite|postgresql|both] [--markdown FILE]   the HTTP API on a real server (bench/api.py)
    v2v-bench --nightly [--markdown FILE]                        the nightly re-solve (bench/nightly.py)
    v2v-bench --cli [--runs N] [--markdown FILE]                 greedy solves from process start (bench/cli.py)
    v2v-bench --load [sqlite|postgresql|both] [--clients N] [--rounds R] [--workers W] [--reads-only] [--markdown FILE]
                                                                 many clients at once, reads and writes (bench/load.py)

The benchmarks import ``api``, ``solver``, ``pathway`` and ``cohorts``; nothing imports
``bench``. Bad arguments exit with code 2 and one line naming the problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: {message}\n")


def _count(low: int, high: int):
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"a whole number from {low} to {high}")
        return int(text)

    return parse


def _databases(group, flag: str, what: str, markdown: str) -> None:
    """A benchmark of the API on one database or both (``flag [sqlite|postgresql|both]``)."""
    group.add_argument(
        flag,
        nargs="?",
        const="sqlite",
        choices=["sqlite", "postgresql", "both"],
        help=f"{what} (default sqlite; postgresql resets 127.0.0.1:5432/v2v_bench); {markdown}",
    )


def _parser() -> _Parser:
    parser = _Parser(prog="v2v-bench", description="vein2vein benchmarks (measured here, never asserted in tests)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--quick", action="store_true", help="solver benchmark on small, regional and oversubscribed only"
    )
    _databases(
        which,
        "--api",
        "benchmark the HTTP API instead, a real server on loopback",
        "--markdown out/bench.md writes out/bench-api.md",
    )
    which.add_argument(
        "--nightly",
        action="store_true",
        help="benchmark the nightly re-solve instead (regional, one OOS event); "
        "--markdown out/bench.md writes out/bench-nightly.md",
    )
    which.add_argument(
        "--cli",
        action="store_true",
        help="time `v2v solve COHORT --method greedy` as whole processes instead (regional, national); "
        "--markdown out/bench.md writes out/bench-cli.md",
    )
    _databases(
        which,
        "--load",
        "load benchmark instead: --clients at once against a real server, reads mixed with proposals and confirms",
        "--markdown out/bench.md writes out/bench-load.md",
    )
    parser.add_argument("--clients", type=_count(1, 200), default=20, help="with --load: clients at once (20)")
    parser.add_argument("--rounds", type=_count(1, 1000), default=10, help="with --load: rounds per client (10)")
    parser.add_argument("--workers", type=_count(1, 16), default=1, help="with --load: server processes (1)")
    parser.add_argument(
        "--reads-only", action="store_true", help="with --load: no proposals or confirms (where do reads stand alone?)"
    )
    parser.add_argument("--runs", type=_count(1, 50), default=5, help="with --cli: counted runs per cohort (5)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.nightly:
        from bench.nightly import main as nightly_main

        return nightly_main(markdown=args.markdown)
    if args.cli:
        from bench.cli import main as cli_main

        return cli_main(runs=args.runs, markdown=args.markdown)
    if args.load:
        from bench.load import main as load_main

        backends = ("sqlite", "postgresql") if args.load == "both" else (args.load,)
        return load_main(
            backends, args.clients, args.rounds, args.markdown, writes=not args.reads_only, workers=args.workers
        )
    if args.api:
        from bench.api import main as api_main

        backends = ("sqlite", "postgresql") if args.api == "both" else (args.api,)
        return api_main(backends=backends, markdown=args.markdown)
    from bench.run import main as bench_main

    return bench_main(quick=args.quick, markdown=args.markdown)


if __name__ == "__main__":
    sys.exit(main())
