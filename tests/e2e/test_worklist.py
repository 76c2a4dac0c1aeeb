"""The worklist page in headless Chromium, on the recording site (``conftest.recording_site``): a
server on the day GATE-AXI-1's conditioning is due, with AWAIT-AXI-1's product in manufacture.

What a coordinator and a lab manager see first: what is due today and the next working days, what
is overdue to record, the products awaited, the conditioning at risk, who moved; each item a link
to the patient. The page shows the API's lists (fetched at the same moment), by day.
"""

from __future__ import annotations

from datetime import date

from playwright.sync_api import expect

from tests.builders import TABLET


def long_day(iso: str | date) -> str:
    return (date.fromisoformat(iso) if isinstance(iso, str) else iso).strftime("%a %d %b %Y")


def items(page, selector: str) -> list[tuple[str, str]]:
    rows = page.locator(selector)
    return [
        (rows.nth(i).get_attribute("data-patient"), rows.nth(i).get_attribute("data-step")) for i in range(rows.count())
    ]


def test_the_worklist_shows_a_due_step_the_overdue_the_awaited_product_and_the_conditioning_at_risk(
    open_page, recording_site, shoot
):
    site, server = recording_site, recording_site.server
    today = site.day.isoformat()
    page = open_page("coordinator", "/ui/worklist", at=server)
    page.wait_for_selector("#worklist #due")
    worklist = server.get("coordinator", "/worklist")
    assert worklist["today"] == today
    assert page.locator("#view-form input[value=coordinator]").is_checked()  # a coordinator's own view first
    assert f"for {long_day(today)}, looking ahead to {long_day(worklist['until'])}" in page.inner_text(
        "#worklist-summary"
    )

    # due: GATE-AXI-1's conditioning starts today, under today's heading; every due item under its day
    assert ("GATE-AXI-1", "conditioning") in [(i["patient"], i["step"]) for i in worklist["due"]]
    today_group = page.locator(f'.day-group[data-day="{today}"]')
    expect(today_group.locator("h3")).to_contain_text(f"Today, {long_day(today)}")
    conditioning = today_group.locator('tr[data-patient="GATE-AXI-1"][data-step="conditioning"]')
    booked = site.booked["GATE-AXI-1"]["conditioning"]
    assert f"{long_day(booked['first_day'])} to {long_day(booked['last_day'])}" in conditioning.inner_text()
    for item in worklist["due"]:
        group = page.locator(f'.day-group[data-day="{item["first_day"]}"]')
        expect(group.locator(f'tr[data-patient="{item["patient"]}"][data-step="{item["step"]}"]')).to_have_count(1)
    assert len(items(page, "#due tbody tr")) == len(worklist["due"])

    # overdue to record: flagged, in the API's order (GATE-AXI-1's apheresis was never recorded)
    assert items(page, "#overdue tbody tr") == [(i["patient"], i["step"]) for i in worklist["overdue"]]
    assert ("GATE-AXI-1", "apheresis") in items(page, "#overdue tbody tr")
    assert "flagged" in page.get_attribute("#overdue", "class")
    overdue = page.locator('#overdue tr[data-patient="GATE-AXI-1"][data-step="apheresis"]')
    assert "overdue" in overdue.get_attribute("class") and "overdue" in overdue.inner_text()

    # the product awaited: where it is, when it is expected back, the release booking it should meet
    awaited = next(p for p in worklist["products_awaited"] if p["patient"] == "AWAIT-AXI-1")
    row = page.locator('#awaited tr[data-patient="AWAIT-AXI-1"]')
    assert awaited["state"]["summary"] in row.inner_text()
    assert long_day(awaited["state"]["expected_on"]) in row.locator(".expected").inner_text()
    release = site.booked["AWAIT-AXI-1"]["release"]["first_day"]
    assert awaited["next_step"] == {"step": "release", "first_day": release}
    assert f"release {long_day(release)}" in row.locator(".release").inner_text()

    # conditioning at risk: GATE-AXI-1 (no product at all) and AWAIT-AXI-1 (in manufacture), each
    # with the gate's reason and the day its product is expected back
    assert {i["patient"] for i in worklist["at_risk"]} >= {"GATE-AXI-1", "AWAIT-AXI-1"}
    assert items(page, "#at-risk tbody tr") == [(i["patient"], i["step"]) for i in worklist["at_risk"]]
    for risk in worklist["at_risk"]:
        row = page.locator(f'#at-risk tr[data-patient="{risk["patient"]}"]')
        assert risk["why"] == row.locator(".why").inner_text()
        assert long_day(risk["first_day"]) in row.inner_text()
        assert (long_day(risk["expected_on"]) if risk["expected_on"] else "no date given") in row.inner_text()
    gate = next(i for i in worklist["at_risk"] if i["patient"] == "GATE-AXI-1")
    assert "no product is recorded" in gate["why"]

    # patients moved since their dates were confirmed (on this shared site, REC-AXI-1 once the recording
    # tests have recorded its late product): each with the cause of each move; or that there are none
    for moved in worklist["moved"]:
        shown = page.locator(f'#moved-list li[data-patient="{moved["patient"]}"]').inner_text()
        assert all(m["details"]["cause"] in shown for m in moved["moves"])
    if not worklist["moved"]:
        expect(page.locator("#moved-none")).to_be_visible()
    shoot(page, "worklist")

    # each item leads to the patient's page, at the step
    page.locator('#at-risk tr[data-patient="AWAIT-AXI-1"]').get_by_role("link", name="AWAIT-AXI-1").click()
    page.wait_for_url("**/ui/patients/AWAIT-AXI-1#step-conditioning")
    expect(page.locator("#step-conditioning")).to_be_in_viewport()


def test_the_lab_managers_view_lists_the_lab_steps_and_the_switch_shows_the_coordinators(open_page, recording_site):
    server = recording_site.server
    page = open_page("lab_manager", "/ui/worklist", at=server)
    page.wait_for_selector("#worklist #due")
    assert page.locator("#view-form input[value=lab_manager]").is_checked()
    lab = server.get("lab_manager", "/worklist")
    assert lab["role"] == "lab_manager"
    assert items(page, "#overdue tbody tr") == [(i["patient"], i["step"]) for i in lab["overdue"]]
    # GATE-AXI-1 has no product: its manufacture and release are the lab's to record, its apheresis is not
    overdue = items(page, "#overdue tbody tr")
    assert ("GATE-AXI-1", "manufacture") in overdue and ("GATE-AXI-1", "apheresis") not in overdue

    page.get_by_label("Coordinator").check()
    page.wait_for_url("**/ui/worklist?role=coordinator")
    with server.api("lab_manager") as api:
        coordinator = api.get("/worklist", params={"role": "coordinator"}).json()
    expect(page.locator("#overdue tbody tr")).to_have_count(len(coordinator["overdue"]))
    assert items(page, "#overdue tbody tr") == [(i["patient"], i["step"]) for i in coordinator["overdue"]]
    assert "coordinator's worklist" in page.inner_text("#worklist-summary")


def test_the_home_page_is_the_worklist_and_it_fits_a_tablet(open_page, recording_site):
    server = recording_site.server
    page = open_page("coordinator", "/ui/patients", at=server, viewport=TABLET)
    page.goto(f"{server.url}/")
    page.wait_for_url("**/ui/worklist")
    page.wait_for_selector("#worklist #due")
    assert page.locator('#site-header nav a[aria-current="page"]').inner_text() == "Worklist"
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the worklist is {overflow} px wider than a 768 px tablet"
    page.goto(f"{server.url}/ui")
    page.wait_for_url("**/ui/worklist")
