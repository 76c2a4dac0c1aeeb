"""Recording what happened from the patient page, in headless Chromium, on the recording site
(``conftest.recording_site``: the day GATE-AXI-1's and REC-AXI-1's conditioning is due, neither
product released).

The release gate refuses conditioning at the field and stores nothing; a product registered and
followed through its chain of custody to its release takes the conditioning off the worklist's at-risk
list; the re-plan a late product causes is shown, and the event names its cause.
"""

from __future__ import annotations

from datetime import date, timedelta

from playwright.sync_api import expect

from tests.builders import TABLET, din_text


def long_day(iso: str | date) -> str:
    return (date.fromisoformat(iso) if isinstance(iso, str) else iso).strftime("%a %d %b %Y")


def steps(server, patient: str) -> dict[str, dict]:
    return {s["step"]: s for s in server.get("coordinator", f"/patients/{patient}/timeline")["steps"]}


def custody(page, product: int, kind: str, day: date | str, **details) -> None:
    """Fill the product's next-event form and submit it (not waiting for the answer)."""
    form = page.locator(f"#custody-form-{product}")
    form.locator("select[name=kind]").select_option(kind)
    form.locator("input[name=day]").fill(day if isinstance(day, str) else day.isoformat())
    for name, value in details.items():
        form.locator(f"input[name={name}]").fill(value)
    form.get_by_role("button", name="Record event").click()


def recorded(page, product: int, kind: str) -> None:
    """Wait until the product's custody table lists ``kind`` (the page redraws from the answer)."""
    page.locator(f'#custody-{product} tr[data-kind="{kind}"]').wait_for()


def test_the_gate_refusing_conditioning_before_the_release_is_shown_at_the_field_and_nothing_is_recorded(
    open_page, recording_site, shoot
):
    server = recording_site.server
    before = server.get("coordinator", "/patients/GATE-AXI-1/timeline")
    booked = next(s for s in before["steps"] if s["step"] == "conditioning")
    assert booked["status"] == "due"
    page = open_page("coordinator", "/ui/patients/GATE-AXI-1", at=server)
    row = page.locator("#steps tr[data-step=conditioning]")
    row.wait_for()
    assert row.get_attribute("data-status") == "due" and "due" in row.locator(".status").inner_text()

    page.get_by_role("button", name="Record conditioning started").click()
    form = page.locator("#record-conditioning")
    expect(form.locator("select[name=outcome]")).to_have_value("started")
    expect(form.locator("input[name=first_day]")).to_have_value(booked["first_day"])
    form.get_by_role("button", name="Record started").click()

    outcome = page.locator("#record-conditioning-outcome")
    expect(outcome).to_have_attribute("aria-invalid", "true")
    said = form.locator(".field-error").inner_text()
    assert "conditioning cannot start" in said and "no product is recorded, so none is released at the centre" in said
    # beside the outcome it refuses, and named by the alert
    assert form.locator(".field-error").get_attribute("id") in outcome.get_attribute("aria-describedby")
    assert "Refused: conditioning cannot start" in form.locator("[role=alert]").inner_text()
    shoot(page, "recording-gate-refused")

    after = server.get("coordinator", "/patients/GATE-AXI-1/timeline")
    assert after["steps"] == before["steps"] and after["events"] == before["events"]  # nothing recorded
    assert row.get_attribute("data-status") == "due"


