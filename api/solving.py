"""Solves run here: a small, bounded thread pool of their own, never the event loop or the
web server's shared pool. More requests than ``threads`` wait their turn; past ``queue``
waiting ones the caller gets SolverBusy (HTTP 503) instead of an unbounded wait.

CP-SAT solvers created in these threads do not catch SIGINT (solver.params.new_solver
sets ``catch_sigint_signal`` off outside the main thread), so Ctrl-C stops the server.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


class SolverBusy(Exception):
    """Too many solves are waiting (HTTP 503)."""


class SolverPool:
    def __init__(self, threads: int, queue: int | None = None):
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="v2v-solver")
        self.slots = threading.BoundedSemaphore(threads + (queue if queue is not None else 8 * threads))
        self.closed = False

    def run(self, fn, *args):
        """Run ``fn(*args)`` on a solver thread and wait for its result (exceptions propagate)."""
        if not self.slots.acquire(blocking=False):
            raise SolverBusy("the solver is busy with other requests; try again in a few seconds")
        try:
            return self.executor.submit(fn, *args).result()
        finally:
            self.slots.release()

    def shutdown(self) -> None:
        self.closed = True
        self.executor.shutdown(wait=False, cancel_futures=True)
