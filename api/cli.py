"""The ``v2v`` command line.

v2v solve COHORT [--time-limit S] [--method M] [--reproducible] [--out PLAN.json]
v2v check COHORT PLAN            exit 0 clean, 1 violations listed, 2 bad input
v2v explain COHORT PLAN --patient ID
v2v schema [cohort|plan|catalogue|site]
v2v bench [--quick]

Bad input never shows a traceback: one line naming the file, the field and the
problem, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pathway.errors import InputError

EXIT_OK, EXIT_VIOLATIONS, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message}\n")


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="v2v", description="vein2vein: schedule cellular therapy pathways")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    catalogue = _Parser(add_help=False)
    catalogue.add_argument("--catalogue", type=Path, help="pathway catalogue YAML (default: fixtures/catalogue/pathways.yaml)")

    solve = sub.add_parser("solve", help="schedule a cohort", parents=[catalogue])
    solve.add_argument("cohort", type=Path)
    solve.add_argument("--time-limit", type=_positive, default=30.0, help="seconds (default 30)")
    solve.add_argument("--method", choices=["cp-sat", "greedy", "capacity-free"], default="cp-sat")
    solve.add_argument("--reproducible", action="store_true", help="one worker, deterministic time limit")
    solve.add_argument("--out", type=Path, help="write the plan as JSON here")

    check = sub.add_parser("check", help="check a plan against every hard rule", parents=[catalogue])
    check.add_argument("cohort", type=Path)
    check.add_argument("plan", type=Path)

    explain = sub.add_parser("explain", help="every date of one patient and what fixed it", parents=[catalogue])
    explain.add_argument("cohort", type=Path)
    explain.add_argument("plan", type=Path)
    explain.add_argument("--patient", required=True)

    schema = sub.add_parser("schema", help="print the JSON Schema of an input format")
    schema.add_argument("what", nargs="?", choices=["cohort", "plan", "catalogue", "site"], default="cohort")

    bench = sub.add_parser("bench", help="benchmark CP-SAT against greedy and the capacity-free bound")
    bench.add_argument("--quick", action="store_true", help="small and regional only, short limits")
    bench.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"v2v {args.command}: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _problem(args):
    from pathway.catalogue import load_catalogue
    from pathway.cohort import load_problem

    catalogue = load_catalogue(args.catalogue) if args.catalogue else None
    return load_problem(args.cohort, catalogue=catalogue)


def _solve(args) -> int:
    from pathway.rules import check_plan
    from solver.solve import SolveOptions, solve

    problem = _problem(args)
    plan = solve(problem, args.method, SolveOptions(time_limit=args.time_limit, reproducible=args.reproducible))
    violations = check_plan(problem, plan)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")
    print(_summary(problem, plan, len(violations)))
    return EXIT_OK if not violations else EXIT_VIOLATIONS


def _summary(problem, plan, violations: int) -> str:
    s = plan.stats
    lines = [
        f"cohort {plan.cohort}: {s['patients']} patients, {s['scheduled']} scheduled, {s['unschedulable']} unschedulable",
        f"method {plan.method}, status {s['status']}, objective {s['objective']}, bound {s['best_bound']}, "
        f"gap {100 * s['gap']:.2f} %, {s['wall_time_s']} s",
        f"approval to infusion: median {s['median_approval_to_infusion_days']} d, p90 {s['p90_approval_to_infusion_days']} d;"
        f" greedy objective {s.get('greedy_objective', '-')}",
        f"rule checker: {violations} violation(s)",
    ]
    if s.get("fallback"):
        lines.append(f"note: {s['fallback']}")
    for u in plan.unschedulable:
        lines.append(f"UNSCHEDULABLE {u.patient} [{u.rule}]: {u.reason}")
    late = [o for o in plan.outcomes if o.capacity_free_infusion and o.infusion > o.capacity_free_infusion]
    if late:
        lines.append(f"{len(late)} patient(s) later than their capacity-free date:")
        for o in late:
            why = "; ".join(o.delayed_by) or "no single full resource found: placed later to fit others"
            lines.append(f"  {o.patient}: infusion {o.infusion} (alone: {o.capacity_free_infusion}); {why}")
    return "\n".join(lines)


def _check(args) -> int:
    from pathway.plan import load_plan
    from pathway.rules import check_plan

    problem = _problem(args)
    plan = load_plan(args.plan)
    violations = check_plan(problem, plan)
    for v in violations:
        print(f"{v.rule}\t{v.patient or '-'}\t{v.step or '-'}\t{v.day or '-'}\t{v.message}")
    print(f"{len(violations)} violation(s)")
    return EXIT_VIOLATIONS if violations else EXIT_OK


def _explain(args) -> int:
    from pathway.plan import load_plan
    from solver.explain import explain_patient

    problem = _problem(args)
    plan = load_plan(args.plan)
    try:
        problem.patient(args.patient)
    except KeyError:
        raise InputError(str(args.cohort), "--patient", f"no patient {args.patient!r} in the cohort") from None
    print(explain_patient(problem, plan, args.patient).text())
    return EXIT_OK


def _schema(args) -> int:
    from pathway.catalogue import Catalogue
    from pathway.cohort import Cohort
    from pathway.plan import Plan
    from pathway.site import Site

    model = {"cohort": Cohort, "plan": Plan, "catalogue": Catalogue, "site": Site}[args.what]
    print(json.dumps(model.model_json_schema(), indent=2))
    return EXIT_OK


def _bench(args) -> int:
    from bench.run import main as bench_main

    return bench_main(quick=args.quick, markdown=args.markdown)


COMMANDS = {"solve": _solve, "check": _check, "explain": _explain, "schema": _schema, "bench": _bench}

if __name__ == "__main__":
    sys.exit(main())
