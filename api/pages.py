"""The web pages (issue 5): served by the same app, everything local (no CDN, no build step).

Each page is a static HTML shell under ``/ui/...`` with one ES module of its own
(``api/static/js/``). The shells carry no data and need no token; the modules
read everything from the JSON API with the bearer token kept in the browser's
``sessionStorage`` (never in a URL).

| URL                     | page                                                                   |
|-------------------------|------------------------------------------------------------------------|
| ``/ui/sign-in``         | paste a token; ``GET /me`` tells the name and role                     |
| ``/ui/worklist``        | the first page (``/`` and ``/ui`` lead here): due today and the next   |
|                         | working days, overdue to record, products awaited, conditioning at     |
|                         | risk, patients moved since confirmed; coordinator or lab manager view  |
| ``/ui/capacity``        | heatmap of resources x days, closures, bottleneck                      |
| ``/ui/patients``        | every referral: pathway, status, next step                             |
| ``/ui/referral``        | a new referral (coordinators), each problem shown at its field         |
| ``/ui/patients/{id}``   | one patient's timeline and the coordinator's actions; the referral's   |
|                         | edit; recording steps (started, done, missed, cancelled; an infusion's |
|                         | scanned identifiers), products and their chain of custody              |
| ``/ui/plan-changes``    | the last nightly run's diff, unschedulable patients first              |
| ``/docs``, ``/redoc``   | the API's documentation (Swagger UI, ReDoc; assets served by the app)  |

No page has an inline script or style: the Content-Security-Policy (``api.security_headers``)
allows none. The docs' shells are files here too: Swagger UI is started by ``js/swagger.js``;
ReDoc's shell gets a fresh style nonce in each answer (ReDoc creates style elements).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api import security_headers

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {
    "sign-in": "sign-in.html",
    "worklist": "worklist.html",
    "referral": "referral.html",
    "capacity": "capacity.html",
    "patients": "patients.html",
    "plan-changes": "plan-changes.html",
}
HOME = "/ui/worklist"  # the coordinators' first page: what is due today (js/common.js says the same)
NONCE_MARK = "__STYLE_NONCE__"  # where redoc.html takes this answer's style nonce


def _page(name: str) -> FileResponse:
    # never cached (``api.security_headers``): a stale shell after an upgrade would load stale modules
    return FileResponse(STATIC / name, media_type="text/html")


def mount(app: FastAPI) -> None:
    """Add the pages' routes (``/ui/...``; ``/`` and ``/ui`` lead to the worklist) and the static files."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(HOME, status_code=307)

    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/", include_in_schema=False)
    def ui_home() -> RedirectResponse:
        return RedirectResponse(HOME, status_code=307)

    for slug, filename in PAGES.items():
        app.add_api_route(f"/ui/{slug}", _shell(filename), methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", _shell("swagger.html"), methods=["GET"], include_in_schema=False)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        # ReDoc adds style elements of its own: allowed by a nonce fresh in each answer, which
        # ReDoc puts on them (api.security_headers)
        nonce = security_headers.new_nonce()
        shell = (STATIC / "redoc.html").read_text(encoding="utf-8").replace(NONCE_MARK, nonce)
        return HTMLResponse(shell, headers={"Content-Security-Policy": security_headers.redoc_policy(nonce)})

    @app.get("/ui/patients/{patient_id}", include_in_schema=False)
    def patient_page(patient_id: str) -> FileResponse:
        # the module reads the id from the URL and asks the API, which answers 404 for an unknown one
        return _page("patient.html")


def _shell(filename: str):
    def page() -> FileResponse:
        return _page(filename)

    page.__name__ = f"page_{filename.removesuffix('.html').replace('-', '_')}"
    return page
