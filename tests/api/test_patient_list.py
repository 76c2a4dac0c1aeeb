"""GET /patients: a page at a time by id, filtered in the database (status, pathway, centre, the
start of an id), with each patient's next step and infusion day; on SQLite and PostgreSQL.

The small cohort (9 patients, planned) is there from the start; tests add referrals in bulk through
the service layer, and a second centre through the admin's site upload.
"""

from __future__ import annotations

from sqlalchemy import event

from tests.builders import TODAY, auth, refer, refer_many

ALL = 200  # the largest page


def page(client, **params) -> dict:
    response = client.get("/patients", params=params, headers=auth(client, "coordinator"))
    assert response.status_code == 200, response.text
    return response.json()


def walk(client, after: str | None = None, **params) -> tuple[list[dict], set[int]]:
    """Every page in turn from ``after``, following ``next_after``: the patients and the totals reported."""
    seen, totals = [], set()
    while True:
        answer = page(client, **params, **({"after": after} if after else {}))
        seen += answer["patients"]
        totals.add(answer["total"])
        after = answer["next_after"]
        if after is None:
            return seen, totals
        assert answer["patients"] and after == answer["patients"][-1]["id"]


def ids(patients: list[dict]) -> list[str]:
    return [p["id"] for p in patients]


def test_walking_the_pages_lists_every_patient_once_in_id_order(client, small_site):
    refer_many(small_site, [f"W-{i:03d}" for i in range(23)])
    everyone, totals = walk(client, limit=4)
    assert len(everyone) == 9 + 23 and totals == {9 + 23}
    assert ids(everyone) == sorted(ids(everyone))  # by id (byte order: the test database's collation is C)
    assert ids(everyone) == ids(page(client, limit=ALL)["patients"])  # pages agree with one big page
    # each entry is the patient as GET /patients/{id} shows them, plus the list's two columns
    one = everyone[0]
    alone = client.get(f"/patients/{one['id']}", headers=auth(client, "coordinator")).json()
    assert {k: v for k, v in one.items() if k not in ("next_step", "infusion")} == alone


def test_a_walk_stays_whole_when_patients_are_referred_meanwhile(client, small_site):
    refer_many(small_site, [f"W-{i:03d}" for i in range(6)])
    before = ids(page(client, limit=ALL)["patients"])
    first = page(client, limit=5)
    # referrals arriving mid-walk: one sorts before the cursor, one after
    refer(client, "A-NEW-1")
    refer(client, "Z-NEW-1")
    rest, _ = walk(client, first["next_after"], limit=5)
    walked = ids(first["patients"]) + ids(rest)
    assert len(walked) == len(set(walked)), "a patient was listed twice"
    assert set(before) <= set(walked), "a patient was skipped"
    assert "Z-NEW-1" in walked and "A-NEW-1" not in walked  # the cursor is an id, not a position


def test_the_largest_page_and_one_past_it(client, small_site):
    refer_many(small_site, [f"M-{i:03d}" for i in range(ALL + 5)])
    biggest = page(client, limit=ALL)
    assert len(biggest["patients"]) == ALL and biggest["total"] == ALL + 5 + 9
    assert biggest["next_after"] == biggest["patients"][-1]["id"]
    last = page(client, limit=ALL, after=biggest["next_after"])
    assert len(last["patients"]) == 14 and last["next_after"] is None

    for too_many in (ALL + 1, 0):
        response = client.get("/patients", params={"limit": too_many}, headers=auth(client, "coordinator"))
        assert response.status_code == 422
        [problem] = response.json()["detail"]
        assert problem["field"] == "query.limit" and str(too_many) not in problem["problem"]

    # the default page size is 50
    assert len(page(client)["patients"]) == 50


def test_a_cursor_past_the_last_patient_gives_an_empty_page(client, small_site):
    answer = page(client, after="ZZZ-after-everyone")
    assert answer == {"patients": [], "total": 9, "next_after": None}
    exact_end = page(client, after=ids(page(client)["patients"])[-1])
    assert exact_end["patients"] == [] and exact_end["next_after"] is None


