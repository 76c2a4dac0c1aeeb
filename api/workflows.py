"""What a route asks for when it takes more than one transaction, or a solve.

Each workflow opens its own units of work (``api.unit_of_work``), so every commit
happens here, before the answer is sent. Solves run on the runtime's solver pool,
never inside a transaction. Answers are the read side's documents
(``api.views``), shaped as the route's response schema (``api.answers``).
"""

from __future__ import annotations

from typing import Any

from api import records, replanning, services, state, views
from api.audit import Actor
from api.db import CapacityChangeRow, PlanVersion
from api.replanning import Publication
from api.runtime import Runtime
from api.schemas import CapacityChangeIn, CustodyIn, ProductIn, ReferralEdit, ReferralIn, StepRecordIn
from api.solving import SolverBusy
from api.state import Conflict, NotFound
from pathway.custody import CustodyKind


# -- patients -----------------------------------------------------------------------------------
def register(runtime: Runtime, referral: ReferralIn, who: Actor) -> dict[str, Any]:
    fields = referral.model_dump(mode="json", exclude={"nhs_number"})
    with runtime.database.plan_write() as work:
        row = services.register_referral(work, fields, referral.nhs_number, runtime.settings, who)
        return views.patient_view(work.session, row.id)


def edit(runtime: Runtime, patient_id: str, referral_edit: ReferralEdit, who: Actor) -> dict[str, Any]:
    """Apply the edit; the answer lists the rules the patient's current bookings now break."""
    changes = referral_edit.changes()
    nhs = referral_edit.nhs_number if "nhs_number" in referral_edit.model_fields_set else services.UNCHANGED
    with runtime.database.plan_write() as work:
        violations = services.edit_referral(work, patient_id, changes, nhs, runtime.settings, who)
    with runtime.database.read() as work:
        return views.patient_view(work.session, patient_id) | {"violations": violations}


def propose(runtime: Runtime, patient_id: str, who: Actor) -> dict[str, Any]:
    """Read the plan, solve the proposal on the solver pool, store it (open)."""
    with runtime.database.read() as work:
        data = services.propose_input(work.session, patient_id, runtime.settings)
    proposal = runtime.solvers.run(services.run_propose, data, patient_id, runtime.settings)
    with runtime.database.write() as work:
        row = services.store_proposal(work, patient_id, data, proposal, who)
        return views.proposal_view(row, proposal.reason)


def confirm(runtime: Runtime, proposal_id: str, option: int, who: Actor) -> dict[str, Any]:
    with runtime.database.plan_write() as work:
        version = services.confirm(work, proposal_id, option, runtime.settings, who)
        patient_id = views.proposal(work.session, proposal_id)["patient"]
    with runtime.database.read() as work:
        return {"plan_version": version.id, "timeline": views.timeline(work.session, patient_id, runtime.settings)}


def defer(runtime: Runtime, patient_id: str, from_date, reason: str, who: Actor) -> dict[str, Any]:
    with runtime.database.plan_write() as work:
        version = services.defer(work, patient_id, from_date, reason, runtime.settings, who)
    return _after_release(runtime, patient_id, version, who)


def out_of_specification(runtime: Runtime, patient_id: str, redo: str, reason: str, who: Actor) -> dict[str, Any]:
    with runtime.database.plan_write() as work:
        version = services.out_of_specification(work, patient_id, redo, reason, runtime.settings, who)
    return _after_release(runtime, patient_id, version, who)


def withdraw(runtime: Runtime, patient_id: str, reason: str, cause: str, who: Actor) -> dict[str, Any]:
    with runtime.database.plan_write() as work:
        version = services.withdraw(work, patient_id, reason, runtime.settings, who, cause)
    return _after_release(runtime, patient_id, version, who)


def reinstate(runtime: Runtime, patient_id: str, reason: str, who: Actor) -> dict[str, Any]:
    """Referred again; answered like a release, with a new proposal."""
    with runtime.database.plan_write() as work:
        version = services.reinstate(work, patient_id, reason, runtime.settings, who)
    return _after_release(runtime, patient_id, version, who)


def record_confirmation(runtime: Runtime, patient_id: str, note: str | None, who: Actor) -> dict[str, Any]:
    """The current dates were confirmed with the patient (a plain write: the plan does not change)."""
    with runtime.database.write() as work:
        return services.record_confirmation(work, patient_id, note, runtime.settings, who)


def _after_release(runtime: Runtime, patient_id: str, version: PlanVersion | None, who: Actor) -> dict[str, Any]:
    """The answer to a release: its plan version, a new proposal (not for a withdrawn patient), the timeline."""
    out: dict[str, Any] = {"plan_version": version.id if version else None}
    with runtime.database.read() as work:
        status = state.get_patient(work.session, patient_id).status
    if status != "withdrawn":
        try:
            out["proposal"] = propose(runtime, patient_id, who)
        except SolverBusy as exc:  # the release stands; the coordinator asks for a proposal later
            out["proposal"] = None
            out["proposal_error"] = str(exc)
    with runtime.database.read() as work:
        out["timeline"] = views.timeline(work.session, patient_id, runtime.settings)
    return out


