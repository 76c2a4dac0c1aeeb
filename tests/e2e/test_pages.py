"""The web pages in headless Chromium against a real server on the demo database.

Each test checks what a user would: the numbers the page shows are the API's, a click does what
it says, each role sees only its actions, the keyboard reaches everything, a tablet needs no
sideways scrolling. The order follows a working day; the last test runs the nightly re-solve.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.builders import DESKTOP, TABLET, TODAY

FIRST = TODAY.isoformat()
LAST = (TODAY + timedelta(days=30)).isoformat()  # the capacity page's default: a month from today


def long_day(iso: str) -> str:
    """The pages' date format, "Mon 04 Jan 2027"."""
    return date.fromisoformat(iso).strftime("%a %d %b %Y")


def percent(value) -> str:
    return "no capacity" if value is None else f"{round(value * 100)}%"


def cell_button(page, cell):
    return page.locator(f'button.cell[data-resource="{cell["resource"]}"][data-day="{cell["day"]}"]')


def booked_patients(page) -> list[tuple[str, str]]:
    items = page.locator("#cell-detail li[data-patient]")
    return sorted((items.nth(i).get_attribute("data-patient"), items.nth(i).inner_text()) for i in range(items.count()))


# -- sign-in --------------------------------------------------------------------------------------
def test_sign_in_refuses_an_unknown_token_naming_the_field_then_accepts_a_real_one(browser, server, shoot):
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{server.url}/ui/patients")
        page.wait_for_url("**/ui/sign-in?next=*")  # no token: sent to sign in, and back afterwards
        page.fill("#token", "v2v_not-a-real-token")
        page.get_by_role("button", name="Sign in").click()
        alert = page.locator(".sign-in [role=alert]")
        alert.wait_for()
        assert "token: unknown or revoked token" in alert.inner_text()
        assert page.get_attribute("#token", "aria-invalid") == "true"
        assert page.evaluate("sessionStorage.getItem('v2v.token')") is None
        shoot(page, "sign-in")

        page.fill("#token", server.tokens["coordinator"])
        page.keyboard.press("Enter")
        page.wait_for_url("**/ui/patients")
        assert page.inner_text("#site-header .who-name") == "e2e-coordinator (coordinator)"
        # the token is kept in the tab's sessionStorage and never appears in a URL
        assert page.evaluate("sessionStorage.getItem('v2v.token')") == server.tokens["coordinator"]
        assert server.tokens["coordinator"] not in page.url

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/ui/sign-in")
        assert page.evaluate("sessionStorage.getItem('v2v.token')") is None

        # a token revoked (or unknown) while the tab kept it: the next page signs out and asks again
        page.evaluate("sessionStorage.setItem('v2v.token', 'v2v_revoked-meanwhile')")
        page.goto(f"{server.url}/ui/capacity")
        page.wait_for_url("**/ui/sign-in?next=*")
        assert page.evaluate("sessionStorage.getItem('v2v.token')") is None
    finally:
        context.close()


# -- capacity -------------------------------------------------------------------------------------
def test_capacity_heatmap_shows_the_apis_numbers_on_hover_and_lists_a_cells_patients(open_page, server, shoot):
    table = server.get("lab_manager", "/capacity", **{"from": FIRST, "to": LAST})
    page = open_page("lab_manager", "/ui/capacity")
    page.wait_for_selector("#heatmap button.cell")

    # every resource-day (or week) of the API is a cell, in the same order
    buttons = page.locator("#heatmap button.cell")
    assert buttons.count() == len(table["cells"])

    busiest = table["summary"]["busiest"][0]
    cell = next(c for c in table["cells"] if (c["resource"], c["day"]) == (busiest["resource"], busiest["day"]))
    button = cell_button(page, cell)
    label = button.get_attribute("aria-label")
    assert label.startswith(
        f"{cell['resource']}, {long_day(cell['day'])}: "
        f"{cell['booked']} booked of {cell['capacity']}, {cell['free']} free"
    )
    assert percent(cell["utilisation"]) in label

    button.hover()
    tooltip = page.locator("#heatmap-tooltip")
    tooltip.wait_for()
    text = tooltip.inner_text()
    assert f"{cell['booked']} booked of {cell['capacity']}" in text and f"{cell['free']} free" in text

    # the bottleneck resource's row is marked, and it is the API's
    bottleneck = table["summary"]["bottleneck"]["resource"]
    assert page.locator("#heatmap tr.bottleneck").get_attribute("data-resource") == bottleneck
    assert bottleneck in page.inner_text("#bottleneck")

    button.click()
    page.wait_for_selector("#cell-detail:not([hidden])")
    assert button.get_attribute("aria-pressed") == "true"
    listed = booked_patients(page)
    assert [p for p, _ in listed] == sorted(p["patient"] for p in cell["patients"])
    for p in cell["patients"]:
        assert p["step"].replace("_", " ") in dict(listed)[p["patient"]]
    shoot(page, "capacity")

    # a patient in the list opens the patient's page
    first = sorted(cell["patients"], key=lambda p: p["patient"])[0]["patient"]
    page.locator("#cell-detail").get_by_role("link", name=first).click()
    page.wait_for_url(f"**/ui/patients/{first}")
    page.wait_for_selector("#steps")


