"""The ``v2v`` command line.

v2v solve COHORT [--time-limit S] [--method M] [--reproducible] [--out PLAN.json]
v2v check COHORT PLAN            exit 0 clean, 1 violations listed, 2 bad input
v2v explain COHORT PLAN --patient ID
v2v schema [cohort|plan|catalogue|site]
v2v serve [--host H] [--port P]          the API on the configured database
v2v demo [--port P] [--past-days N]     fresh SQLite database, regional cohort planned and confirmed, its first
                                         N days (21) recorded as they happened, served on the day after
v2v db init [--roles]                    migrate the schema, load the catalogue and site
                                         (--roles, PostgreSQL: owner and service roles first)
v2v token create NAME --role ROLE        print a new bearer token (shown once)
v2v import COHORT [--time-limit S]       register a cohort's patients and plan them
v2v nightly run [--night DATE]           the nightly re-solve, now (claims the night: once per night)
v2v nightly history [--limit N]          the last runs: status, bookings moved, summary

Bad input never shows a traceback: one line naming the file, the field and the
problem, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cohorts import DEMO_COHORT
from pathway.dates import say_day
from pathway.errors import InputError

EXIT_OK, EXIT_VIOLATIONS, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message}\n")


def _iso_date(value: str):
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _days(value: str) -> int:
    if not value.isdigit() or int(value) > 120:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days from 0 to 120")
    return int(value)


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
    catalogue.add_argument(
        "--catalogue", type=Path, help="pathway catalogue YAML (default: the packaged pathway/data/pathways.yaml)"
    )

    solve = sub.add_parser("solve", help="schedule a cohort", parents=[catalogue])
    solve.add_argument("cohort", type=Path)
    solve.add_argument("--time-limit", type=_positive, default=30.0, help="seconds (default 30)")
    solve.add_argument("--method", choices=["colgen", "cp-sat", "greedy", "capacity-free"], default="colgen")
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

    serve = sub.add_parser("serve", help="run the HTTP API (database from DATABASE_URL)")
    serve.add_argument("--host", help="default 127.0.0.1 (V2V_HOST)")
    serve.add_argument("--port", type=int, help="default 8000 (V2V_PORT)")
    serve.add_argument("--workers", type=int, help="server processes, default 1 (V2V_WORKERS)")

    demo = sub.add_parser("demo", help="fresh demo database with the regional cohort planned, then serve it")
    demo.add_argument("--database", type=Path, default=Path("vein2vein-demo.db"), help="SQLite file (recreated)")
    demo.add_argument(
        "--cohort", type=Path, default=DEMO_COHORT, help="cohort file (default: the packaged regional cohort)"
    )
    demo.add_argument("--time-limit", type=_positive, default=10.0, help="seconds for the cohort solve (default 10)")
    demo.add_argument(
        "--past-days",
        type=_days,
        default=21,
        help="days from the cohort's first day recorded as they happened before today (default 21; 0: none)",
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--workers", type=int, help="server processes, default 1 (V2V_WORKERS)")
    demo.add_argument("--no-serve", action="store_true", help="prepare the database and exit")

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["init"])
    db.add_argument(
        "--roles",
        action="store_true",
        help="PostgreSQL: create the owner role (V2V_MIGRATION_DATABASE_URL's user) and the service role "
        "(DATABASE_URL's user) with the database, as V2V_ADMIN_DATABASE_URL; migrate as the owner; "
        "grant the service rows only",
    )

    token = sub.add_parser("token", help="API tokens")
    token.add_argument("action", choices=["create", "revoke", "list"])
    token.add_argument("name", nargs="?")
    token.add_argument("--role", choices=["coordinator", "lab_manager", "admin"], help="for create")

    night = sub.add_parser("nightly", help="the nightly re-solve, by hand (e.g. from a system timer), and its history")
    night.add_argument("action", choices=["run", "history"])
    night.add_argument("--night", type=_iso_date, help="the night to run (default: today in V2V_NIGHTLY_TIMEZONE)")
    night.add_argument("--limit", type=int, default=10, help="runs shown by history (default 10)")

    imp = sub.add_parser("import", help="register a cohort file's patients and plan them")
    imp.add_argument("cohort", type=Path)
    imp.add_argument("--time-limit", type=_positive, default=10.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"v2v {args.command}: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        # the API's refusals (Conflict, NotFound) and an unreachable or unusable database are
        # the operator's to fix: one line, not a traceback
        from psycopg import Error as PostgresError
        from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

        from api.state import Conflict, NotFound

        if isinstance(exc, (Conflict, NotFound)):
            message = str(exc)
        elif isinstance(exc, ProgrammingError) and getattr(exc.orig, "sqlstate", None) == "42501":
            message = (
                "database: permission denied (a schema change needs the owner role: "
                "set V2V_MIGRATION_DATABASE_URL, README 'PostgreSQL in production: roles')"
            )
        elif isinstance(exc, PostgresError):  # v2v db init --roles talks to the server directly
            message = f"database: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        elif isinstance(exc, (OperationalError, ArgumentError)):
            message = f"database: {str(exc.orig if getattr(exc, 'orig', None) else exc).splitlines()[0]}"
        else:
            raise
        print(f"v2v {args.command}: {message}", file=sys.stderr)
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
        f"cohort {plan.cohort}: {s['patients']} patients, {s['scheduled']} scheduled, "
        f"{s['unschedulable']} unschedulable",
        f"method {plan.method}, status {s['status']}, objective {s['objective']}, bound {s['best_bound']}, "
        f"gap {100 * s['gap']:.2f} %, {s['wall_time_s']} s",
        f"bound by {s['bound_method']} in {s['time_to_bound_s']} s, plan in {s['time_to_plan_s']} s; "
        f"unscheduled for capacity: {s['unscheduled_for_capacity']} (proven minimum "
        f"{s['unscheduled_proven_minimum']})",
        f"approval to infusion: median {s['median_approval_to_infusion_days']} d, "
        f"p90 {s['p90_approval_to_infusion_days']} d, max {s['max_approval_to_infusion_days']} d;"
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


def _settings(**overrides):
    from pydantic import ValidationError

    from api.settings import Settings
    from pathway.errors import validation_error

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise validation_error("settings", exc) from None


def _serve(args) -> int:
    settings = _settings(host=args.host, port=args.port, workers=args.workers)
    from api.setup import init_database

    init_database(settings)
    return _run_server(settings)


def _run_server(settings) -> int:
    import logging

    import uvicorn

    from api.app import create_app
    from api.services import warm_up

    warm_up()

    # the service's own log lines (nightly runs: ids, dates and counts, never patient data)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"vein2vein API on http://{settings.host}:{settings.port} (OpenAPI: /docs)", flush=True)
    # access_log off: uvicorn's prints paths, which carry patient ids (api.access_log logs route templates);
    # server_header off: no "server: uvicorn" banner telling a visitor what to attack
    options = dict(host=settings.host, port=settings.port, log_level="info", access_log=False, server_header=False)
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return EXIT_OK
    # several processes (uvicorn's supervisor): each builds its app from the environment, given here the
    # settings this command resolved; the nightly run is claimed by one of them (api.ledger)
    os.environ.update({"DATABASE_URL": settings.database_url, "V2V_WORKERS": str(settings.workers)})
    if settings.today is not None:
        os.environ["V2V_TODAY"] = settings.today.isoformat()
    uvicorn.run("api.app:from_environment", factory=True, workers=settings.workers, **options)
    return EXIT_OK


def _demo(args) -> int:
    from datetime import timedelta

    from api import diary
    from api.setup import init_database, load_cohort, new_token
    from pathway.cohort import load_problem

    horizon = load_problem(args.cohort).horizon
    database = args.database.resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    # the demo's days are the cohort's, so the demo reads the same on any date
    settings = _settings(
        database_url=f"sqlite:///{database}", today=horizon.start, port=args.port, workers=args.workers
    )
    init_database(settings)
    plan = load_cohort(settings, args.cohort, time_limit=args.time_limit)
    s = plan.stats
    print(
        f"demo database {database}: {s['patients']} patients, {s['scheduled']} scheduled and confirmed, "
        f"{s['unschedulable']} unschedulable on {say_day(horizon.start)}"
    )
    if args.past_days:
        # its first weeks recorded as they happened (a product late, a step left unrecorded), so that
        # today's worklist has something on it
        last = horizon.start + timedelta(days=args.past_days - 1)
        played = diary.play(settings, horizon.start, last, diary.demo_script(settings, horizon.start, last))
        print(played.summary())
        settings = settings.model_copy(update={"today": last + timedelta(days=1)})
    today = settings.planning_day()
    print(f"today is {say_day(today)}")
    for role in ("coordinator", "lab_manager", "admin"):
        print(f"token for {role}: {new_token(settings, f'demo-{role}', role)}")
    print(f"environment for another shell: DATABASE_URL=sqlite:///{database} V2V_TODAY={today}")
    if args.no_serve:
        return EXIT_OK
    return _run_server(settings)


def _db(args) -> int:
    from api.setup import init_database

    settings = _settings()
    if args.roles:
        from api import database_roles

        roles = database_roles.plan(settings.admin_database_url, settings.migration_database_url, settings.database_url)
        database_roles.provision(roles)
        print(
            f"database {roles.database}: owned by role {roles.owner.role}, schema migrated; "
            f"role {roles.service.role} may read and write rows"
        )
    init_database(settings)
    print("database ready")
    return EXIT_OK


def _token(args) -> int:
    from api.setup import init_database, list_tokens, new_token, revoke_token

    settings = _settings()
    init_database(settings)
    if args.action == "list":
        for name, role, created, revoked in list_tokens(settings):
            print(
                f"{name}\t{role}\tcreated {created:%Y-%m-%d %H:%M}"
                + (f"\trevoked {revoked:%Y-%m-%d %H:%M}" if revoked else "")
            )
        return EXIT_OK
    if not args.name:
        raise InputError("token", "name", f"{args.action} needs a token name")
    try:
        if args.action == "revoke":
            revoke_token(settings, args.name)
            print(f"token {args.name} revoked")
            return EXIT_OK
        if not args.role:
            raise InputError("token", "--role", "create needs --role coordinator|lab_manager|admin")
        print(new_token(settings, args.name, args.role))
    except ValueError as exc:
        raise InputError("token", "name", str(exc)) from None
    return EXIT_OK


def _import(args) -> int:
    from api.setup import init_database, load_cohort

    settings = _settings()
    init_database(settings)
    plan = load_cohort(settings, args.cohort, time_limit=args.time_limit)
    print(f"imported {plan.stats['patients']} patients: {plan.stats['scheduled']} scheduled")
    return EXIT_OK


def _nightly(args) -> int:
    import logging
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from api import ledger, nightly
    from api.db import JobRun, make_engine, make_sessionmaker
    from api.setup import init_database
    from api.unit_of_work import Database

    settings = _settings()
    init_database(settings)
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        database = Database(sessions)
        if args.action == "history":
            with database.read() as work:
                for run in ledger.history(work.session, nightly.JOB, max(1, args.limit)):
                    view = nightly.run_view(run)
                    retry = f" (re-run of run {view['retry_of']})" if view["retry_of"] else ""
                    print(
                        f"{view['id']}\t{view['started_at'][:19]}\t{view['trigger']}{retry}\t{view['status']}\t"
                        f"{view['bookings_moved']} moved\t{view['summary']}"
                    )
            return EXIT_OK
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        night = args.night or datetime.now(ZoneInfo(settings.nightly_timezone)).date()
        run_id = nightly.claim_night(sessions, settings, night, "schedule")
        if run_id is None:
            raise InputError(
                "nightly",
                "--night",
                f"the nightly run of {night.isoformat()} has been claimed already (v2v nightly history)",
            )
        print(f"nightly run {run_id} of {night.isoformat()} started", flush=True)
        nightly.execute(sessions, settings, run_id)
        with database.read() as work:
            run = work.session.get(JobRun, run_id)
            print(f"nightly run {run_id}: {run.status}: {run.report.get('summary', '')}")
            return EXIT_OK if run.status != "failed" else EXIT_VIOLATIONS
    finally:
        engine.dispose()


COMMANDS = {
    "solve": _solve,
    "check": _check,
    "explain": _explain,
    "schema": _schema,
    "serve": _serve,
    "demo": _demo,
    "db": _db,
    "token": _token,
    "import": _import,
    "nightly": _nightly,
}

if __name__ == "__main__":
    sys.exit(main())