# -- capacity -----------------------------------------------------------------------------------
def add_capacity_change(runtime: Runtime, change: CapacityChangeIn, who: Actor) -> dict[str, Any]:
    """A closure or change, answered with the patients whose current bookings it breaks."""
    with runtime.database.plan_write() as work:
        change_id = services.add_capacity_change(work, change, runtime.settings, who).id
    with runtime.database.read() as work:
        row = work.session.get(CapacityChangeRow, change_id)
        return views.change_view(row) | {"broken": services.broken_by(work.session, row, runtime.settings)}


def withdraw_capacity_change(runtime: Runtime, change_id: int, who: Actor) -> dict[str, Any]:
    with runtime.database.plan_write() as work:
        row = services.withdraw_capacity_change(work, change_id, runtime.settings, who)
        return views.change_view(row) | {"withdrawn": True}


def replan_capacity_change(runtime: Runtime, change_id: int, who: Actor) -> dict[str, Any]:
    """Re-plan the patients whose bookings the change breaks (nobody else moves)."""
    with runtime.database.read() as work:
        row = work.session.get(CapacityChangeRow, change_id)
        if row is None:
            raise NotFound(f"no capacity change {change_id}")
        patients = {b["patient"] for b in services.broken_by(work.session, row, runtime.settings)}
        cause = f"re-planned after {state.change_words(views.change_view(row))}"
    return replan(runtime, patients, cause, who)


def replan_asked(runtime: Runtime, patients: set[str], reason: str | None, who: Actor) -> dict[str, Any]:
    """A re-plan a coordinator or lab manager asked for, with their reason as the cause of every move."""
    cause = f"re-plan asked for by {who.name}" + (f": {reason}" if reason else "")
    return replan(runtime, patients, cause, who)


def replan(runtime: Runtime, patients: set[str], reason: str, who: Actor) -> dict[str, Any]:
    """Re-plan these patients' bookings that have not started (read, solve, publish; again if the
    plan moved meanwhile); answers with the plan diff. ``reason``, the cause in words, is the new
    version's reason, each new booking's ``fixed_by`` and each moved patient's event's cause."""
    if not patients:
        return {"plan_version": None, "patients": [], "diff": None}
    publication = Publication(kind="replan", reason=reason, actor=who)
    round_ = services.Replan(patients, publication, runtime.settings, solve_on=runtime.solvers.run)
    version = replanning.solve_and_publish(runtime.database, round_).version
    with runtime.database.read() as work:
        return {
            "plan_version": version.id,
            "patients": sorted(patients),
            "diff": views.diff(work.session, version.parent_id, version.id) if version.parent_id else None,
        }


# -- what happened ------------------------------------------------------------------------------
def record_step(runtime: Runtime, patient_id: str, step: str, body: StepRecordIn, who: Actor) -> dict[str, Any]:
    """Record a booked step; a refused identity check is audited in a transaction of its own."""
    entry = records.StepEntry(
        outcome=body.outcome,
        first_day=body.first_day,
        last_day=body.last_day,
        reason=body.reason,
        note=body.note,
        scanned_din=body.scanned.din if body.scanned else None,
        scanned_chain_of_identity=body.scanned.chain_of_identity if body.scanned else None,
    )
    try:
        with runtime.database.plan_write() as work:
            recorded = records.record_step(work, patient_id, step, entry, runtime.settings, who)
    except records.IdentityMismatch as exc:
        with runtime.database.write() as work:
            records.record_mismatch(work.session, exc, who)
        raise
    return _after_record(runtime, patient_id, recorded, who)


def register_product(runtime: Runtime, patient_id: str, body: ProductIn, who: Actor) -> dict[str, Any]:
    entry = records.ProductEntry(**body.model_dump())
    with runtime.database.plan_write() as work:  # queued: two labs never both claim a donation number
        product_id = records.register_product(work, patient_id, entry, runtime.settings, who).id
    with runtime.database.read() as work:
        return views.product(work.session, product_id)


def record_custody(runtime: Runtime, product_id: int, body: CustodyIn, who: Actor) -> dict[str, Any]:
    kind = CustodyKind(body.kind)
    with runtime.database.plan_write() as work:
        recorded = records.record_custody(work, product_id, kind, body.day, body.details(), runtime.settings, who)
        patient_id = views.product(work.session, product_id)["patient"]
    out = _after_record(runtime, patient_id, recorded, who)
    with runtime.database.read() as work:
        return out | {"product": views.product(work.session, product_id)}


def poor_mobilisation(runtime: Runtime, patient_id: str, reason: str, who: Actor) -> dict[str, Any]:
    with runtime.database.plan_write() as work:
        recorded = records.poor_mobilisation(work, patient_id, reason, runtime.settings, who)
    return _after_record(runtime, patient_id, recorded, who)


def _after_record(runtime: Runtime, patient_id: str, recorded: records.Recorded, who: Actor) -> dict[str, Any]:
    """The answer to a record: its id, the re-plan of the patient it caused (if any), the timeline."""
    out: dict[str, Any] = {"record": recorded.id, "replan": None}
    if recorded.replan:
        try:
            out["replan"] = replan(runtime, {patient_id}, recorded.replan, who)
        except (SolverBusy, Conflict) as exc:  # the record stands; what it makes wrong leaves the plan
            with runtime.database.plan_write() as work:
                steps = records.unplan_broken(work, patient_id, recorded.replan, runtime.settings, who)
            out["replan_error"] = f"{exc}" + (f"; to be planned again: {', '.join(steps)}" if steps else "")
    with runtime.database.read() as work:
        out["timeline"] = views.timeline(work.session, patient_id, runtime.settings)
    return out
