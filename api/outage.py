"""Losing the database: clean 503s while it is gone, one log line per outage, recovery on its own.

What counts as *unreachable* is what SQLAlchemy calls a disconnect
(``DBAPIError.connection_invalidated``): a connection that broke in use (the
server went away, the database was dropped under it), and, marked here, a
failure to connect at all (connection refused, no such database, a SQLite file
that cannot be opened). Any other database error (a constraint, a lock timeout,
a missing table) is not an outage and is not answered as one.

``Outages`` watches one engine (``handle_error`` and the pool's ``connect``
events), so the API and the nightly job share it:

- the first failure of an outage logs one warning line (what failed, never a
  traceback, never a statement or a stored value);
- further failures are counted silently;
- the first connection that succeeds afterwards logs one line with how long the
  outage lasted and how many database calls failed meanwhile.

Recovery needs no restart: a broken connection is dropped from the pool
(PostgreSQL's engine also pings each connection before handing it out,
``pool_pre_ping``), so the next request opens a fresh one, which succeeds once
the database is back.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger("vein2vein.database")

RETRY_AFTER_S = 10  # what a 503 tells a client to wait before asking again
UNAVAILABLE = "the database is unavailable; try again after Retry-After seconds"


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached (as opposed to refusing a statement)."""
    return isinstance(error, DBAPIError) and error.connection_invalidated


class Outages:
    """One engine's outages: a warning when one starts, a count while it lasts, a line when it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic time of the outage's first failure
        self.failures = 0  # failed database calls in the current outage

    @classmethod
    def watching(cls, engine: Engine) -> Outages:
        outages = cls()
        event.listen(engine, "handle_error", outages._on_error)
        event.listen(engine, "connect", outages._on_connect)
        return outages

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def _on_error(self, context: ExceptionContext) -> None:
        failed_to_connect = context.connection is None and isinstance(
            context.sqlalchemy_exception, (OperationalError, InterfaceError)
        )
        if failed_to_connect:
            context.is_disconnect = True  # the error then says connection_invalidated (``unreachable``)
        if not context.is_disconnect or context.is_pre_ping:
            return  # a stale pooled connection found by the ping is replaced: only a failed reconnect counts
        with self._lock:
            self.failures += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        # the driver's own words (e.g. "connection refused", "database ... does not exist"): no rows in them
        words = str(context.original_exception).strip().splitlines()
        log.warning(
            "the database is unreachable (%s: %s); answering 503 until it is back",
            type(context.original_exception).__name__,
            words[0] if words else "no message",
        )

    def _on_connect(self, dbapi_connection, record) -> None:
        with self._lock:
            if self._since is None:
                return
            lasted, failures = time.monotonic() - self._since, self.failures
            self._since, self.failures = None, 0
        log.info("the database is back after %.0f s; %d database calls failed meanwhile", lasted, failures)
