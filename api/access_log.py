"""The access log: one line per request naming the route template, never the path.

A path carries identifiers (``/patients/R-0096``), and a client may put an NHS
number in one; the template (``/patients/{patient_id}``) says what was asked for
without saying about whom. Uvicorn's own access log, which prints paths, is off
(``v2v serve``).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("vein2vein.access")

NO_ROUTE = "<no route>"  # a path that matched nothing (a 404): what was typed is not logged


class AccessLog:
    """ASGI middleware: ``GET /patients/{patient_id}/timeline 200 12.3 ms`` once each request ends."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the answer started is answered 500 by the server

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or NO_ROUTE
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1f ms", scope["method"], route, status, elapsed)