def test_capacity_shows_closures_and_a_bad_range_names_the_field(open_page, server):
    # the cleanroom requalification (site calendar) closes the manufacturing devices on 1-3 March
    table = server.get(
        "lab_manager", "/capacity", **{"from": "2027-02-22", "to": "2027-03-07", "resource": "manufacturing_device"}
    )
    closed = [c for c in table["cells"] if c["capacity"] == 0 and c["note"]]
    assert closed, "the demo site should close the manufacturing devices in early March"
    page = open_page("lab_manager", "/ui/capacity?from=2027-02-22&to=2027-03-07")
    page.wait_for_selector("#heatmap button.cell")
    for cell in closed:
        button = cell_button(page, cell)
        assert "closed" in button.get_attribute("class").split()
        assert f"closed: {cell['note']}" in button.get_attribute("aria-label")
    assert closed[0]["note"] in page.inner_text("#changes")

    # the API refuses a range whose end is before its start: the page says which field
    page.fill("#from", "2027-03-10")
    page.fill("#to", "2027-03-01")
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_selector("#range-form + [role=alert]:not([hidden])")
    assert "to: is before from" in page.inner_text("#range-form + [role=alert]")
    assert page.get_attribute("#to", "aria-invalid") == "true"


def test_a_closure_on_a_booked_day_stays_visible_and_withdrawing_it_clears_the_answer(open_page, server):
    """A closed day that still has bookings is the one a lab manager must see: overbooked *and* closed.
    Withdrawn again, the heatmap is as before and the answer about it is gone."""
    busy = max(
        (
            c
            for c in server.get(
                "lab_manager", "/capacity", **{"from": FIRST, "to": LAST, "resource": "liverpool/apheresis_machine"}
            )["cells"]
            if c["booked"]
        ),
        key=lambda c: (c["booked"], c["day"]),
    )
    page = open_page("lab_manager", f"/ui/capacity?from={busy['day']}&to={busy['day']}")
    form = page.locator("#change-form")
    form.wait_for()
    page.select_option("#change-resource", value='{"resource":"apheresis_machine","centre":"liverpool"}')
    page.fill("#change-first", busy["day"])
    page.fill("#change-last", busy["day"])
    page.fill("#change-reason", "machine service")
    form.get_by_role("button", name="Add change").click()
    page.wait_for_selector("#change-result:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "change-result"  # the keyboard continues from the answer
    button = page.locator(f'button.cell[data-resource="liverpool/apheresis_machine"][data-day="{busy["day"]}"]')
    assert {"over", "closed-over"} <= set(button.get_attribute("class").split())
    assert button.inner_text() == str(busy["booked"])
    assert "closed: machine service" in button.get_attribute("aria-label")

    row = page.locator("#changes tr", has_text="machine service")
    row.get_by_role("button", name="Withdraw").click()
    page.wait_for_selector("#changes >> text=machine service", state="detached")
    assert page.locator("#change-result").is_hidden()  # no answer left about a change that is gone
    assert page.evaluate("document.activeElement.id") == "changes-title"
    assert "closed-over" not in page.locator(
        f'button.cell[data-resource="liverpool/apheresis_machine"][data-day="{busy["day"]}"]'
    ).get_attribute("class")
    assert all(c["reason"] != "machine service" for c in server.get("lab_manager", "/capacity/changes"))


def test_keyboard_reaches_a_heatmap_cell_with_tab_and_opens_it_with_enter(open_page, server):
    table = server.get("coordinator", "/capacity", **{"from": FIRST, "to": LAST})
    page = open_page("coordinator", "/ui/capacity")
    page.wait_for_selector("#heatmap button.cell")
    page.get_by_role("button", name="Later ▶").focus()
    page.keyboard.press("Tab")  # the whole grid is one tab stop
    focused = page.evaluate("[document.activeElement.dataset.resource, document.activeElement.dataset.day]")
    assert focused == [table["cells"][0]["resource"], table["cells"][0]["day"]]
    assert page.locator("#heatmap-tooltip").is_visible()  # the numbers show on focus too
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    focused = page.evaluate("[document.activeElement.dataset.resource, document.activeElement.dataset.day]")
    cell = table["cells"][2]
    assert focused == [cell["resource"], cell["day"]]
    page.keyboard.press("ArrowDown")
    below = page.evaluate("[document.activeElement.dataset.resource, document.activeElement.dataset.day]")
    cell = next(c for c in table["cells"] if [c["resource"], c["day"]] == below)
    assert below[1] == table["cells"][2]["day"] and below[0] != table["cells"][2]["resource"]
    page.keyboard.press("Enter")
    page.wait_for_selector("#cell-detail:not([hidden])")
    assert f"{cell['booked']} booked of {cell['capacity']}" in page.inner_text("#cell-detail")
    assert [p for p, _ in booked_patients(page)] == sorted(p["patient"] for p in cell["patients"])


def test_only_lab_managers_and_admins_get_the_capacity_change_form(open_page, server):
    page = open_page("coordinator", "/ui/capacity")
    page.wait_for_selector("#changes")
    assert page.locator("#change-form").count() == 0

    page = open_page("lab_manager", "/ui/capacity")
    form = page.locator("#change-form")
    form.wait_for()
    # a change whose last day is before its first: the API's 422 names the field, nothing is stored
    before = server.get("lab_manager", "/capacity/changes")
    page.fill("#change-first", "2027-02-10")
    page.fill("#change-last", "2027-02-01")
    page.fill("#change-reason", "service visit")
    form.get_by_role("button", name="Add change").click()
    page.wait_for_selector("#change-last[aria-invalid=true]")
    assert "last_day" in page.inner_text("#changes-title ~ [role=status]")
    assert "before first_day" in page.inner_text("#change-form .field-error")
    assert server.get("lab_manager", "/capacity/changes") == before


# -- patients -------------------------------------------------------------------------------------
def test_patient_list_pages_through_every_patient_with_pathway_status_and_next_step(open_page, server, shoot):
    first = server.get("coordinator", "/patients")
    everyone, after = list(first["patients"]), first["next_after"]
    while after:
        answer = server.get("coordinator", "/patients", after=after)
        everyone, after = everyone + answer["patients"], answer["next_after"]
    page = open_page("coordinator", "/ui/patients")
    page.wait_for_selector("#patients tbody tr")
    rows = page.locator("#patients tbody tr")
    assert first["total"] > len(first["patients"]) == rows.count()  # one page at first, then "Show more"
    assert f"{rows.count()} of {first['total']} patients shown" in page.inner_text("#patient-count")
    shoot(page, "patients", full_page=False)
    while page.locator("#more").is_visible():
        shown = rows.count()
        page.click("#more")
        expect(rows).not_to_have_count(shown)
    shown_ids = [rows.nth(i).get_attribute("data-patient") for i in range(rows.count())]
    assert shown_ids == [p["id"] for p in everyone]  # every patient once, by id

    wanted = next(p for p in everyone if p["status"] == "scheduled")
    row = page.locator(f'#patients tbody tr[data-patient="{wanted["id"]}"]')
    assert wanted["pathway"] in row.inner_text() and "scheduled" in row.inner_text()
    timeline = server.get("coordinator", f"/patients/{wanted['id']}/timeline")
    ahead = sorted(
        (s for s in timeline["steps"] if s["last_day"] and s["last_day"] >= FIRST), key=lambda s: s["first_day"]
    )
    assert ahead[0]["step"].replace("_", " ") in row.locator(".next-step").inner_text()

    # the filters ask the server: the start of an id in any letter case, and a status
    page.fill("#id-filter", wanted["id"].lower())
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-patient") == wanted["id"]
    page.fill("#id-filter", "")
    page.select_option("#status-filter", "referred")
    referred = server.get("coordinator", "/patients", status="referred", limit=200)
    expect(rows).to_have_count(min(referred["total"], 50))
    assert all(rows.nth(i).get_attribute("data-status") == "referred" for i in range(rows.count()))

    # a search the server refuses is explained beside the field, nothing is echoed into the page
    page.fill("#id-filter", "R 4")
    expect(page.locator("#filter-message")).to_be_visible()
    assert "id-filter" == page.locator("[aria-invalid=true]").get_attribute("id")


def test_coordinator_proposes_and_confirms_a_schedule_and_the_api_agrees(open_page, server, shoot):
    with server.api("coordinator") as api:
        answer = api.post(
            "/patients",
            json={
                "id": "E2E-AXI-1",
                "centre": "liverpool",
                "pathway": "axi-cel",
                "approval_date": FIRST,
                "urgency": "soon",
            },
        )
        assert answer.status_code == 201, answer.text
    # a browser eight hours west of UTC: ISO dates must not shift a day
    page = open_page("coordinator", "/ui/patients", timezone="America/Los_Angeles")
    page.locator('#patients tr[data-patient="E2E-AXI-1"]').get_by_role("link").click()
    page.wait_for_url("**/ui/patients/E2E-AXI-1")
    page.wait_for_selector("#gantt-empty")  # nothing booked yet
    assert page.locator('#steps tr[data-status="not booked"]').count() == page.locator("#steps tbody tr").count()

    # keyboard: from the header, Tab reaches the first action; Enter asks for a proposal
    page.get_by_role("button", name="Sign out").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "propose"
    page.keyboard.press("Enter")
    page.wait_for_selector("#options .option")
    option_text = page.inner_text("#options .option >> nth=0")
    assert page.locator("#gantt .gantt-bar.proposed").count() > 0  # the proposal is drawn on the timeline
    shoot(page, "patient-proposal")

    page.get_by_role("button", name="Confirm option 0").click()
    message = page.locator("#action-message.success")
    message.wait_for()
    assert "Confirmed option 0" in message.inner_text()

    timeline = server.get("coordinator", "/patients/E2E-AXI-1/timeline")
    assert timeline["status"] == "scheduled"
    assert page.inner_text("#fact-status") == "scheduled"
    booked = [s for s in timeline["steps"] if s["first_day"]]
    assert booked and all(s["status"] == "confirmed" for s in booked)
    for s in booked:
        row = page.locator(f'#steps tr[data-step="{s["step"]}"]')
        assert row.get_attribute("data-status") == "confirmed"
        assert row.get_attribute("data-first") == s["first_day"]
        assert long_day(s["first_day"]) in row.locator(".dates").inner_text()
        assert long_day(s["first_day"]) in option_text  # what was confirmed is what was proposed
    infusion = next(s for s in booked if s["step"] == "infusion")
    assert f"infusion on {long_day(infusion['first_day'])}" in message.inner_text()
    assert page.locator("#gantt .gantt-bar.confirmed").count() == len(booked)
    shoot(page, "patient")

    # the capacity page now lists the new booking in its apheresis cell
    apheresis = next(s for s in booked if s["step"] == "apheresis")
    page.goto(f"{server.url}/ui/capacity")
    page.locator(
        f'button.cell[data-resource="liverpool/apheresis_machine"][data-day="{apheresis["first_day"]}"]'
    ).click()
    page.wait_for_selector('#cell-detail li[data-patient="E2E-AXI-1"]')


def test_a_defer_date_before_today_shows_the_apis_message_at_the_field(open_page, server):
    before = server.get("coordinator", "/patients/R-0001/timeline")
    page = open_page("coordinator", "/ui/patients/R-0001")
    form = page.locator("#defer-form")
    form.wait_for()
    page.fill("#defer-from", (TODAY - timedelta(days=7)).isoformat())
    page.fill("#defer-reason", "family event")
    form.get_by_role("button", name="Defer").click()
    page.wait_for_selector("#defer-from[aria-invalid=true]")
    assert "from_date: " in form.locator("[role=alert]").inner_text()
    assert "is in the past" in form.locator(".field-error").inner_text()
    after = server.get("coordinator", "/patients/R-0001/timeline")
    assert after["steps"] == before["steps"]  # a refused request changes nothing


def test_lab_manager_sees_the_timeline_but_no_coordinator_action(open_page, server):
    page = open_page("lab_manager", "/ui/patients/R-0001")
    page.wait_for_selector("#steps")
    assert page.locator("#no-actions").is_visible()
    for selector in ("#propose", "#defer-form", "#oos-form", "button:has-text('Confirm')"):
        assert page.locator(selector).count() == 0, selector
    timeline = server.get("lab_manager", "/patients/R-0001/timeline")
    for s in timeline["steps"]:
        row = page.locator(f'#steps tr[data-step="{s["step"]}"]')
        assert row.get_attribute("data-status") == s["status"]
        for reason in s["why"]:
            assert reason in row.inner_text()  # the reason each date is what it is


def _refer(server, patient_id: str) -> None:
    with server.api("coordinator") as api:
        body = {"id": patient_id, "centre": "liverpool", "pathway": "axi-cel", "approval_date": FIRST}
        answer = api.post("/patients", json=body)
        assert answer.status_code == 201, answer.text


def _withdraw_on_the_page(page, cause: str) -> None:
    form = page.locator("#withdraw-form")
    page.select_option("#withdraw-cause", value=cause)
    page.fill("#withdraw-reason", "moved to another centre")
    form.get_by_role("button", name="Withdraw").click()
    page.locator("#action-message.success").wait_for()


def test_a_withdrawn_patient_offers_only_reinstating_and_a_deceased_one_nothing(open_page, server):
    _refer(server, "E2E-WD-1")
    page = open_page("coordinator", "/ui/patients/E2E-WD-1")
    page.locator("#withdraw-form").wait_for()
    _withdraw_on_the_page(page, "withdrawn")
    page.locator("#reinstate-form").wait_for()
    for selector in ("#propose", "#defer-form", "#oos-form", "#withdraw-form"):
        assert page.locator(selector).count() == 0, selector
    assert page.inner_text("#fact-status") == "withdrawn"
    assert server.get("coordinator", "/patients/E2E-WD-1")["status"] == "withdrawn"

    page.fill("#reinstate-reason", "patient changed their mind")
    page.locator("#reinstate-form").get_by_role("button", name="Reinstate").click()
    page.wait_for_selector("#options .option")  # reinstated: a new proposal to choose from
    assert page.locator("#propose").is_visible() and page.locator("#withdraw-form").count() == 1
    assert server.get("coordinator", "/patients/E2E-WD-1")["status"] == "referred"

    _refer(server, "E2E-WD-2")
    page = open_page("coordinator", "/ui/patients/E2E-WD-2")
    page.locator("#withdraw-form").wait_for()
    _withdraw_on_the_page(page, "deceased")
    expect(page.locator("#no-actions")).to_contain_text("deceased")
    for selector in ("#propose", "#reinstate-form", "#withdraw-form"):
        assert page.locator(selector).count() == 0, selector
    events = server.get("coordinator", "/patients/E2E-WD-2/timeline")["events"]
    assert events[-1]["kind"] == "withdrawal" and events[-1]["details"]["cause"] == "deceased"


# -- layout ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/ui/worklist", "/ui/capacity", "/ui/patients", "/ui/patients/R-0002", "/ui/referral", "/ui/plan-changes"]
)
def test_a_tablet_needs_no_sideways_scrolling(open_page, shoot, path):
    page = open_page("admin", path, viewport=TABLET)
    page.wait_for_selector("#page > :not(.muted)")
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{path} is {overflow} px wider than a 768 px tablet"
    if path == "/ui/capacity":
        shoot(page, "capacity-tablet", full_page=False)


