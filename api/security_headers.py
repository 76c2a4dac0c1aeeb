"""Security headers on every answer: pages, JSON, static files, the docs, and the framework's
own errors (404, 405, 422).

- ``Content-Security-Policy``: scripts, styles and everything else come from the app itself;
  no inline script, no inline style element or attribute, no plug-ins, and no page may frame
  these ones (``frame-ancestors 'none'``). The pages satisfy it: each is an HTML shell with
  one ES module and the shared style sheet (``api/static``); styles a module sets go through
  the CSSOM (``node.style.left = ...``), which a CSP does not restrict. ``img-src`` allows
  ``data:`` for the pages' empty favicon (``<link rel="icon" href="data:,">``) and the
  inline SVG icons of Swagger UI's style sheet.
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``; ``nosniff``;
  ``Referrer-Policy: no-referrer`` (a page's URL can carry a patient id: it is never sent on).
- ``Cache-Control: no-store`` on every answer but the static assets: the JSON and the pages
  can carry patient data, which no browser or proxy cache should keep. Static assets (code,
  style sheets, the docs' bundles) hold none: cacheable, revalidated each time
  (``no-cache``), so an upgrade is seen at once.

One page needs more: ReDoc (``/redoc``) styles itself with style elements it creates
(styled-components) and runs its search in a worker made from a ``blob:`` URL. That route
sends its own policy, ``redoc_policy(nonce)``: the same, except that ``style-src`` also allows
a nonce fresh in each answer, which ReDoc is handed and puts on its style elements, and the
two style elements its bundle adds while loading, before it has the nonce (by hash); and
``worker-src`` allows ``blob:`` (a worker made by ReDoc's own script, which is ``'self'``).
Scripts stay ``'self'`` only. A policy an answer already carries is kept; every other header
here is always set.

The server's banner (``server: uvicorn``) is switched off where uvicorn runs (``v2v serve``).
"""

from __future__ import annotations

import secrets

CSP = b"content-security-policy"
STATIC_PREFIX = "/static/"  # the app's own assets (api/static, and the docs' under /static/docs)


# SHA-256 of the two style elements ReDoc's bundle (fastapi-offline's redoc.standalone.js) adds as
# it loads: perfect-scrollbar's rules, and an empty one. A new bundle with other ones shows as a
# violation in tests/e2e/test_content_security_policy.py.
REDOC_STYLE_HASHES = (
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
)


def _policy(styles: str = "'self'", workers: str | None = None) -> str:
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        f"style-src {styles}",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
    if workers:
        directives.append(f"worker-src {workers}")
    return "; ".join(directives)


POLICY = _policy()


def redoc_policy(style_nonce: str) -> str:
    """The policy of the ReDoc page: its style elements (by ``style_nonce`` and by hash) and its blob worker."""
    return _policy(" ".join(("'self'", f"'nonce-{style_nonce}'", *REDOC_STYLE_HASHES)), workers="'self' blob:")


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
REPLACED = {name for name, _ in HEADERS} | {b"cache-control"}
DEFAULT_POLICY = (CSP, POLICY.encode())


def protected(headers, cache: bytes) -> list[tuple[bytes, bytes]]:
    """An answer's ``headers`` with ours set (its own Content-Security-Policy kept if it has one)."""
    kept = [(name, value) for name, value in headers if name.lower() not in REPLACED]
    own_policy = any(name.lower() == CSP for name, _ in kept)
    return [*kept, *(() if own_policy else (DEFAULT_POLICY,)), *HEADERS, (b"cache-control", cache)]


class SecurityHeaders:
    """ASGI middleware: sets ``HEADERS``, the policy and the cache rule on every HTTP answer as it starts."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            send = _protecting(send, b"no-cache" if scope["path"].startswith(STATIC_PREFIX) else b"no-store")
        await self.app(scope, receive, send)


def _protecting(send, cache: bytes):
    async def sending(message):
        if message["type"] == "http.response.start":
            message["headers"] = protected(message.get("headers", ()), cache)
        await send(message)

    return sending
