"""The one planning cycle: read -> solve -> publish, again while the plan moves underneath.

A whole-site solve takes seconds, so it never runs inside a transaction. A round
reads what it plans from in one short transaction (noting the plan head's change
counter), solves on plain domain objects, then publishes in one planning write
that checks the counter: if anyone wrote the plan meanwhile, publishing raises
``StalePlan``, nothing is stored, and the round reads and solves again, up to
``attempts`` times. A re-plan (``POST /replan``), a cohort import and the
nightly re-solve are rounds of this one cycle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy.orm import Session

from api.audit import Actor
from api.state import Conflict
from api.unit_of_work import Database, UnitOfWork

log = logging.getLogger("vein2vein.replanning")

ATTEMPTS = 3  # read-solve-publish rounds before giving up on a plan that keeps changing

BookingStatus = Literal["planned", "confirmed"]
Input = TypeVar("Input")
Result = TypeVar("Result")
Outcome = TypeVar("Outcome", covariant=True)


class StalePlan(Conflict):
    """The plan changed while the solver ran (its change counter moved on): read and solve again."""


@dataclasses.dataclass(frozen=True)
class Publication:
    """How a solved plan becomes a plan version: what the version says and what its new bookings say."""

    kind: str
    """The version's kind: ``replan``, ``import`` or ``nightly`` (also the solver run's and the audit action's)."""
    reason: str
    """Why the version exists, in words."""
    actor: Actor
    """Who publishes it (named by the version, its bookings and the audit row)."""
    booking_status: BookingStatus = "planned"
    """The status of every new or moved booking (one that does not move keeps its own)."""
    why: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Per patient, why their new or moved bookings are where they are (default: ``reason``)."""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Added to every ``moved`` event the publication makes (e.g. the nightly run's id)."""

    def cause(self, patient: str) -> str:
        """Why the patient's bookings move or appear, in words: their own reason, else the version's."""
        return self.why.get(patient) or self.reason


class PlanningRound(Protocol, Generic[Input, Result, Outcome]):
    name: str
    """Names the round in the log (no patient data)."""

    def read(self, session: Session, attempt: int) -> Input:
        """What the solve needs, read in one transaction (the change counter first)."""

    def solve(self, data: Input) -> Result:
        """The solve (no database)."""

    def publish(self, work: UnitOfWork, data: Input, result: Result) -> Outcome:
        """Store the result in a planning write; StalePlan if the plan moved since ``read``."""

    # Optional: ``keeps(data, result) -> bool``, True when the result changes no booking. Its
    # ``publish`` then runs in a plain write: recording that the plan stays takes no plan lock
    # and does not move the change counter (a re-plan solving meanwhile need not start again).


def solve_and_publish(
    database: Database, round_: PlanningRound[Input, Result, Outcome], attempts: int = ATTEMPTS
) -> Outcome:
    """Read, solve and publish until a publish finds the plan as it was read; StalePlan after ``attempts`` tries."""
    for attempt in range(1, attempts + 1):
        with database.read() as work:
            data = round_.read(work.session, attempt)
        result = round_.solve(data)
        keeps = getattr(round_, "keeps", None)
        unit = database.write if keeps is not None and keeps(data, result) else database.plan_write
        try:
            with unit() as work:
                return round_.publish(work, data, result)
        except StalePlan:
            log.info(
                "%s: the plan changed during the solve (attempt %d of %d); reading it again",
                round_.name,
                attempt,
                attempts,
            )
    raise StalePlan(f"the plan changed during each of {attempts} solves; nothing was published: run it again")
