"""Which methods a path takes, said whole: ``OPTIONS`` answers 204 with them, and a 405's ``Allow``
lists all of them.

FastAPI makes one route per method, so Starlette's own 405 names only the methods of the first
route whose path matched (an ``OPTIONS`` on ``/patients/{patient_id}`` said ``Allow: PATCH``, not GET).
"""

from __future__ import annotations

from starlette.routing import Match, Mount

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _takes(route, scope, method: str) -> bool:
    if isinstance(route, Mount) and method not in ("GET", "HEAD"):
        return False  # the mounts are static files, whatever the method
    return route.matches({**scope, "method": method})[0] == Match.FULL


class AllowedMethods:
    """ASGI middleware over an app whose routes are ``routes`` (its router's list, read at each request)."""

    def __init__(self, app, routes: list):
        self.app = app
        self.routes = routes

    def allowed(self, scope) -> list[str]:
        """The methods some route takes at this path: each asked of the routes as a request of that method
        (routes nest, in included routers and mounts, and each answers for itself)."""
        methods = {method for method in METHODS if any(_takes(route, scope, method) for route in self.routes)}
        return sorted(methods | {"OPTIONS"}) if methods else []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed = self.allowed(scope)
            if allowed:
                headers = [(b"allow", ", ".join(allowed).encode()), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return

        asked = dict(scope)  # the router adds to the scope as it matches (a mount's root path)

        async def sending(message):
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                headers.append((b"allow", ", ".join(self.allowed(asked)).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
