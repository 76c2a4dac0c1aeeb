"""The HTTP API (FastAPI; OpenAPI at /docs). Routes are thin: parse, call a use case, return.

Errors: 401 no or unknown token, 403 wrong role, 404 unknown thing, 409 clash
with the current state (stale proposal, full resource-day), 422 bad input with
the field named, 503 solver queue full. Never a 500 for bad input.

(No ``from __future__ import annotations`` here: FastAPI resolves the role
dependencies, which are defined inside ``create_app``, from real annotations.)
"""

import logging
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import ledger, nightly, pages, services, state, views
from api.audit import Actor
from api.auth import actor_for
from api.db import CapacityChangeRow, PatientRow, ProposalRow, make_engine, make_sessionmaker
from api.schemas import ApiDate, CapacityChangeIn, ConfirmIn, DeferIn, OutOfSpecificationIn, ReferralEdit, ReferralIn, ReplanIn, Text, WithdrawIn
from api.settings import Settings
from api.solving import SolverBusy, SolverPool
from api.state import Conflict, NotFound
from pathway.errors import InputError, field_path

log = logging.getLogger("vein2vein.api")

PatientId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$", description="pseudonymous patient id")]
ERRORS = {
    400: {"description": "the body cannot be read (not UTF-8 JSON)"},
    401: {"description": "no token, or an unknown one"},
    403: {"description": "the token's role may not do this"},
    404: {"description": "no such patient, proposal, plan version or capacity change"},
    409: {"description": "clashes with the current state: the message names the resource and day"},
    422: {"description": "bad input: each error names the field and the problem"},
}


