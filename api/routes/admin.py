"""The audit log (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import views
from api.answers import AuditEntryView
from api.deps import Admin, Db
from api.schemas import Text

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=list[AuditEntryView])
def audit(
    who: Admin,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    entity: Annotated[Text | None, Query(max_length=32)] = None,
    entity_id: Annotated[Text | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    with db.read() as work:
        return views.audit(work.session, limit, offset, entity, entity_id)
