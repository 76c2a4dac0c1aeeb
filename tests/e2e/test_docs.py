"""The API documentation pages on a network with no internet: /docs (Swagger UI) and /redoc load
every asset from the app itself, and render the operations of /openapi.json."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest

from tests.builders import DESKTOP


@pytest.fixture
def offline_page(browser):
    """A page whose browser reaches only the app (127.0.0.1): any other request is refused and noted."""
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    outside: list[tuple[str, str]] = []  # (resource type, URL) of every request refused

    def only_the_app(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append((route.request.resource_type, route.request.url))
            route.abort()

    context.route("**/*", only_the_app)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.outside = outside
    page.errors = errors
    yield page
    context.close()


def _operations(server) -> int:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    return sum(len(item) for item in document["paths"].values())


def test_swagger_ui_renders_every_operation_with_no_internet(offline_page, server, shoot):
    page = offline_page
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("vein2vein")
    assert page.locator(".swagger-ui .opblock").count() == _operations(server)
    assert page.locator('.opblock-summary-path[data-path="/patients/{patient_id}/proposals"]').count() == 1
    # a response schema is shown: open an operation and find its 200 answer's model
    page.locator('.opblock-get .opblock-summary-path[data-path="/health"]').click()
    page.locator(".opblock-get.is-open .responses-wrapper").wait_for()
    assert "plan_version" in page.locator(".opblock-get.is-open .responses-wrapper").inner_text()
    shoot(page, "api-docs")
    assert page.outside == [] and page.errors == []


def test_redoc_renders_every_operation_with_no_internet(offline_page, server):
    page = offline_page
    page.goto(f"{server.url}/redoc")
    sections = page.locator('[data-section-id^="operation/"]')
    sections.first.wait_for()
    assert page.locator("h1").first.inner_text().startswith("vein2vein")
    assert sections.count() == _operations(server)
    # ReDoc's own footer shows Redocly's logo from their CDN: a decoration, refused here like the
    # rest; no script, style sheet, font or data came from outside
    assert [(kind, url) for kind, url in page.outside if kind != "image"] == []
    assert page.errors == []
