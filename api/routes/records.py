"""What actually happened: a booked step's record, a product and its chain of custody, poor
mobilisation; and the worklist of what is due."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from api import views, workflows
from api.answers import CustodyRecorded, ProductView, Recorded, Worklist
from api.deps import Anyone, Configured, Coordinator, Db, PatientId, Planner, RowId, Running
from api.schemas import MAX_CODE, CustodyIn, PoorMobilisationIn, ProductIn, StepRecordIn

router = APIRouter(tags=["what happened"])
StepName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]*$", max_length=MAX_CODE, description="a step of the pathway")]


@router.post(
    "/patients/{patient_id}/steps/{step}/records",
    status_code=201,
    response_model=Recorded,
    response_model_exclude_unset=True,
)
def record_step(
    patient_id: PatientId, step: StepName, body: StepRecordIn, who: Planner, running: Running
) -> dict[str, Any]:
    """Record a booked step as started, done (on other days if it took them), missed or cancelled.
    Conditioning needs the product released at the centre; an infusion the bag's scanned identifiers."""
    return workflows.record_step(running, patient_id, step, body, who)


@router.post("/patients/{patient_id}/poor-mobilisation", response_model=Recorded, response_model_exclude_unset=True)
def poor_mobilisation(
    patient_id: PatientId, body: PoorMobilisationIn, who: Coordinator, running: Running
) -> dict[str, Any]:
    """Too few cells: a second harvest day if the pathway and the collection's capacity allow, else remobilisation."""
    return workflows.poor_mobilisation(running, patient_id, body.reason, who)


@router.post("/patients/{patient_id}/products", status_code=201, response_model=ProductView)
def register_product(patient_id: PatientId, body: ProductIn, who: Planner, running: Running) -> dict[str, Any]:
    return workflows.register_product(running, patient_id, body, who)


@router.get("/patients/{patient_id}/products", response_model=list[ProductView])
def list_products(patient_id: PatientId, who: Anyone, db: Db) -> list[dict[str, Any]]:
    with db.read() as work:
        views.patient_view(work.session, patient_id)  # 404 for an unknown patient
        return views.product_views(work.session, patient_id)


@router.get("/products/{product_id}", response_model=ProductView)
def get_product(product_id: RowId, who: Anyone, db: Db) -> dict[str, Any]:
    with db.read() as work:
        return views.product(work.session, product_id)


@router.post(
    "/products/{product_id}/custody", status_code=201, response_model=CustodyRecorded, response_model_exclude_unset=True
)
def record_custody(product_id: RowId, body: CustodyIn, who: Planner, running: Running) -> dict[str, Any]:
    """The next link of the product's chain of custody, in order; expected back re-plans the patient."""
    return workflows.record_custody(running, product_id, body, who)


@router.get("/worklist", response_model=Worklist)
def worklist(
    who: Anyone,
    db: Db,
    settings: Configured,
    role: Annotated[Literal["coordinator", "lab_manager"] | None, Query(description="default: your own role")] = None,
) -> dict[str, Any]:
    """What is due today and in the next working days, what is overdue to record, products awaited,
    conditioning at risk and patients moved since their dates were confirmed."""
    with db.read() as work:
        return views.worklist(
            work.session, settings, role or ("lab_manager" if who.role == "lab_manager" else "coordinator")
        )
