"""Bearer tokens and roles.

A token is 32 random bytes (URL-safe text) shown once when created; the
database keeps only its SHA-256. Roles: coordinator (patients and their
schedules), lab_manager (capacity), admin (everything, audit, catalogue).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit import Actor, record
from api.db import ROLES, ApiToken, utcnow

PREFIX = "v2v_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: str, by: Actor) -> str:
    """Store a new token for ``name`` with ``role``; returns the secret (only this once)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 64:
        raise ValueError("name must be 1 to 64 characters")
    if session.scalars(select(ApiToken).where(ApiToken.name == name)).first() is not None:
        raise ValueError(f"a token named {name!r} exists already")
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role, token_hash=hash_token(secret)))
    record(session, by, "token.create", "token", name, None, {"name": name, "role": role})
    return secret


def revoke(session: Session, name: str, by: Actor) -> None:
    row = session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        raise ValueError(f"no token named {name!r}")
    if row.revoked_at is not None:
        raise ValueError(f"token {name!r} is revoked already")
    row.revoked_at = utcnow()
    record(session, by, "token.revoke", "token", name, {"name": name, "role": row.role}, None)


def actor_for(session: Session, secret: str) -> Actor | None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).first()
    if row is None or row.revoked_at is not None:
        return None
    return Actor(row.name, row.role)
