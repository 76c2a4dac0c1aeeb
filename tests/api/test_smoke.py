from tests.builders import auth


def test_a_new_installation_starts_from_an_empty_plan_and_the_import_is_the_next_version(client):
    versions = client.get("/plans", headers=auth(client, "coordinator")).json()
    assert [(v["id"], v["kind"]) for v in versions] == [(2, "import"), (1, "init")]
    empty = client.get("/plans/1", headers=auth(client, "coordinator")).json()
    assert empty["bookings"] == [] and not empty["current"]
    current = client.get("/plans/current", headers=auth(client, "coordinator")).json()
    booked = {b["patient"] for b in current["bookings"]}
    assert current["id"] == 2 and current["solver"]["stats"]["scheduled"] == len(booked) == 9
