"""What the routes share while the service runs: settings, the database, the solver pool and
the nightly job. One per app (``app.state.runtime``); ``api.deps`` hands it to the routes."""

from __future__ import annotations

from api import nightly, services
from api.db import make_engine
from api.outage import Outages
from api.settings import Settings
from api.solving import SolverPool
from api.unit_of_work import Database


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.outages = Outages.watching(self.engine)  # a lost database: 503s and one log line (api.outage)
        self.database = Database.on(self.engine)
        self.solvers = SolverPool(settings.solver_threads)
        self.nightly = nightly.NightlyScheduler(self.database.sessions, settings)

    def start(self) -> None:
        """At every lifespan start (an app may be started again after a shutdown, e.g. in tests)."""
        if self.solvers.closed:
            self.solvers = SolverPool(self.settings.solver_threads)
        self.solvers.run(services.warm_up)  # CP-SAT's import, once, before the first proposal
        self.nightly.start()

    def stop(self) -> None:
        self.nightly.stop()
        self.solvers.shutdown()
        self.engine.dispose()
