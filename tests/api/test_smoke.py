from tests.api.conftest import auth


def test_small_site_plan_is_current(client):
    current = client.get("/plans/current", headers=auth(client, "coordinator")).json()
    assert current["id"] == 1
    assert {b["patient"] for b in current["bookings"]} >= {"S-AXI-1", "S-ALLO-1"}