class Services:
    """What the routes share: settings, the database and the solver pool."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.reads = make_sessionmaker(self.engine, readonly=True)
        self.solvers = SolverPool(settings.solver_threads)
        self.nightly = nightly.NightlyScheduler(self.sessions, settings)

    def start(self) -> None:
        """At every lifespan start (an app may be started again after a shutdown, e.g. in tests)."""
        if self.solvers.closed:
            self.solvers = SolverPool(self.settings.solver_threads)
        self.solvers.run(services.warm_up)  # CP-SAT's import, once, before the first proposal
        self.nightly.start()

    def stop(self) -> None:
        self.nightly.stop()
        self.solvers.shutdown()
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back (nothing stored) on any error."""
        with self.sessions() as session:
            with session.begin():
                yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.reads() as session:
            with session.begin():
                yield session


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    svc = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.start()
        yield
        svc.stop()

    app = FastAPI(
        title="vein2vein",
        version="0.2.0",
        description="Scheduling of cellular therapy pathways: referrals, proposals, confirmed bookings, capacity.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.services = svc
    bearer = HTTPBearer(auto_error=False)

    def actor(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        with svc.read() as session:
            found = actor_for(session, credentials.credentials)
        if found is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        return found

    def role(*allowed: str):
        def check(who: Annotated[Actor, Depends(actor)]) -> Actor:
            if who.role != "admin" and who.role not in allowed:
                raise HTTPException(403, f"role {who.role} may not do this (needs {' or '.join(allowed) or 'admin'})")
            return who

        return check

    Anyone = Annotated[Actor, Depends(role("coordinator", "lab_manager"))]
    Coordinator = Annotated[Actor, Depends(role("coordinator"))]
    LabManager = Annotated[Actor, Depends(role("lab_manager"))]
    Planner = Annotated[Actor, Depends(role("coordinator", "lab_manager"))]
    Admin = Annotated[Actor, Depends(role())]

    # -- errors ---------------------------------------------------------------------------------
    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        return JSONResponse(status_code=422, content={"detail": [{"field": exc.field or "body", "problem": exc.problem}]})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        detail = []
        for error in exc.errors():
            message = str(error.get("msg", "invalid"))
            detail.append({"field": field_path(tuple(error.get("loc", ()))), "problem": message.removeprefix("Value error, ")})
        return JSONResponse(status_code=422, content={"detail": detail})  # the input itself is never echoed

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict):
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError):
        # two requests raced to store the same thing (an id, an NHS number): the loser is told, without values
        log.info("integrity conflict on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=409, content={"detail": "this clashes with something stored at the same moment (a duplicate id or NHS number); reload and try again"})

    @app.exception_handler(SolverBusy)
    async def _busy(request: Request, exc: SolverBusy):
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "5"})

    # -- everyone -------------------------------------------------------------------------------
    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        with svc.read() as session:
            version = state.current_version(session)
        return {"status": "ok", "plan_version": version.id if version else None, "today": settings.planning_day().isoformat()}

    @app.get("/me", tags=["service"])
    def me(who: Anyone) -> dict[str, Any]:
        """Who the token belongs to and its role (the pages show each role only its actions)."""
        return {"name": who.name, "role": who.role}

    @app.get("/catalogue", tags=["catalogue"])
    def get_catalogue(who: Anyone) -> dict[str, Any]:
        with svc.read() as session:
            return {
                "pathways": state.catalogue(session, variants=False).model_dump(mode="json"),
                "site": state.site(session).model_dump(mode="json"),
            }

    @app.put("/catalogue/{kind}", tags=["catalogue"])
    def put_catalogue(kind: Annotated[str, Path(pattern="^(pathways|site)$")], body: dict[str, Any], who: Admin) -> dict[str, Any]:
        with svc.write() as session:
            version = services.replace_catalogue(session, kind, body, settings.planning_day(), settings.horizon_days, who)
        return {"kind": kind, "version": version}

    @app.get("/plans", tags=["plans"])
    def list_plans(who: Anyone, limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0):
        with svc.read() as session:
            return views.list_versions(session, limit, offset)

    @app.get("/plans/current", tags=["plans"])
    def current_plan(who: Anyone) -> dict[str, Any]:
        with svc.read() as session:
            version = state.current_version(session)
            if version is None:
                raise NotFound("no plan yet")
            return views.version_view(session, version) | {
                "bookings": [views.booking_view(b) for b in state.current_rows(session)]
            }

    @app.get("/plans/diff", tags=["plans"])
    def plan_diff(
        who: Anyone,
        from_version: Annotated[int, Query(alias="from", ge=1, le=2**31 - 1)],
        to_version: Annotated[int, Query(alias="to", ge=1, le=2**31 - 1)],
    ) -> dict[str, Any]:
        with svc.read() as session:
            return views.diff(session, from_version, to_version)

    @app.get("/plans/{version_id}", tags=["plans"])
    def get_plan(version_id: Annotated[int, Path(ge=1, le=2**31 - 1)], who: Anyone) -> dict[str, Any]:
        with svc.read() as session:
            version = views.get_version(session, version_id)
            return views.version_view(session, version) | {
                "bookings": [views.booking_view(b) for b in views.bookings_at(session, version_id)]
            }

    # -- coordinators ---------------------------------------------------------------------------
    @app.post("/patients", status_code=201, tags=["patients"])
    def register(body: ReferralIn, who: Coordinator) -> dict[str, Any]:
        fields = body.model_dump(mode="json", exclude={"nhs_number"})
        with svc.write() as session:
            row = services.register_referral(session, fields, body.nhs_number, settings, who)
            return views.patient_view(session, row.id)

    @app.get("/patients", tags=["patients"])
    def list_patients(
        who: Anyone,
        status: Annotated[str | None, Query(pattern="^(referred|scheduled|unschedulable|withdrawn)$")] = None,
    ) -> list[dict[str, Any]]:
        with svc.read() as session:
            query = select(PatientRow.id).order_by(PatientRow.id)
            if status:
                query = query.where(PatientRow.status == status)
            return [views.patient_view(session, pid) for pid in session.scalars(query)]

    @app.get("/patients/{patient_id}", tags=["patients"])
    def get_patient(patient_id: PatientId, who: Anyone) -> dict[str, Any]:
        with svc.read() as session:
            return views.patient_view(session, patient_id)

    @app.patch("/patients/{patient_id}", tags=["patients"])
    def edit(patient_id: PatientId, body: ReferralEdit, who: Coordinator) -> dict[str, Any]:
        changes = body.model_dump(mode="json", exclude_unset=True, exclude={"nhs_number"})
        for name in ("centre", "pathway", "approval_date", "urgency"):
            if name in changes and changes[name] is None:
                raise InputError("", name, "cannot be removed (null)")
        for name in ("last_doses", "durations"):
            if name in changes and changes[name] is None:
                changes[name] = {}
        if "blackouts" in changes and changes["blackouts"] is None:
            changes["blackouts"] = []
        nhs = body.nhs_number if "nhs_number" in body.model_fields_set else services.UNCHANGED
        with svc.write() as session:
            _, violations = services.edit_referral(session, patient_id, changes, nhs, settings, who)
        with svc.read() as session:
            return views.patient_view(session, patient_id) | {"violations": violations}

    def _propose(patient_id: str, who: Actor) -> dict[str, Any]:
        with svc.read() as session:
            data = services.propose_input(session, patient_id, settings)
        proposal = svc.solvers.run(services.run_propose, data, patient_id, settings)
        with svc.write() as session:
            row = services.store_proposal(session, patient_id, data, proposal, who)
        return _proposal_view(row, proposal.reason)

    def _proposal_view(row, reason: str = "") -> dict[str, Any]:
        return {
            "id": row.id,
            "patient": row.patient_id,
            "base_version": row.base_version,
            "status": row.status,
            "options": row.options,
            "reason": reason,
        }

    @app.post("/patients/{patient_id}/proposals", status_code=201, tags=["patients"])
    def propose(patient_id: PatientId, who: Coordinator) -> dict[str, Any]:
        """The earliest schedule that moves nobody (option 0, ``kind: fast``) and up to a few
        ranked alternatives that move other patients' bookings (each lists its moves)."""
        return _propose(patient_id, who)

    @app.get("/proposals/{proposal_id}", tags=["patients"])
    def get_proposal(proposal_id: Annotated[str, Path(pattern="^[0-9a-f]{32}$")], who: Anyone) -> dict[str, Any]:
        with svc.read() as session:
            row = session.get(ProposalRow, proposal_id)
            if row is None:
                raise NotFound(f"no proposal {proposal_id!r}")
            return _proposal_view(row)

    @app.post("/proposals/{proposal_id}/confirm", tags=["patients"])
    def confirm(proposal_id: Annotated[str, Path(pattern="^[0-9a-f]{32}$")], body: ConfirmIn, who: Coordinator) -> dict[str, Any]:
        """Commit every booking of the chosen option (and its moves), or none: 409 names the full resource-day."""
        with svc.write() as session:
            version = services.confirm(session, proposal_id, body.option, settings, who)
            patient = session.get(ProposalRow, proposal_id).patient_id
        with svc.read() as session:
            return {"plan_version": version.id, "timeline": views.timeline(session, patient, settings)}

    def _after_release(patient_id: str, version, who: Actor) -> dict[str, Any]:
        out: dict[str, Any] = {"plan_version": version.id if version else None}
        with svc.read() as session:
            status = state.get_patient(session, patient_id).status
        if status != "withdrawn":
            try:
                out["proposal"] = _propose(patient_id, who)
            except SolverBusy as exc:  # the release stands; the coordinator asks for a proposal later
                out["proposal"] = None
                out["proposal_error"] = str(exc)
        with svc.read() as session:
            out["timeline"] = views.timeline(session, patient_id, settings)
        return out

    @app.post("/patients/{patient_id}/defer", tags=["patients"])
    def defer(patient_id: PatientId, body: DeferIn, who: Coordinator) -> dict[str, Any]:
        """Nothing before ``from_date``: bookings not started are released; a new proposal is returned."""
        with svc.write() as session:
            version = services.defer(session, patient_id, body.from_date, body.reason, settings, who)
        return _after_release(patient_id, version, who)

    @app.post("/patients/{patient_id}/out-of-specification", tags=["patients"])
    def out_of_specification(patient_id: PatientId, body: OutOfSpecificationIn, who: Coordinator) -> dict[str, Any]:
        """The product failed: restart at re-apheresis or re-manufacture; a new proposal is returned."""
        with svc.write() as session:
            version = services.out_of_specification(session, patient_id, body.redo, body.reason, settings, who)
        return _after_release(patient_id, version, who)

    @app.post("/patients/{patient_id}/withdraw", tags=["patients"])
    def withdraw(patient_id: PatientId, body: WithdrawIn, who: Coordinator) -> dict[str, Any]:
        with svc.write() as session:
            version = services.withdraw(session, patient_id, body.reason, settings, who)
        return _after_release(patient_id, version, who)

    @app.get("/patients/{patient_id}/timeline", tags=["patients"])
    def timeline(patient_id: PatientId, who: Anyone) -> dict[str, Any]:
        with svc.read() as session:
            return views.timeline(session, patient_id, settings)

    @app.get(
        "/patients/{patient_id}/calendar.ics",
        tags=["patients"],
        response_class=Response,
        responses={200: {"content": {"text/calendar": {}}}},
    )
    def calendar(patient_id: PatientId, who: Anyone) -> Response:
        with svc.read() as session:
            body = views.icalendar(session, patient_id, settings)
        return Response(
            body,
            media_type="text/calendar",
            headers={"Content-Disposition": f'attachment; filename="{patient_id}.ics"'},
        )

    # -- lab managers ---------------------------------------------------------------------------
    def _range(first: date | None, last: date | None) -> tuple[date, date]:
        first = first or settings.planning_day()
        last = last or first + timedelta(days=89)
        if last < first:
            raise InputError("", "to", "is before from")
        if (last - first).days + 1 > views.MAX_RANGE_DAYS:
            raise InputError("", "to", f"a range is at most {views.MAX_RANGE_DAYS} days")
        return first, last

    FromQ = Annotated[ApiDate | None, Query(alias="from", description="first day (default: today)")]
    ToQ = Annotated[ApiDate | None, Query(alias="to", description="last day (default: from + 89 days)")]
    ResourceQ = Annotated[str | None, Query(max_length=128, description="a resource id or kind")]

    @app.get("/capacity", tags=["capacity"])
    def capacity(who: Anyone, first: FromQ = None, last: ToQ = None, resource: ResourceQ = None) -> dict[str, Any]:
        first, last = _range(first, last)
        with svc.read() as session:
            return views.capacity_table(session, first, last, settings, resource)

    @app.get("/capacity.csv", tags=["capacity"], response_class=PlainTextResponse, responses={200: {"content": {"text/csv": {}}}})
    def capacity_csv(who: Anyone, first: FromQ = None, last: ToQ = None, resource: ResourceQ = None) -> Response:
        first, last = _range(first, last)
        with svc.read() as session:
            table = views.capacity_table(session, first, last, settings, resource)
        return Response(
            views.capacity_csv(table),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="capacity-{first}-{last}.csv"'},
        )

    @app.get("/capacity/changes", tags=["capacity"])
    def list_changes(who: Anyone) -> list[dict[str, Any]]:
        with svc.read() as session:
            return [state.change_dict(c) | {"id": c.id, "created_by": c.created_by} for c in state.active_changes(session)]

    @app.post("/capacity/changes", status_code=201, tags=["capacity"])
    def add_change(body: CapacityChangeIn, who: LabManager) -> dict[str, Any]:
        """A closure (capacity 0) or change; the answer lists the patients whose bookings it breaks."""
        with svc.write() as session:
            row = services.add_capacity_change(session, body, settings, who)
            change_id = row.id
        with svc.read() as session:
            row = session.get(CapacityChangeRow, change_id)
            return state.change_dict(row) | {"id": change_id, "broken": services.broken_by(session, row, settings)}

    @app.delete("/capacity/changes/{change_id}", tags=["capacity"])
    def withdraw_change(change_id: Annotated[int, Path(ge=1, le=2**31 - 1)], who: LabManager) -> dict[str, Any]:
        with svc.write() as session:
            row = services.withdraw_capacity_change(session, change_id, who)
            return state.change_dict(row) | {"id": row.id, "withdrawn": True}

    @app.post("/capacity/changes/{change_id}/replan", tags=["capacity"])
    def replan_change(change_id: Annotated[int, Path(ge=1, le=2**31 - 1)], who: Planner) -> dict[str, Any]:
        """Re-plan the patients whose bookings this change breaks (nobody else moves)."""
        with svc.read() as session:
            row = session.get(CapacityChangeRow, change_id)
            if row is None:
                raise NotFound(f"no capacity change {change_id}")
            patients = {b["patient"] for b in services.broken_by(session, row, settings)}
        return _replan(patients, f"capacity change {change_id}", who)

    @app.post("/replan", tags=["capacity"])
    def replan(body: ReplanIn, who: Planner) -> dict[str, Any]:
        """Re-plan these patients' bookings that have not started; everyone else stays where they are."""
        return _replan(set(body.patients), "requested re-plan", who)

    def _replan(patients: set[str], reason: str, who: Actor) -> dict[str, Any]:
        if not patients:
            return {"plan_version": None, "patients": [], "diff": None}
        with svc.read() as session:
            for pid in sorted(patients):
                if state.get_patient(session, pid).status == "withdrawn":
                    raise Conflict(f"patient {pid} is withdrawn")
            data = services.replan_input(session, patients, settings)
        plan = svc.solvers.run(services.run_replan, data, settings)
        with svc.write() as session:
            version = services.publish_plan(
                session, plan, patients, data.base_changes, "replan", reason, "planned", settings, who
            )
            parent = version.parent_id
        with svc.read() as session:
            return {
                "plan_version": version.id,
                "patients": sorted(patients),
                "diff": views.diff(session, parent, version.id) if parent else None,
            }

    # -- the nightly re-solve -------------------------------------------------------------------
    @app.get("/jobs/nightly/report", tags=["nightly"])
    def nightly_report(who: Anyone) -> dict[str, Any]:
        """The last finished nightly run and its report: per patient what moved, from, to and why;
        unschedulable patients first."""
        with svc.read() as session:
            return nightly.latest_report(session)

    @app.get("/jobs/nightly/runs", tags=["nightly"])
    def nightly_runs(
        who: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 30, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
    ) -> dict[str, Any]:
        """Run history (newest first): start, end, status, solver stats, bookings moved; and the next scheduled run."""
        next_run = svc.nightly.next_run()
        with svc.read() as session:
            runs = [nightly.run_view(r) for r in ledger.history(session, nightly.JOB, limit, offset)]
        return {
            "enabled": settings.nightly_enabled,
            "schedule": f"{settings.nightly_at} {settings.nightly_timezone}",
            "next_run": next_run.isoformat() if next_run else None,
            "runs": runs,
        }

    @app.get("/jobs/nightly/runs/{run_id}", tags=["nightly"])
    def nightly_run(run_id: Annotated[int, Path(ge=1, le=2**31 - 1)], who: Admin) -> dict[str, Any]:
        with svc.read() as session:
            run = nightly.get_run(session, run_id)
            return {"run": nightly.run_view(run), "report": run.report}

    @app.post("/jobs/nightly/runs", status_code=202, tags=["nightly"])
    def nightly_run_now(who: Admin) -> dict[str, Any]:
        """Start a run now (in the background); 409 while another run is in progress."""
        return svc.nightly.run_now(who)

    # -- admin ----------------------------------------------------------------------------------
    @app.get("/audit", tags=["audit"])
    def audit(
        who: Admin,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        entity: Annotated[Text | None, Query(max_length=32)] = None,
        entity_id: Annotated[Text | None, Query(max_length=64)] = None,
    ) -> list[dict[str, Any]]:
        with svc.read() as session:
            return views.audit(session, limit, offset, entity, entity_id)

    pages.mount(app)
    return app
