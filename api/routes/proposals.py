"""Stored proposals, and confirming one of their options."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import views, workflows
from api.answers import Confirmed, ProposalView
from api.deps import Anyone, Coordinator, Db, ProposalId, Running
from api.schemas import ConfirmIn

router = APIRouter(prefix="/proposals", tags=["patients"])


@router.get("/{proposal_id}", response_model=ProposalView)
def get_proposal(proposal_id: ProposalId, who: Anyone, db: Db) -> dict[str, Any]:
    with db.read() as work:
        return views.proposal(work.session, proposal_id)


@router.post("/{proposal_id}/confirm", response_model=Confirmed)
def confirm(proposal_id: ProposalId, body: ConfirmIn, who: Coordinator, running: Running) -> dict[str, Any]:
    """Commit every booking of the chosen option (and its moves), or none: 409 names the full resource-day."""
    return workflows.confirm(running, proposal_id, body.option, who)
