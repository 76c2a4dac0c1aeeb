"""End-to-end fixtures: a real server process on a real SQLite database holding the demo (the
regional cohort, planned and confirmed, as ``v2v demo`` makes it), and Debian's headless
Chromium driven by Playwright.

Without /usr/bin/chromium the tests are skipped, except in CI (the ``CI`` variable set), where
``make test`` installs it and a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.builders import DESKTOP, ROLES, TODAY, din_text, free_port, make_settings, wait_until_serving
from tests.paths import COHORTS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "out" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"


def _require_browser() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (Debian's chromium package; make test installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install -e '.[test]')"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {problem}", pytrace=False)
        pytest.skip(problem)


class Server:
    """The API and pages in their own process (``v2v serve``), as a deployment runs them."""

    def __init__(self, url: str, tokens: dict[str, str], log: Path):
        self.url = url
        self.tokens = tokens
        self.log = log

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[role]}"}, timeout=60)

    def get(self, role: str, path: str, **params):
        with self.api(role) as client:
            response = client.get(path, params=params)
        response.raise_for_status()
        return response.json()


@contextmanager
def serving(directory: Path, url: str, today: date, tokens: dict[str, str]) -> Iterator[Server]:
    """``v2v serve`` on the database at ``url`` with ``today`` as its planning day (``V2V_TODAY``),
    until the block ends. ``directory`` holds its log and is its working directory."""
    port = free_port()
    env = os.environ.copy()
    env.update(
        DATABASE_URL=url,
        V2V_TODAY=today.isoformat(),
        V2V_HORIZON_DAYS="365",
        V2V_SOLVE_TIME_LIMIT="3",
        V2V_PROPOSE_TIME_LIMIT="1",
        V2V_ALTERNATIVES="1",
        V2V_NIGHTLY_ENABLED="false",
        V2V_NIGHTLY_TIME_LIMIT="3",
        V2V_HOST="127.0.0.1",
        V2V_PORT=str(port),
    )
    v2v = Path(sys.executable).with_name("v2v")
    command = (
        [str(v2v)] if v2v.exists() else [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())"]
    )
    log = directory / f"server-{today.isoformat()}.log"
    with open(log, "wb") as out:
        # the working directory is the temporary one, so no developer's .env is read
        process = subprocess.Popen([*command, "serve"], cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process, log.read_text)
        yield Server(base, tokens, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    _require_browser()
    from api.setup import init_database, load_cohort, new_token

    directory = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{directory / 'demo.db'}"
    # the demo: the regional cohort (100 patients) planned and confirmed; today is its first day
    settings = make_settings(url, horizon_days=365, solve_time_limit=3)
    init_database(settings)
    load_cohort(settings, COHORTS / "regional.json", time_limit=3)
    tokens = {role: new_token(settings, f"e2e-{role}", role) for role in ROLES}
    with serving(directory, url, TODAY, tokens) as served:
        yield served


@pytest.fixture(scope="session")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--lang=en-GB"]
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, request) -> Iterator[Callable]:
    """open_page(role, path, viewport=DESKTOP, timezone="Europe/London", at=None): a fresh browser
    context signed in through the sign-in page as ``role``, at ``path`` of the server ``at`` (the
    demo ``server`` unless given). Script errors on any page fail the test: uncaught ones, and the
    ones a page catches and shows in its error box."""
    contexts = []
    errors: list[str] = []

    def open_(
        role: str,
        path: str = "/ui/capacity",
        viewport: dict | None = None,
        timezone: str = "Europe/London",
        at: Server | None = None,
    ):
        server = at or request.getfixturevalue("server")
        context = browser.new_context(viewport=viewport or DESKTOP, locale="en-GB", timezone_id=timezone)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/ui/sign-in?next={quote(path)}")
        page.fill("#token", server.tokens[role])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"**{path}*")
        page.wait_for_selector("#site-header .who-name")
        return page

    yield open_
    for context in contexts:
        for page in context.pages:
            box = page.locator("#page-error")
            if box.count() and box.is_visible():
                errors.append(f"{page.url}: {box.inner_text()}")
        context.close()
    assert not errors, f"script errors in the pages: {errors}"


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot as a test artefact (out/screenshots); with V2V_DOCS_SCREENSHOTS=1 also
    refresh the README's copy in docs/screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("V2V_DOCS_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    return path


@pytest.fixture
def shoot() -> Callable:
    return screenshot


# -- a site a month on, for the worklist and recording pages ------------------------------------------
RECORDED = ("REC-AXI-1", "GATE-AXI-1", "AWAIT-AXI-1", "MISS-AXI-1")
"""Four axi-cel patients referred on TODAY: REC's product release is recorded through the pages,
GATE's conditioning is refused by the gate, AWAIT's product is in manufacture (expected back),
MISS's apheresis is recorded as missed."""


class RecordingSite:
    """A server on the day GATE-AXI-1's conditioning is due, with the referrals' timelines as
    confirmed on TODAY (``booked[patient][step]``: the step's first and last day)."""

    def __init__(self, server: Server, booked: dict[str, dict[str, dict]], day: date):
        self.server = server
        self.booked = booked
        self.day = day


