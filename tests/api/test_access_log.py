"""The access log names route templates, never the identifiers in a path."""

from __future__ import annotations

import logging

from tests.builders import auth

NHS_LIKE = "9434765919"


def test_the_access_log_shows_route_templates_not_identifiers(client, caplog):
    with caplog.at_level(logging.INFO, logger="vein2vein.access"):
        found = client.get("/patients/S-AXI-1/timeline", headers=auth(client, "coordinator"))
        missing = client.get(f"/patients/{NHS_LIKE}", headers=auth(client, "coordinator"))
        unknown = client.get(f"/no-such-page/{NHS_LIKE}")
    assert (found.status_code, unknown.status_code) == (200, 404) and missing.status_code in (404, 422)
    lines = [r.getMessage() for r in caplog.records if r.name == "vein2vein.access"]
    assert any(line.startswith("GET /patients/{patient_id}/timeline 200 ") for line in lines), lines
    assert any(line.startswith("GET /patients/{patient_id} ") for line in lines), lines
    assert any(line.startswith("GET <no route> 404 ") for line in lines), lines
    assert not any("S-AXI-1" in line or NHS_LIKE in line for line in lines), lines
