"""python -m cohorts: write a synthetic cohort, or rebuild the fixture cohorts.

    python -m cohorts --name X --seed N --patients N --start YYYY-MM-DD --days N
        [--site S] [--mix NAME|template=weight,...] [--approval-window N] [--description TEXT] --out FILE|-
    python -m cohorts --fixtures [NAME ...] [--check]

Bad arguments exit with code 2 and one line naming the argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from cohorts.fixtures import FIXTURES, fixture_path, stale_fixtures, write_fixtures
from cohorts.generator import generate_cohort, mixes, render
from pathway.cohort import parse_cohort
from pathway.dates import parse_iso_date
from pathway.errors import InputError

_ARGUMENT_OF_FIELD = {
    "name": "--name",
    "seed": "--seed",
    "patients": "--patients",
    "horizon_start": "--start",
    "horizon_days": "--days",
    "site": "--site",
    "mix": "--mix",
    "approval_window_days": "--approval-window",
    "description": "--description",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the usage too)
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _iso_date(text: str) -> date:
    try:
        return parse_iso_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_mix(text: str) -> dict[str, float]:
    """'national' -> that mix of cohorts/mixes.yaml; 'axi-cel=2,asct-beam=3' -> {'axi-cel': 2.0, 'asct-beam': 3.0}."""
    if "=" not in text:
        named = mixes()
        if text.strip() not in named:
            known = ", ".join(named)
            raise argparse.ArgumentTypeError(
                f"expected a mix name ({known}) or template=weight[,template=weight...], got {text.strip()!r}"
            )
        return dict(named[text.strip()])
    mix: dict[str, float] = {}
    for part in text.split(","):
        template_id, sep, weight = part.strip().partition("=")
        if not sep or not template_id.strip():
            raise argparse.ArgumentTypeError(f"expected template=weight[,template=weight...], got {part.strip()!r}")
        try:
            value = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {template_id.strip()!r} is not a number: {weight!r}") from None
        if template_id.strip() in mix:
            raise argparse.ArgumentTypeError(f"template {template_id.strip()!r} is given twice")
        mix[template_id.strip()] = value
    return mix


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m cohorts",
        description="Write a synthetic cohort (JSON), or rebuild the fixture cohorts with --fixtures.",
    )
    parser.add_argument("--name", help="cohort name (patient ids take its initials)")
    parser.add_argument("--seed", type=int, help="random seed: same arguments, same file")
    parser.add_argument("--patients", type=int, help="number of patients")
    parser.add_argument("--start", type=_iso_date, help="first day of the horizon, YYYY-MM-DD")
    parser.add_argument("--days", type=int, help="length of the horizon in days (7-800)")
    parser.add_argument("--site", default="default", help="site file name under pathway/data/sites (default, national)")
    parser.add_argument(
        "--mix", type=parse_mix, help="a mix of cohorts/mixes.yaml by name, or template=weight,... (default: regional)"
    )
    parser.add_argument("--approval-window", type=int, help="approvals fall in the first N days (default: days-90)")
    parser.add_argument("--description", default="", help="free text for the cohort")
    parser.add_argument("--out", help="output file ('-' for standard output)")
    parser.add_argument(
        "--fixtures",
        nargs="*",
        metavar="NAME",
        help=f"rewrite the fixture cohorts under cohorts/data (all, or some of: {', '.join(FIXTURES)})",
    )
    parser.add_argument(
        "--check", action="store_true", help="with --fixtures: write nothing, exit 1 if a file is stale"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    if args.fixtures is not None:
        generation = [
            a
            for a in ("name", "seed", "patients", "start", "days", "mix", "approval_window", "out")
            if getattr(args, a) is not None
        ]
        if generation:
            parser.error(f"argument --fixtures: not allowed with --{generation[0].replace('_', '-')}")
        unknown = [n for n in args.fixtures if n not in FIXTURES]
        if unknown:
            parser.error(f"argument --fixtures: unknown fixture {unknown[0]!r} (known: {', '.join(FIXTURES)})")
        names = args.fixtures or None
        if args.check:
            stale = stale_fixtures(names)
            for n in stale:
                print(f"{fixture_path(n)} is stale: run python -m cohorts --fixtures {n}", file=sys.stderr)
            return 1 if stale else 0
        for path in write_fixtures(names):
            print(path)
        return 0

    if args.check:
        parser.error("argument --check: only with --fixtures")
    for flag in ("name", "seed", "patients", "start", "days", "out"):
        if getattr(args, flag) is None:
            parser.error(f"argument --{flag}: is required")
    try:
        cohort = generate_cohort(
            name=args.name,
            seed=args.seed,
            patients=args.patients,
            horizon_start=args.start,
            horizon_days=args.days,
            site=args.site,
            mix=args.mix,
            description=args.description,
            approval_window_days=args.approval_window,
        )
        parse_cohort(json.loads(render(cohort)), source=args.name)
    except InputError as exc:
        flag = _ARGUMENT_OF_FIELD.get(exc.field.split(".")[0].split("[")[0])
        parser.error(f"argument {flag}: {exc.problem}" if flag else exc.one_line())
    if args.out == "-":
        sys.stdout.write(render(cohort))
        return 0
    try:
        Path(args.out).write_text(render(cohort), encoding="utf-8")
    except OSError as exc:
        parser.error(f"argument --out: cannot write {args.out!r}: {exc.strerror}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
