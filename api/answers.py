"""Response schemas of the HTTP API: what every 2xx answer holds (OpenAPI shows them at /docs).

The read side (``api.views``, ``api.nightly``) builds the answers as JSON documents
(some of them are stored as they are, e.g. a nightly run's report); each route
declares the schema here that its answer must match. Every schema forbids
undeclared fields, so an answer that drifts from its schema fails (a 500 in the
tests) instead of losing a field silently. Days are ISO dates; moments are ISO
8601 strings in UTC as stored.

Fields that only some answers carry (``proposal_error``, a diff change's ``from`` or
``to``) default to absent: the routes answer with ``response_model_exclude_unset``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.db import BOOKING_STATUSES, PATIENT_STATUSES, ROLES, RUN_STATUSES, RUN_TRIGGERS

Role = Literal[ROLES]
PatientStatus = Literal[PATIENT_STATUSES]
BookingStatus = Literal[BOOKING_STATUSES]
RunStatus = Literal[RUN_STATUSES]
RunTrigger = Literal[RUN_TRIGGERS]
Moment = str  # ISO 8601 date and time, UTC


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors (documented for 4xx answers) --------------------------------------------------------
class FieldProblem(Answer):
    field: str = Field(description="the field, e.g. body.approval_date or query.from")
    problem: str


class InputProblems(Answer):
    """422: bad input, each problem naming its field (the input itself is never echoed)."""

    detail: list[FieldProblem]


class ErrorMessage(Answer):
    """400, 401, 403, 404, 409, 503: what is wrong, in words."""

    detail: str
    field: str | None = Field(default=None, description="409 from a rule refusing a record: the field it concerns")


# -- service ------------------------------------------------------------------------------------
class Health(Answer):
    status: Literal["ok"]
    plan_version: int | None = Field(description="the current plan version (none before the first)")
    today: date = Field(description="the planning date")


class HealthDown(Answer):
    """503 from /health: what is down (the database), with ``Retry-After``."""

    status: Literal["unavailable"]
    database: Literal["unreachable"]
    detail: str


class Me(Answer):
    name: str
    role: Role


# -- catalogue ----------------------------------------------------------------------------------
class CatalogueView(Answer):
    pathways: dict[str, Any] = Field(description="the pathway catalogue in force (`v2v schema catalogue`)")
    site: dict[str, Any] = Field(
        description="the site in force, lab managers' capacity changes applied (`v2v schema site`)"
    )


class CatalogueVersionStored(Answer):
    kind: Literal["pathways", "site"]
    version: int


# -- patients -----------------------------------------------------------------------------------
class BlackoutView(Answer):
    first_day: date
    last_day: date
    reason: str = ""


class PatientView(Answer):
    id: str
    centre: str
    pathway: str
    approval_date: date
    earliest_start: date | None
    urgency: str
    target_infusion_date: date | None
    last_doses: dict[str, date]
    blackouts: list[BlackoutView]
    durations: dict[str, int]
    status: PatientStatus
    nhs_number_recorded: bool = Field(description="whether an NHS number is stored (the number itself is never shown)")


class NextStep(Answer):
    step: str
    first_day: date
    last_day: date
    status: BookingStatus


class ListedPatient(PatientView):
    next_step: NextStep | None = Field(description="the first current booking not over by today (none: nothing ahead)")
    infusion: date | None = Field(description="the infusion day booked (a split dose: the first dose's)")


class PatientPage(Answer):
    """One page of ``GET /patients``, by id; ``next_after`` fetches the next one."""

    patients: list[ListedPatient]
    total: int = Field(description="how many patients match the filters (on every page)")
    next_after: str | None = Field(description="pass as ``after`` for the next page; none on the last page")


class EditedPatient(PatientView):
    violations: list[str] = Field(description="the rules the patient's current bookings break after the edit")


class Unschedulable(Answer):
    patient: str
    rule: str = Field(description="rule or resource code that blocks the patient")
    reason: str
    earliest_infusion: date | None


StepStatus = Literal[
    "planned", "confirmed", "due", "overdue", "in progress", "done", "missed", "cancelled", "ended", "not booked"
]


class StepRecordView(Answer):
    outcome: Literal["started", "done", "missed", "cancelled"]
    first_day: date | None
    last_day: date | None
    reason: str
    note: str
    recorded_on: date = Field(description="the planning day it was recorded on")
    by: str


class StepHistory(StepRecordView):
    step: str


class TimelineStep(Answer):
    step: str
    kind: str
    first_day: date | None
    last_day: date | None
    status: StepStatus = Field(
        description="from the records: done, in progress, missed, cancelled; with none, due (starts today), "
        "overdue (its first day has passed: never assumed done), else the booking's planned or confirmed; "
        "ended: kept as history, cut short by a withdrawal or a restart"
    )
    fixed_by: str
    why: list[str] = Field(description="why the step is not earlier")
    recorded: StepRecordView | None = Field(description="the latest record of the step")


class CustodyEventView(Answer):
    kind: str
    day: date = Field(description="when it happened (expected_back: the day expected back)")
    details: dict[str, str]
    recorded_on: date
    by: str


class ProductStateView(Answer):
    last: str | None = Field(description="the latest custody event")
    awaited: bool = Field(description="collected, not yet released, out of specification, lost or infused")
    released_on: date | None
    expected_on: date | None = Field(description="when the product is expected back at the centre")
    out_of_specification: bool
    exceptional: bool = Field(description="released by exception, out of specification")
    lost: bool
    infused: bool
    summary: str


class ProductView(Answer):
    id: int
    patient: str
    collection_step: str
    din: str | None = Field(description="ISBT 128 donation identification number and check character")
    product_code: str | None
    chain_of_identity: str | None
    order_reference: str | None
    bags: int | None
    state: ProductStateView
    custody: list[CustodyEventView]


class PatientEvent(Answer):
    at: Moment
    kind: str
    details: dict[str, Any]
    by: str


class Timeline(Answer):
    patient: str
    pathway: str
    status: PatientStatus
    unschedulable: Unschedulable | None
    steps: list[TimelineStep]
    records: list[StepHistory] = Field(
        description="every record of the patient's steps, oldest first: what was given stays here whatever happens next"
    )
    products: list[ProductView]
    events: list[PatientEvent]


# -- proposals ----------------------------------------------------------------------------------
class ProposedBooking(Answer):
    patient: str
    step: str
    first_day: date
    last_day: date


class ProposedMove(Answer):
    patient: str
    step: str
    from_first_day: date
    from_last_day: date
    to_first_day: date
    to_last_day: date


class ProposalOption(Answer):
    rank: int
    kind: Literal["fast", "alternative"]
    infusion: date
    bookings: list[ProposedBooking]
    moves: list[ProposedMove] = Field(description="other patients' bookings this option moves")
    cost: int = Field(description="the patient's own cost in the plan's objective")
    disruption_days: int = Field(description="total days other patients' bookings move")


class ProposalView(Answer):
    id: str
    patient: str
    base_version: int
    status: Literal["open", "confirmed", "superseded"]
    options: list[ProposalOption]
    reason: str = Field(description="why there is no option, or why the options are late")


class Confirmed(Answer):
    plan_version: int
    timeline: Timeline


class Released(Answer):
    """A deferral, an out-of-specification restart, a withdrawal or a reinstatement: the version that
    released (or kept as history) the bookings, a new proposal (none for a withdrawal) and the timeline."""

    plan_version: int | None = Field(description="the version that released the bookings (none if nothing was booked)")
    proposal: ProposalView | None = Field(
        default=None, description="absent after a withdrawal; null when the solver was busy"
    )
    proposal_error: str | None = Field(
        default=None, description="present when the solver was busy: ask for a proposal later"
    )
    timeline: Timeline


class ConfirmedDates(Answer):
    step: str
    first_day: date
    last_day: date


class ConfirmationView(Answer):
    """The dates confirmed with the patient, as the ``confirmation`` event records them."""

    plan_version: int = Field(description="the plan version whose dates were confirmed")
    bookings: list[ConfirmedDates] = Field(description="the patient's bookings not over by today")
    note: str | None = Field(default=None, description="absent when none was given")


# -- plans --------------------------------------------------------------------------------------
class SolverOutcome(Answer):
    status: str
    stats: dict[str, Any]


class PlanVersionView(Answer):
    id: int
    parent: int | None
    kind: str
    reason: str
    created_at: Moment
    created_by: str
    planning_day: date | None = Field(description="the planning day it was made on (none: made before they were kept)")
    current: bool
    unschedulable: list[Unschedulable]
    solver: SolverOutcome | None


class BookingView(Answer):
    patient: str
    step: str
    first_day: date
    last_day: date
    status: BookingStatus
    fixed_by: str


class PlanView(PlanVersionView):
    bookings: list[BookingView]


class Span(Answer):
    first_day: date
    last_day: date


class StepChange(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    step: str
    change: Literal["added", "removed", "moved"]
    from_: Span | None = Field(default=None, alias="from", description="absent for an added step")
    to: Span | None = Field(default=None, description="absent for a removed step")
    why: str | None = Field(default=None, description="why the step is where it is now (absent for a removed step)")


class PatientChanges(Answer):
    patient: str
    changes: list[StepChange]


class PlanDiff(Answer):
    from_version: int
    to_version: int
    unschedulable: list[Unschedulable] = Field(description="patients the newer version could not place")
    patients: list[PatientChanges] = Field(description="unschedulable patients first")
    bookings_moved: int


class Replanned(Answer):
    plan_version: int | None
    patients: list[str]
    diff: PlanDiff | None


# -- capacity -----------------------------------------------------------------------------------
class CellUse(Answer):
    patient: str
    step: str
    amount: int


class CapacityCell(Answer):
    resource: str
    period: Literal["day", "week"]
    day: date = Field(description="the day (weekly resources: the Monday)")
    capacity: int
    booked: int
    free: int
    utilisation: float | None = Field(description="booked / capacity (none on a closed day)")
    note: str = Field(description="why the capacity differs from the standing one, if it does")
    patients: list[CellUse]


class ResourceDay(Answer):
    resource: str
    day: date
    booked: int
    capacity: int


class Bottleneck(Answer):
    resource: str
    mean_utilisation: float


class CapacitySummary(Answer):
    busiest: list[ResourceDay]
    bottleneck: Bottleneck | None
    mean_utilisation: dict[str, float]
    overbooked: list[ResourceDay]


class CapacityTable(Answer):
    first_day: date
    last_day: date
    cells: list[CapacityCell]
    summary: CapacitySummary


class CapacityChangeView(Answer):
    id: int
    resource: str
    centre: str | None
    first_day: date
    last_day: date
    capacity: int
    reason: str


class ActiveCapacityChange(CapacityChangeView):
    created_by: str


class BrokenBookings(Answer):
    patient: str
    steps: list[str]
    days: list[date]


class CapacityChangeAdded(CapacityChangeView):
    broken: list[BrokenBookings] = Field(description="patients whose current bookings the change breaks")


class CapacityChangeWithdrawn(CapacityChangeView):
    withdrawn: Literal[True]


# -- calendar links -----------------------------------------------------------------------------
class CalendarLinkView(Answer):
    """A secret link to a patient's calendar feed (the secret itself is shown only when it is made)."""

    id: int
    patient: str
    created_at: Moment
    created_by: str
    revoked_at: Moment | None = Field(description="when it was revoked (none: the feed answers)")


