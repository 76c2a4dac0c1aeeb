"""Every page works under the Content-Security-Policy the server sends (no inline script or
style allowed): Chromium reports no violation on any page, and the pages still do their job."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builders import DESKTOP

# what Chromium says on the console when a CSP blocks something
VIOLATION_WORDS = ("Content Security Policy", "Refused to")
# a violation event, seen by the page itself: reported by a script Playwright adds to every page
# through a function it exposes (both run by the browser's debugger, which a CSP does not govern),
# so the reports outlive each navigation
WATCH_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}`);
});
"""


@pytest.fixture
def watched(browser, server):
    """A fresh browser page; every CSP violation it meets (events, console, script errors) is in ``page.violations``."""
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    context.set_default_timeout(15_000)
    violations: list[str] = []
    context.expose_function("reportViolation", lambda text: violations.append(text))
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    page.on("console", lambda m: violations.extend([m.text] if any(w in m.text for w in VIOLATION_WORDS) else []))
    page.on("pageerror", lambda exc: violations.append(str(exc)))
    page.violations = violations
    yield page
    context.close()


def test_every_page_works_under_the_csp_with_no_violation(watched, server):
    page = watched
    policy = page.goto(f"{server.url}/ui/sign-in?next=/ui/patients").headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe" not in policy

    # sign in: a form and a button, run by the page's module
    page.fill("#token", server.tokens["coordinator"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/patients")

    # the patient list renders every patient; its filter works
    patients = server.get("coordinator", "/patients")["patients"]  # the first page, as the list shows it
    rows = page.locator("#patients tbody tr")
    expect(rows).to_have_count(len(patients))
    scheduled = next(p["id"] for p in patients if p["status"] == "scheduled")
    page.fill("#id-filter", scheduled)
    expect(rows).to_have_count(1)

    # a patient's page: its timeline (the Gantt chart is positioned by styles the module sets)
    page.locator(f'#patients tr[data-patient="{scheduled}"]').get_by_role("link").click()
    page.wait_for_url(f"**/ui/patients/{scheduled}")
    page.locator(".gantt-bar").first.wait_for()
    assert page.locator("#steps tbody tr").count() > 0
    # a step's record form, opened and closed by the page's module (its fields shown and hidden)
    page.locator('#steps button[aria-label^="Record"]').first.click()
    page.locator("#steps .record-row form").wait_for()
    page.locator("#steps .record-row").get_by_role("button", name="Close").click()
    assert page.violations == []

    # capacity: the heatmap, its tooltip (placed by style) and a cell's patients on a click
    page.goto(f"{server.url}/ui/capacity")
    cell = page.locator("#heatmap button.cell").first
    cell.wait_for()
    cell.hover()
    page.locator("#heatmap-tooltip").wait_for()
    cell.click()
    page.locator("#cell-detail").wait_for()
    assert page.violations == []

    # the worklist, the first page: every section, and its switch to the lab manager's view
    page.goto(f"{server.url}/")
    page.wait_for_url("**/ui/worklist")
    page.locator("#worklist #moved").wait_for()
    page.get_by_label("Lab manager").check()
    page.wait_for_url("**/ui/worklist?role=lab_manager")
    expect(page.locator("#worklist-summary")).to_contain_text("lab manager's worklist")
    assert page.violations == []

    # the referral form: its fields from the catalogue, and a problem shown at its field
    page.goto(f"{server.url}/ui/referral")
    page.locator("#referral-form").wait_for()
    page.get_by_role("button", name="Register referral").click()
    page.locator("#referral-id[aria-invalid=true]").wait_for()
    assert page.violations == []

    # plan changes: the nightly run's report, or the empty state before the first run
    page.goto(f"{server.url}/ui/plan-changes")
    page.locator("#no-report, #run-facts").first.wait_for()
    assert page.locator("#page-error").is_hidden()
    assert page.violations == []


def test_the_api_docs_work_under_the_csp_with_no_violation(watched, server):
    page = watched
    page.goto(f"{server.url}/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    page.locator('.opblock-get .opblock-summary-path[data-path="/health"]').click()
    page.locator(".opblock-get.is-open .responses-wrapper").wait_for()
    assert "plan_version" in page.locator(".opblock-get.is-open .responses-wrapper").inner_text()
    assert page.violations == []

    page.goto(f"{server.url}/redoc")
    page.locator('[data-section-id^="operation/"]').first.wait_for()
    assert page.locator("h1").first.inner_text().startswith("vein2vein")
    page.fill('input[placeholder="Search..."]', "health")  # ReDoc's search runs in its worker
    page.locator('[data-role="search:results"] li, .search-results li, [role="search"] li').first.wait_for()
    # ReDoc's footer asks Redocly's CDN for its logo: the policy refuses it (nothing is fetched from
    # outside; ReDoc then leaves the logo out). Nothing else may be refused.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [v for v in page.violations if logo not in v] == []
    assert page.locator(f'img[src="{logo}"]').count() == 0