def test_each_filter_is_applied_and_counted(client, small_site):
    refer_many(small_site, ["R-REF-1", "R-REF-2"], pathway="in-house-car-t")
    withdrawn = client.post(
        "/patients/S-AXI-2/withdraw", json={"reason": "moved away"}, headers=auth(client, "coordinator")
    )
    assert withdrawn.status_code == 200, withdrawn.text
    everyone = page(client, limit=ALL)["patients"]
    for name in ("status", "pathway", "centre"):
        for value in {p[name] for p in everyone}:
            expected = [p["id"] for p in everyone if p[name] == value]
            answer = page(client, limit=ALL, **{name: value})
            assert ids(answer["patients"]) == expected and answer["total"] == len(expected), (name, value)
    assert {p["status"] for p in everyone} >= {"scheduled", "referred", "withdrawn"}

    both = page(client, limit=ALL, status="referred", pathway="in-house-car-t")
    assert ids(both["patients"]) == ["R-REF-1", "R-REF-2"]
    assert page(client, pathway="no-such-pathway") == {"patients": [], "total": 0, "next_after": None}

    # the start of an id, in any letter case; _ is a character, not a wildcard
    assert ids(page(client, q="s-axi")["patients"]) == ["S-AXI-1", "S-AXI-2", "S-AXI-3"]
    assert ids(page(client, q="s-axi", status="scheduled")["patients"]) == ["S-AXI-1", "S-AXI-3"]
    assert page(client, q="S_")["total"] == 0
    assert ids(page(client, q="r-ref", limit=1)["patients"]) == ["R-REF-1"]
    assert page(client, q="r-ref", limit=1)["total"] == 2


def test_the_centre_filter_on_a_site_with_two_centres(client, small_site):
    admin = auth(client, "admin")
    site = client.get("/catalogue", headers=admin).json()["site"]
    site["centres"] = [*site["centres"], "wirral"]
    site["resources"] += [r | {"centre": "wirral"} for r in site["resources"] if r["centre"] == "liverpool"]
    response = client.put("/catalogue/site", json=site, headers=admin)
    assert response.status_code == 200, response.text
    refer_many(small_site, ["WIR-1", "WIR-2"], centre="wirral")
    assert ids(page(client, centre="wirral")["patients"]) == ["WIR-1", "WIR-2"]
    liverpool = page(client, centre="liverpool")
    assert liverpool["total"] == 9 and "WIR-1" not in ids(liverpool["patients"])


def test_each_patient_shows_the_next_step_and_the_infusion_day_of_their_timeline(client, small_site):
    coordinator = auth(client, "coordinator")
    refer(client, "R-NOTHING-YET")  # referred: nothing booked
    listed = page(client, limit=ALL)["patients"]
    assert any(p["next_step"] for p in listed) and any(p["next_step"] is None for p in listed)
    for p in listed:
        steps = client.get(f"/patients/{p['id']}/timeline", headers=coordinator).json()["steps"]
        booked = [s for s in steps if s["first_day"]]
        ahead = sorted((s for s in booked if s["last_day"] >= TODAY.isoformat()), key=lambda s: s["first_day"])
        infusions = sorted(s["first_day"] for s in booked if s["kind"] == "infusion")
        if ahead:
            assert p["next_step"]["step"] == ahead[0]["step"], p["id"]
            assert p["next_step"]["first_day"] == ahead[0]["first_day"]
        else:
            assert p["next_step"] is None
        assert p["infusion"] == (infusions[0] if infusions else None), p["id"]


def test_bad_paging_and_filter_values_are_refused_naming_the_field_without_echoing_them(client, small_site):
    cases = {
        "status": "discharged-R-77",
        "after": "R 77 bad",
        "q": "R%77",
        "pathway": "",
        "limit": "fifty-R-77",
    }
    for name, value in cases.items():
        response = client.get("/patients", params={name: value}, headers=auth(client, "coordinator"))
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"]
        assert [d["field"] for d in detail] == [f"query.{name}"]
        if value:
            assert value not in response.text


def test_a_page_costs_the_same_number_of_queries_whatever_its_size(client, small_site):
    refer_many(small_site, [f"Q-{i:03d}" for i in range(40)])
    engine = client.app.state.runtime.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for limit in (2, 45):
            statements.clear()
            assert len(page(client, limit=limit)["patients"]) == limit
            sizes[limit] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert sizes[2] == sizes[45], sizes  # no query per patient