class CalendarLinkCreated(CalendarLinkView):
    feed: str = Field(
        description="the feed's path, with the secret: shown this once (only its SHA-256 is stored); "
        "a calendar client subscribes to the server's address followed by it"
    )


# -- the nightly re-solve -----------------------------------------------------------------------
class NightlyRunView(Answer):
    id: int
    job: str
    run_date: date = Field(description="the planning day the run planned from")
    night: date | None = Field(description="the scheduled night it stands for (none for an admin's run)")
    trigger: RunTrigger
    status: RunStatus
    started_at: Moment
    finished_at: Moment | None
    claimed_by: str
    plan_version: int | None
    retry_of: int | None = Field(
        description="the interrupted run of the same night this run repeats (that run stays in the history, failed)"
    )
    bookings_moved: int
    summary: str
    stats: dict[str, Any]


class NightlyReport(Answer):
    """A finished run's report: the plan diff it published (or an empty one when it kept the plan)
    and a summary; a failed run's has the summary only."""

    summary: str | None = None
    interrupted: bool | None = None
    from_version: int | None = None
    to_version: int | None = None
    unschedulable: list[Unschedulable] | None = None
    patients: list[PatientChanges] | None = None
    bookings_moved: int | None = None


class NightlyRunReport(Answer):
    run: NightlyRunView
    report: NightlyReport


