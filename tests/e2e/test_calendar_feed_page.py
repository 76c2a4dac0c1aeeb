"""The "Calendar feed" section of a patient's page in headless Chromium, against a real server:
a coordinator makes a link, sees its address once and copies it, a calendar app (no sign-in) reads
the feed, and a revoked link opens nothing. A lab manager has no such section."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

PATIENT = "R-0003"


def test_a_coordinator_makes_copies_and_revokes_a_calendar_link(open_page, server):
    page = open_page("coordinator", f"/ui/patients/{PATIENT}")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    expect(page.locator("#calendar-feed")).to_be_visible()
    expect(page.locator("#calendar-feed-none")).to_be_visible()

    page.get_by_role("button", name="Create a link").click()
    address = page.locator("#calendar-feed-url")
    expect(address).to_have_value(re.compile(rf"^{re.escape(server.url)}/calendar/[A-Za-z0-9_-]{{43}}\.ics$"))
    url = address.input_value()
    feed = httpx.get(url, timeout=30)  # as a calendar app fetches it: no sign-in
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    steps = server.get("coordinator", f"/patients/{PATIENT}/timeline")["steps"]
    summaries = {line for line in feed.text.splitlines() if line.startswith("SUMMARY:")}
    assert summaries == {f"SUMMARY:{PATIENT}: {s['step'].replace('_', ' ')}" for s in steps if s["first_day"]}

    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#calendar-feed-message")).to_have_text("Feed address copied.")
    assert page.evaluate("navigator.clipboard.readText()") == url

    row = page.locator("#calendar-feed-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "active")
    row.get_by_role("button", name=re.compile(r"^Revoke link \d+$")).click()
    expect(row).to_have_attribute("data-state", "revoked")
    assert row.get_by_role("button").count() == 0
    assert httpx.get(url, timeout=30).status_code == 404

    page.reload()  # the address is never shown again
    expect(page.locator("#calendar-feed-table tbody tr")).to_have_count(1)
    assert page.locator("#calendar-feed-new").is_hidden()
    secret = url.rsplit("/", 1)[1].removesuffix(".ics")
    assert secret not in page.content()
    log = server.log.read_text()  # the server process's own output, its access log included
    assert "GET /calendar/{secret}.ics 200 " in log and "GET /calendar/{secret}.ics 404 " in log
    assert secret not in log


def test_a_lab_manager_has_no_calendar_feed_section(open_page):
    page = open_page("lab_manager", f"/ui/patients/{PATIENT}")
    page.wait_for_selector("#steps")
    page.wait_for_load_state("networkidle")
    assert page.locator("#calendar-feed").is_hidden()