def test_recording_a_products_release_takes_the_conditioning_off_the_at_risk_list(open_page, recording_site, shoot):
    site, server = recording_site, recording_site.server
    booked = site.booked["REC-AXI-1"]
    collection = booked["apheresis"]["first_day"]
    at_risk = server.get("coordinator", "/worklist")["at_risk"]
    assert "REC-AXI-1" in {i["patient"] for i in at_risk}

    page = open_page("coordinator", "/ui/patients/REC-AXI-1", at=server)  # the collection is a bedside step
    apheresis = page.locator("#steps tr[data-step=apheresis]")
    apheresis.wait_for()
    # the apheresis was never recorded: overdue, flagged; recorded done on its booked day
    assert apheresis.get_attribute("data-status") == "overdue" and "overdue" in apheresis.get_attribute("class")
    page.get_by_role("button", name="Record apheresis done").click()
    form = page.locator("#record-apheresis")
    expect(form.locator("input[name=first_day]")).to_have_value(collection)
    expect(form.locator("input[name=last_day]")).to_have_value(collection)
    expect(form.locator("input[name=reason]")).to_be_hidden()  # only a step not done needs a reason
    form.get_by_role("button", name="Record done").click()
    expect(apheresis).to_have_attribute("data-status", "done")
    assert f"done {long_day(collection)}" in apheresis.locator(".recorded").inner_text()
    assert "apheresis recorded as done" in page.inner_text("#record-message")

    # register its product: a DIN with a wrong check character is refused at the DIN
    good = din_text("W000027000001")
    wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
    register = page.locator("#product-form")
    register.locator("input[name=din]").fill(wrong)
    register.locator("input[name=product_code]").fill("S1234")
    register.locator("input[name=chain_of_identity]").fill("COI-REC-1")
    register.locator("input[name=order_reference]").fill("ORD-REC-1")
    register.locator("input[name=bags]").fill("2")
    register.get_by_role("button", name="Register product").click()
    expect(page.locator("#product-form-din")).to_have_attribute("aria-invalid", "true")
    assert "check character" in register.locator(".field-error").inner_text()
    assert server.get("coordinator", "/patients/REC-AXI-1/products") == []
    register.locator("input[name=din]").fill(good)
    register.get_by_role("button", name="Register product").click()
    card = page.locator("article.product")
    card.wait_for()
    [product] = server.get("coordinator", "/patients/REC-AXI-1/products")
    pid = product["id"]
    assert product["din"] in card.inner_text() and "COI-REC-1" in card.inner_text() and "ORD-REC-1" in card.inner_text()

    # the chain of custody, in order; the next event is suggested
    expect(page.locator(f"#custody-form-{pid} select[name=kind]")).to_have_value("collected")
    custody(page, pid, "collected", collection)
    recorded(page, pid, "collected")
    expect(page.locator(f"#custody-form-{pid} select[name=kind]")).to_have_value("shipped")
    custody(page, pid, "shipped", collection)  # without the courier's reference: refused at its field
    expect(page.locator(f"#custody-form-{pid}-courier-reference")).to_have_attribute("aria-invalid", "true")
    assert "courier" in page.locator(f"#custody-form-{pid} .field-error").inner_text()
    custody(page, pid, "shipped", collection, courier_reference="CR-REC-1")
    recorded(page, pid, "shipped")
    custody(page, pid, "received", collection)
    recorded(page, pid, "received")
    custody(page, pid, "manufacture_started", collection)
    recorded(page, pid, "manufacture_started")

    # a release before the product is back is out of order: refused at the event's field
    custody(page, pid, "released", site.day)
    expect(page.locator(f"#custody-form-{pid}-kind")).to_have_attribute("aria-invalid", "true")
    assert "before received at the centre" in page.locator(f"#custody-form-{pid} .field-error").inner_text()

    # the manufacturer says it comes back today, a day after it was planned: the patient is re-planned
    planned_back = date.fromisoformat(booked["manufacture"]["last_day"]) + timedelta(days=1)
    assert planned_back < site.day
    custody(page, pid, "expected_back", site.day)
    recorded(page, pid, "expected_back")
    replan = page.locator("#record-message #replan")
    replan.wait_for()
    now = steps(server, "REC-AXI-1")
    assert now["conditioning"]["first_day"] > site.day.isoformat()  # never before the release
    # the answer's re-plan lists the conditioning on its new days
    moved = replan.locator("li[data-step=conditioning]")
    assert long_day(now["conditioning"]["first_day"]) in moved.inner_text()
    conditioning = page.locator("#steps tr[data-step=conditioning]")
    assert long_day(now["conditioning"]["first_day"]) in conditioning.locator(".dates").inner_text()
    # the event names its cause
    cause = f"product expected back on {long_day(site.day)}, 1 day later than planned ({long_day(planned_back)})"
    assert cause in page.locator("#events").inner_text()

    custody(page, pid, "shipped_back", site.day - timedelta(days=1))
    recorded(page, pid, "shipped_back")
    custody(page, pid, "received_at_centre", site.day, storage_location="LN2 tank 2")
    recorded(page, pid, "received_at_centre")
    custody(page, pid, "released", site.day)
    recorded(page, pid, "released")
    assert "released" in card.locator("h3 .badge").inner_text()
    assert f"Released{long_day(site.day)}" in card.locator("dl").inner_text().replace("\n", "")
    shoot(page, "recording-released")

    # off the at-risk list, in the API and on the worklist page
    assert "REC-AXI-1" not in {i["patient"] for i in server.get("coordinator", "/worklist")["at_risk"]}
    page.goto(f"{server.url}/ui/worklist?role=coordinator")
    page.wait_for_selector("#at-risk")
    assert page.locator('#at-risk tr[data-patient="REC-AXI-1"]').count() == 0
    assert page.locator('#at-risk tr[data-patient="GATE-AXI-1"]').count() == 1
    # moved by its late product, with the cause, until its new dates are confirmed with the patient
    assert cause in page.locator('#moved-list li[data-patient="REC-AXI-1"]').inner_text()