class NightlyRuns(Answer):
    enabled: bool
    schedule: str = Field(description="local time and time zone of the nightly run")
    next_run: Moment | None
    runs: list[NightlyRunView]


# -- admin --------------------------------------------------------------------------------------
class AuditEntryView(Answer):
    id: int
    at: Moment
    actor: str
    role: Role
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# -- what happened ------------------------------------------------------------------------------
class Recorded(Answer):
    """A record, the re-plan of the patient it caused (its days changed, a step was missed, a product
    is late), and the timeline."""

    record: int
    replan: Replanned | None = Field(description="the patient's re-plan, when the record changed their plan")
    replan_error: str | None = Field(default=None, description="present when the solver was busy: re-plan later")
    timeline: Timeline


class CustodyRecorded(Recorded):
    product: ProductView


class WorkItem(Answer):
    patient: str
    step: str
    kind: str
    first_day: date
    last_day: date
    booking_status: BookingStatus


class AtRisk(Answer):
    patient: str
    step: str
    first_day: date
    why: str = Field(description="why the release gate would refuse the conditioning today")
    expected_on: date | None


class BookedStep(Answer):
    step: str
    first_day: date


class AwaitedProduct(ProductView):
    next_step: BookedStep | None = Field(description="the release booking the product is planned to meet")


class Moved(Answer):
    patient: str
    moves: list[dict[str, Any]] = Field(description="the moved events since the dates were last confirmed")


class Worklist(Answer):
    role: Role
    today: date
    until: date = Field(description="the last day looked at")
    due: list[WorkItem] = Field(description="steps starting from today to `until`, not yet recorded")
    overdue: list[WorkItem] = Field(description="steps whose first day has passed with no record")
    products_awaited: list[AwaitedProduct]
    at_risk: list[AtRisk] = Field(description="conditionings booked soon whose product is not released")
    moved: list[Moved] = Field(description="patients moved since their dates were last confirmed")
