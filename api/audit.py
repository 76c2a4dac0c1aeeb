"""The append-only audit log: who, when, what, before and after.

NHS numbers never reach it (nor any log): ``scrub`` drops them from every
snapshot before it is written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.db import AuditEntry

SENSITIVE = frozenset({"nhs_number"})


def scrub(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {k: ("<set>" if v else None) if k in SENSITIVE else v for k, v in snapshot.items()}


def record(
    session: Session,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor=actor.name,
            role=actor.role,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            before=scrub(before),
            after=scrub(after),
        )
    )


class Actor:
    """Who is acting: a token's name and role, or the system (demo loader, nightly job)."""

    def __init__(self, name: str, role: str):
        self.name = name
        self.role = role

    def __repr__(self) -> str:
        return f"Actor({self.name!r}, {self.role!r})"


SYSTEM = Actor("system", "admin")
