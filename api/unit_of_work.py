"""Units of work: every transaction in api/ is one ``with`` block over a ``UnitOfWork``.

A unit of work owns its session and its transaction: committed when the block
ends, rolled back (nothing stored) on any error, the session closed either way.
A *planning write* also takes the plan lock first (``state.lock_plan``: the
single ``plan_head`` row is bumped), so every writer that changes the plan, or
what the plan is planned against, queues behind the one before it, and the
use cases inside never take the lock themselves.

``Database`` hands them out::

    with database.read() as work:        # a view (on SQLite it does not queue behind writers)
    with database.write() as work:       # a write that leaves the plan alone (ledger, tokens)
    with database.plan_write() as work:  # a write that changes the plan: work.head is locked

The commit happens when the block ends, inside the use case: never in a FastAPI
dependency's cleanup (since FastAPI 0.118 that runs after the answer is sent).
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from api import state
from api.db import PlanHead, make_sessionmaker


class UnitOfWork:
    """One transaction; with ``plan_write``, one that holds the plan lock from its start."""

    def __init__(self, sessions: sessionmaker, *, plan_write: bool = False) -> None:
        self._sessions = sessions
        self.plan_write = plan_write
        self._session: Session | None = None
        self._head: PlanHead | None = None

    def __enter__(self) -> UnitOfWork:
        session = self._sessions()
        try:
            session.begin()
            if self.plan_write:
                self._head = state.lock_plan(session)
        except BaseException:
            session.close()
            raise
        self._session = session
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        session, self._session, self._head = self._session, None, None
        try:
            if kind is None:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("a unit of work's session exists only inside its `with` block")
        return self._session

    @property
    def head(self) -> PlanHead:
        """The plan head this planning write locked (RuntimeError in any other unit of work)."""
        if self._head is None:
            raise RuntimeError("this use case writes the plan: run it in database.plan_write()")
        return self._head

    def planning(self) -> Session:
        """The session of a planning write (RuntimeError in any other unit of work)."""
        self.head  # noqa: B018 - the check that the plan lock is held
        return self.session


class Database:
    """Where units of work come from: the write sessions and, for views, the read-only ones."""

    def __init__(self, sessions: sessionmaker, reads: sessionmaker | None = None) -> None:
        self.sessions = sessions
        self.reads = reads or sessions

    @classmethod
    def on(cls, engine: Engine) -> Database:
        return cls(make_sessionmaker(engine), make_sessionmaker(engine, readonly=True))

    def read(self) -> UnitOfWork:
        return UnitOfWork(self.reads)

    def write(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)

    def plan_write(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, plan_write=True)