def test_the_patient_page_with_its_recording_forms_fits_a_tablet(open_page, recording_site):
    page = open_page("lab_manager", "/ui/patients/AWAIT-AXI-1", viewport=TABLET, at=recording_site.server)
    page.locator("#custody-form-1, article.product").first.wait_for()
    # a lab manager records the product's steps; the bedside ones are left to the coordinators
    conditioning = page.locator("#steps tr[data-step=conditioning]")
    assert "recorded by a coordinator" in conditioning.inner_text()
    assert conditioning.get_by_role("button").count() == 0
    page.get_by_role("button", name="Record release cancelled").click()
    page.locator("#record-release").wait_for()
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the patient page is {overflow} px wider than a 768 px tablet"


# -- the chain of identity at the bedside -----------------------------------------------------------
def test_an_infusion_with_another_patients_bag_is_refused_at_the_scanned_din_and_the_right_bag_is_recorded(
    open_page, infusion_site, shoot
):
    server, day, patient = infusion_site.server, infusion_site.day, infusion_site.patient
    din, other = din_text(infusion_site.din), din_text(infusion_site.other_din)
    page = open_page("coordinator", f"/ui/patients/{patient}", at=server)
    row = page.locator("#steps tr[data-step=infusion]")
    row.wait_for()
    assert row.get_attribute("data-status") == "due"
    page.get_by_role("button", name="Record infusion done").click()
    form = page.locator("#record-infusion")
    scanned = form.get_by_label("Scanned DIN (bag)")
    coi = form.get_by_label("Scanned chain of identity (cassette)")
    scanned.fill(other)
    coi.fill(infusion_site.chain_of_identity)
    form.get_by_role("button", name="Record done").click()
    expect(scanned).to_have_attribute("aria-invalid", "true")
    assert "not this patient's product: do not infuse" in form.locator(".field-error").inner_text()
    assert coi.get_attribute("aria-invalid") is None
    shoot(page, "recording-identity-mismatch")
    timeline = server.get("coordinator", f"/patients/{patient}/timeline")
    assert next(s for s in timeline["steps"] if s["step"] == "infusion")["recorded"] is None
    refused = server.get("admin", "/audit", entity="patient", entity_id=patient)
    assert "infusion.identity_mismatch" in [entry["action"] for entry in refused]  # the refusal is audited

    scanned.fill(din)
    form.get_by_role("button", name="Record done").click()
    expect(row).to_have_attribute("data-status", "done")
    assert f"done {long_day(day)}" in row.locator(".recorded").inner_text()
    assert "infused" in page.locator("article.product h3 .badge").inner_text()
    assert page.locator('article.product tr[data-kind="infused"]').count() == 1


def test_a_missed_step_needs_a_reason_at_its_field_and_its_event_names_the_cause(open_page, recording_site):
    site, server = recording_site, recording_site.server
    booked = site.booked["MISS-AXI-1"]["apheresis"]
    assert booked["first_day"] < site.day.isoformat()
    page = open_page("coordinator", "/ui/patients/MISS-AXI-1", at=server)
    row = page.locator("#steps tr[data-step=apheresis]")
    row.wait_for()
    assert row.get_attribute("data-status") == "overdue"
    page.get_by_role("button", name="Record apheresis missed").click()
    form = page.locator("#record-apheresis")
    for name in ("first_day", "last_day"):  # a step not done has no days of its own
        expect(form.locator(f"input[name={name}]")).to_be_hidden()
    form.get_by_role("button", name="Record missed").click()
    reason = form.locator("input[name=reason]")
    expect(reason).to_have_attribute("aria-invalid", "true")
    assert "say why the step was missed" in form.locator(".field-error").inner_text()
    assert server.get("coordinator", "/patients/MISS-AXI-1/timeline")["events"][-1]["kind"] == "confirmation"

    reason.fill("patient admitted with an infection")
    form.get_by_role("button", name="Record missed").click()
    page.locator("#record-message #replan").wait_for()
    timeline = server.get("coordinator", "/patients/MISS-AXI-1/timeline")
    apheresis = next(s for s in timeline["steps"] if s["step"] == "apheresis")
    assert apheresis["first_day"] > site.day.isoformat()  # booked again, after today
    assert long_day(apheresis["first_day"]) in row.locator(".dates").inner_text()
    assert long_day(apheresis["first_day"]) in page.inner_text("#replan li[data-step=apheresis]")
    cause = f"apheresis missed (on {long_day(booked['first_day'])}): patient admitted with an infection"
    event = page.locator("#events tbody tr", has_text="step missed")
    assert f"Cause: {cause}" in event.inner_text()