# -- plan changes (last: a closure and the nightly re-solve change the plan) ------------------
def test_a_closure_and_the_nightly_resolve_show_on_the_plan_changes_page(open_page, server, shoot):
    page = open_page("coordinator", "/ui/plan-changes")
    page.wait_for_selector("#no-report")  # no run yet: a friendly empty state
    assert page.locator("#run-now").count() == 0  # only admins start a run
    shoot(page, "plan-changes-empty", full_page=False)

    # a referral that cannot be scheduled in the horizon (checkpoint inhibitor washout)
    with server.api("coordinator") as api:
        answer = api.post(
            "/patients",
            json={
                "id": "E2E-NOFIT-1",
                "centre": "liverpool",
                "pathway": "axi-cel",
                "approval_date": FIRST,
                "last_doses": {"checkpoint_inhibitor": "2028-03-01"},
            },
        )
        assert answer.status_code == 201, answer.text

    # the lab manager cuts the beds to one for a week, through the page's form
    page = open_page("lab_manager", "/ui/capacity")
    form = page.locator("#change-form")
    form.wait_for()
    page.select_option("#change-resource", value='{"resource":"bed","centre":"liverpool"}')
    page.fill("#change-first", "2027-01-25")
    page.fill("#change-last", "2027-01-31")
    page.fill("#change-capacity", "1")
    page.fill("#change-reason", "ward refurbishment")
    form.get_by_role("button", name="Add change").click()
    page.wait_for_selector("#change-result:not([hidden])")
    table = server.get(
        "lab_manager", "/capacity", **{"from": "2027-01-25", "to": "2027-01-31", "resource": "liverpool/bed"}
    )
    overbooked = {(o["resource"], o["day"]) for o in table["summary"]["overbooked"]}
    assert overbooked, "one bed for a week should break some stays"
    broken = sorted(
        {p["patient"] for c in table["cells"] if (c["resource"], c["day"]) in overbooked for p in c["patients"]}
    )
    items = page.locator("#change-result li")
    assert sorted(items.nth(i).get_attribute("data-patient") for i in range(items.count())) == broken
    page.wait_for_selector("#changes >> text=ward refurbishment")
    for resource, day in overbooked:  # the heatmap redraws with the overbooked cells marked
        assert (
            "over"
            in page.locator(f'button.cell[data-resource="{resource}"][data-day="{day}"]').get_attribute("class").split()
        )

    page = open_page("admin", "/ui/plan-changes")
    page.wait_for_selector("#admin-panel")
    page.get_by_role("button", name="Run the re-solve now").click()
    page.wait_for_selector("#run-facts", timeout=120_000)

    nightly = server.get("admin", "/jobs/nightly/report")
    report = nightly["report"]
    assert nightly["run"]["trigger"] == "manual"
    facts = page.inner_text("#run-facts")
    assert nightly["run"]["status"] in facts and long_day(nightly["run"]["run_date"]) in facts
    assert report["summary"] in page.inner_text("#report-summary")

    # unschedulable patients first, each with its reason
    assert "E2E-NOFIT-1" in [u["patient"] for u in report["unschedulable"]]
    items = page.locator("#unschedulable li")
    assert [items.nth(i).get_attribute("data-patient") for i in range(items.count())] == [
        u["patient"] for u in report["unschedulable"]
    ]
    for u in report["unschedulable"]:
        assert u["reason"] in page.locator(f'#unschedulable li[data-patient="{u["patient"]}"]').inner_text()

    # then every changed booking, in the API's order (the broken stays had to move)
    assert report["patients"]
    shown = page.locator("#plan-changes tbody tr")
    order = []
    for i in range(shown.count()):
        patient = shown.nth(i).get_attribute("data-patient")
        if not order or order[-1] != patient:
            order.append(patient)
    assert order == [p["patient"] for p in report["patients"]]
    assert shown.count() == sum(len(p["changes"]) for p in report["patients"])
    assert page.locator("#run-history tbody tr").count() >= 1
    shoot(page, "plan-changes")

    page = open_page("lab_manager", "/ui/plan-changes")
    page.wait_for_selector("#run-facts")
    assert page.locator("#admin-panel").count() == 0