@pytest.fixture(scope="session")
def recording_site(tmp_path_factory) -> Iterator[RecordingSite]:
    """Its own database (no cohort): the four referrals planned and confirmed on TODAY; AWAIT-AXI-1's
    apheresis recorded done and its product collected, shipped, received and in manufacture, expected
    back on the day its manufacture ends; then served on the day GATE-AXI-1's conditioning starts."""
    _require_browser()
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.setup import init_database, new_token
    from tests.builders import auth, confirm, propose, refer

    directory = tmp_path_factory.mktemp("e2e-recording")
    url = f"sqlite:///{directory / 'recording.db'}"
    settings = make_settings(url, horizon_days=365)
    init_database(settings)
    tokens = {role: new_token(settings, f"e2e-{role}", role) for role in ROLES}

    def client(day: date) -> TestClient:
        served = TestClient(create_app(settings.model_copy(update={"today": day})))
        served.tokens = tokens
        return served

    booked: dict[str, dict[str, dict]] = {}
    with client(TODAY) as api:
        for patient in RECORDED:
            refer(api, patient)
            answer = confirm(api, propose(api, patient)["id"])
            assert answer.status_code == 200, answer.text
            steps = answer.json()["timeline"]["steps"]
            booked[patient] = {s["step"]: s for s in steps}

    awaited = booked["AWAIT-AXI-1"]
    collection = date.fromisoformat(awaited["apheresis"]["first_day"])
    back = date.fromisoformat(awaited["manufacture"]["last_day"]) + timedelta(days=1)
    with client(collection) as api:
        lab, bedside = auth(api, "lab_manager"), auth(api, "coordinator")
        collected = api.post("/patients/AWAIT-AXI-1/steps/apheresis/records", json={"outcome": "done"}, headers=bedside)
        assert collected.status_code == 201
        product = {
            "collection_step": "apheresis",
            "din": din_text("W000027000003"),
            "product_code": "S1234",
            "chain_of_identity": "COI-AWAIT-1",
            "order_reference": "ORD-AWAIT-1",
            "bags": 1,
        }
        answer = api.post("/patients/AWAIT-AXI-1/products", json=product, headers=lab)
        assert answer.status_code == 201, answer.text
        product_id = answer.json()["id"]
        for event in (
            {"kind": "collected"},
            {"kind": "shipped", "courier_reference": "CR-AWAIT-1"},
            {"kind": "received"},
            {"kind": "manufacture_started"},
            {"kind": "expected_back", "day": back.isoformat()},
        ):
            body = {"day": collection.isoformat()} | event
            answer = api.post(f"/products/{product_id}/custody", json=body, headers=lab)
            assert answer.status_code == 201, answer.text
            assert answer.json()["replan"] is None  # expected back as planned: nothing moves

    day = date.fromisoformat(booked["GATE-AXI-1"]["conditioning"]["first_day"])
    with serving(directory, url, day, tokens) as served:
        yield RecordingSite(served, booked, day)


class InfusionSite:
    """A server on the infusion day of ``patient``, whose product (``din``, ``chain_of_identity``) is
    issued; ``other_din`` is a valid number of another bag."""

    patient = "INF-AXI-1"
    din = "W000027000005"
    other_din = "W000027000006"
    chain_of_identity = "COI-INF-1"

    def __init__(self, server: Server, day: date):
        self.server = server
        self.day = day


@pytest.fixture(scope="session")
def infusion_site(tmp_path_factory) -> Iterator[InfusionSite]:
    """A database of its own with one axi-cel patient whose product was released, conditioning given and
    product issued (each recorded through the API on its day); served on the infusion day."""
    _require_browser()
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.setup import init_database, new_token
    from tests.builders import auth, confirm, propose, refer

    directory = tmp_path_factory.mktemp("e2e-infusion")
    url = f"sqlite:///{directory / 'infusion.db'}"
    settings = make_settings(url, horizon_days=365)
    init_database(settings)
    tokens = {role: new_token(settings, f"e2e-{role}", role) for role in ROLES}
    site = InfusionSite

    def on(day: date) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update={"today": day})))
        client.tokens = tokens
        return client

    def post(client, path: str, body: dict) -> dict:
        answer = client.post(path, json=body, headers=auth(client, "coordinator"))
        assert answer.status_code == 201, answer.text
        return answer.json()

    with on(TODAY) as api:
        refer(api, site.patient)
        answer = confirm(api, propose(api, site.patient)["id"])
        booked = {s["step"]: s for s in answer.json()["timeline"]["steps"]}
    day = {step: date.fromisoformat(s["first_day"]) for step, s in booked.items()}
    collection, release = day["apheresis"].isoformat(), day["release"].isoformat()
    with on(day["apheresis"]) as api:
        post(api, f"/patients/{site.patient}/steps/apheresis/records", {"outcome": "done"})
        product = {
            "collection_step": "apheresis",
            "din": din_text(site.din),
            "chain_of_identity": site.chain_of_identity,
        }
        pid = post(api, f"/patients/{site.patient}/products", product)["id"]
        for kind, details in (("collected", {}), ("shipped", {"courier_reference": "CR-INF-1"}), ("received", {})):
            post(api, f"/products/{pid}/custody", {"kind": kind, "day": collection, **details})
    with on(day["release"]) as api:
        for kind, details in (("shipped_back", {}), ("received_at_centre", {"storage_location": "LN2 tank 1"})):
            post(api, f"/products/{pid}/custody", {"kind": kind, "day": release, **details})
        assert post(api, f"/products/{pid}/custody", {"kind": "released", "day": release})["replan"] is None
    with on(date.fromisoformat(booked["conditioning"]["last_day"])) as api:
        post(api, f"/patients/{site.patient}/steps/conditioning/records", {"outcome": "done"})
    with on(day["infusion"]) as api:
        post(api, f"/products/{pid}/custody", {"kind": "issued", "day": day["infusion"].isoformat()})
    with serving(directory, url, day["infusion"], tokens) as served:
        yield InfusionSite(served, day["infusion"])
