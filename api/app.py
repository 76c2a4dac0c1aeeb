"""The HTTP API (FastAPI; OpenAPI at /docs, served with no internet: the Swagger UI and ReDoc
assets come from the app itself). ``create_app`` only assembles: the runtime and its lifespan,
the error handlers, one router per resource (``api.routes``) and the web pages.

Errors: 401 no or unknown token, 403 wrong role, 404 unknown thing, 405 with every
method of the path in ``Allow`` (and ``OPTIONS`` lists them), 409 clash with the current
state (stale proposal, full resource-day), 413 body over the size limit, 422 bad input
with the field named, 503 solver queue full or database unreachable (``api.outage``).
Never a 500 for bad input (``api.errors``). Security headers on every answer
(``api.security_headers``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import errors, pages
from api.access_log import AccessLog
from api.allow import AllowedMethods
from api.body_limit import BodyLimit
from api.routes import ROUTERS
from api.runtime import Runtime
from api.security_headers import SecurityHeaders
from api.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        yield
        runtime.stop()

    app = FastAPIOffline(
        title="vein2vein",
        version="0.2.0",
        description="Scheduling of cellular therapy pathways: referrals, proposals, confirmed bookings, capacity.",
        lifespan=lifespan,
        responses=errors.ERRORS,
        static_url="/static/docs",
        docs_url=None,  # /docs and /redoc are pages of ours (api.pages): no inline script, for the CSP
        redoc_url=None,
    )
    app.state.runtime = runtime
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    pages.mount(app)
    app.add_middleware(AllowedMethods, routes=app.router.routes)
    app.add_middleware(BodyLimit, limit=runtime.settings.max_body_bytes)
    app.add_middleware(AccessLog)
    # the security headers outside even Starlette's server-error layer, which every added middleware is
    # inside: an unexpected error's 500 (JSON, api.errors) carries them like every other answer
    stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(stack())
    return app


def from_environment() -> FastAPI:
    """The app of one server process among several (``v2v serve`` with ``V2V_WORKERS`` > 1): each
    reads its settings from the environment, which the command set for them."""
    from api.services import warm_up

    warm_up()
    return create_app(Settings())
