"""The referral pages in headless Chromium on the demo: a new referral through its form (each problem
the API finds shown at its field, nothing stored), then listed on the patients page; and the patient
page's "Edit referral" form, which lists the rules the current bookings break after an edit."""

from __future__ import annotations

from datetime import date, timedelta

from playwright.sync_api import expect

from tests.builders import TABLET, TODAY


def long_day(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%a %d %b %Y")


def test_a_referral_the_api_refuses_shows_each_problem_at_its_field_and_nothing_is_stored(open_page, server):
    before = server.get("coordinator", "/patients", limit=1)["total"]
    page = open_page("coordinator", "/ui/referral")
    form = page.locator("#referral-form")
    form.wait_for()
    assert page.get_attribute("#referral-approval-date", "value") == TODAY.isoformat()  # today, unless changed
    # a hospital number typed as the id, and no approval date
    page.fill("#referral-id", "40912345")
    page.fill("#referral-approval-date", "")
    form.get_by_role("button", name="Register referral").click()
    expect(page.locator("#referral-id")).to_have_attribute("aria-invalid", "true")
    assert "could be an NHS or hospital number" in page.inner_text("#referral-form-id-error")
    expect(page.locator("#referral-approval-date")).to_have_attribute("aria-invalid", "true")
    assert "required" in page.inner_text("#referral-form-approval_date-error").lower()
    problems = page.inner_text("#referral-problems")
    assert "id:" in problems and "approval_date:" in problems
    assert page.locator("#referral-done").is_hidden()
    assert server.get("coordinator", "/patients", limit=1)["total"] == before


def test_a_referral_made_through_the_form_appears_on_the_patients_page(open_page, server, shoot):
    catalogue = server.get("coordinator", "/catalogue")
    pathways = [t["id"] for t in catalogue["pathways"]["templates"]]
    assert "tisa-cel-dlbcl" in pathways
    page = open_page("coordinator", "/ui/referral")
    page.locator("#referral-form").wait_for()
    # every pathway of the catalogue is offered
    offered = page.locator("#referral-pathway option")
    assert [offered.nth(i).get_attribute("value") for i in range(offered.count())] == pathways
    target = (TODAY + timedelta(days=70)).isoformat()
    page.fill("#referral-id", "E2E-REF-1")
    page.select_option("#referral-pathway", "tisa-cel-dlbcl")
    page.select_option("#referral-urgency", "urgent")
    page.fill("#referral-target-infusion-date", target)
    page.get_by_role("button", name="Register referral").click()
    done = page.locator("#referral-done")
    expect(done).to_be_visible()
    assert "Referral E2E-REF-1 registered" in done.inner_text()
    assert page.evaluate("document.activeElement.id") == "referral-done"
    assert page.input_value("#referral-id") == ""  # ready for the next one
    shoot(page, "referral")

    stored = server.get("coordinator", "/patients/E2E-REF-1")
    assert (stored["pathway"], stored["urgency"], stored["target_infusion_date"], stored["approval_date"]) == (
        "tisa-cel-dlbcl",
        "urgent",
        target,
        TODAY.isoformat(),
    )
    assert stored["status"] == "referred" and stored["nhs_number_recorded"] is False

    page.get_by_role("link", name="Patients", exact=True).click()
    page.wait_for_url("**/ui/patients")
    page.fill("#id-filter", "E2E-REF")
    row = page.locator('#patients tbody tr[data-patient="E2E-REF-1"]')
    expect(row).to_be_visible()
    assert "tisa-cel-dlbcl" in row.inner_text() and "referred" in row.inner_text() and "urgent" in row.inner_text()
    row.get_by_role("link").click()
    page.wait_for_url("**/ui/patients/E2E-REF-1")
    page.locator("#facts").wait_for()
    assert long_day(target) in page.inner_text("#facts")


def test_editing_a_referral_lists_the_rules_its_bookings_now_break(open_page, server, shoot):
    with server.api("coordinator") as api:
        answer = api.post(
            "/patients",
            json={"id": "E2E-EDIT-1", "centre": "liverpool", "pathway": "axi-cel", "approval_date": TODAY.isoformat()},
        )
        assert answer.status_code == 201, answer.text
        proposal = api.post("/patients/E2E-EDIT-1/proposals").json()
        assert api.post(f"/proposals/{proposal['id']}/confirm", json={"option": 0}).status_code == 200
    apheresis = next(
        s for s in server.get("coordinator", "/patients/E2E-EDIT-1/timeline")["steps"] if s["step"] == "apheresis"
    )
    page = open_page("coordinator", "/ui/patients/E2E-EDIT-1")
    page.locator("#edit-referral").wait_for()
    page.get_by_text("Edit referral", exact=True).click()
    form = page.locator("#edit-referral-form")
    assert page.input_value("#edit-approval-date") == TODAY.isoformat()

    # an emptied approval date cannot be removed: said at the field, nothing changes
    page.fill("#edit-approval-date", "")
    form.get_by_role("button", name="Save referral").click()
    expect(page.locator("#edit-approval-date")).to_have_attribute("aria-invalid", "true")
    assert "cannot be removed" in form.locator(".field-error").inner_text()
    assert server.get("coordinator", "/patients/E2E-EDIT-1")["approval_date"] == TODAY.isoformat()

    # the patient cannot start before a day after the booked apheresis: saved, and the broken rule listed
    later = (date.fromisoformat(apheresis["first_day"]) + timedelta(days=7)).isoformat()
    page.fill("#edit-approval-date", TODAY.isoformat())
    page.fill("#edit-earliest-start", later)
    page.select_option("#edit-urgency", "soon")
    form.get_by_role("button", name="Save referral").click()
    message = page.locator("#edit-referral-message")
    expect(message).to_contain_text("Referral saved (earliest start, urgency)")
    with server.api("coordinator") as api:
        answer = api.patch("/patients/E2E-EDIT-1", json={"urgency": "soon"})  # the same edit again: the same rules
    violations = answer.json()["violations"]
    assert violations, "an earliest start after the booked apheresis should break a rule"
    shown = page.locator("#edit-violations li")
    assert [shown.nth(i).inner_text() for i in range(shown.count())] == violations
    assert "soon" in page.inner_text("#facts") and long_day(later) in page.inner_text("#facts")
    shoot(page, "referral-edit")


def test_lab_managers_see_no_referral_form_and_the_form_fits_a_tablet(open_page):
    page = open_page("lab_manager", "/ui/referral")
    page.locator("#no-referral").wait_for()
    assert page.locator("#referral-form").count() == 0
    assert page.locator("#site-header nav a", has_text="New referral").count() == 0

    page = open_page("coordinator", "/ui/referral", viewport=TABLET)
    page.locator("#referral-form").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the referral form is {overflow} px wider than a 768 px tablet"
