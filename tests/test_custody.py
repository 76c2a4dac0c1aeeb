"""A product's chain of custody, its state, and the conditioning and infusion gates (pathway/custody.py).

Every rule of the order of events has a case that may be recorded and one that may not, in
``ALLOWED`` and ``REFUSED`` under the same name. The gates use the real catalogue templates.
Days: Mon 04 Jan 2027 is the collection; "today" is Mon 15 Feb 2027.
"""

from __future__ import annotations

from datetime import date

import pytest

from pathway.catalogue import load_catalogue
from pathway.custody import (
    CustodyKind,
    CustodyStep,
    conditioning_gate,
    graft_age_limit_days,
    infusion_gate,
    next_problem,
    product_state,
)

D = date.fromisoformat
K = CustodyKind
TODAY = D("2027-02-15")
CATALOGUE = load_catalogue()
AXI_CEL = CATALOGUE.template("axi-cel")
IN_HOUSE = CATALOGUE.template("in-house-car-t")
ASCT = CATALOGUE.template("asct-beam")
ALLO_FRESH = CATALOGUE.template("allo-sct-fresh")


def event(kind: CustodyKind, day: str, **details: str) -> CustodyStep:
    return CustodyStep(kind, D(day), details)


# A commercial CAR-T product: shipped to the manufacturer and back.
SHIPPED_AWAY = [
    event(K.collected, "2027-01-04"),
    event(K.shipped, "2027-01-04", courier_reference="WC-1"),
    event(K.received, "2027-01-05"),
    event(K.manufacture_started, "2027-01-06"),
    event(K.expected_back, "2027-02-01"),
    event(K.shipped_back, "2027-01-29"),
    event(K.received_at_centre, "2027-01-30", storage_location="LN2 tank 2"),
    event(K.released, "2027-02-01"),
    event(K.issued, "2027-02-08"),
    event(K.infused, "2027-02-08"),
]
# A product made at the local lab: received there and released without being shipped.
MADE_LOCALLY = [
    event(K.collected, "2027-01-04"),
    event(K.received, "2027-01-04"),
    event(K.manufacture_started, "2027-01-05"),
    event(K.released, "2027-01-25"),
]
OUT_OF_SPECIFICATION = [
    *SHIPPED_AWAY[:7],
    event(K.out_of_specification, "2027-02-01", reason="viability below the label's limit"),
]
EXCEPTIONALLY_RELEASED = [
    *OUT_OF_SPECIFICATION,
    event(K.exceptional_release, "2027-02-02", clinician="consultant haematologist", reason="no other option"),
]


def before(history: list[CustodyStep], kind: CustodyKind) -> list[CustodyStep]:
    """The events recorded before the first ``kind``."""
    return history[: [step.kind for step in history].index(kind)]


COURIER = {"courier_reference": "WC-1"}
STORED = {"storage_location": "LN2 tank 2"}
REASON = {"reason": "bag damaged in transit"}

# rule -> (history, kind, day, details) that may be recorded next
ALLOWED = {
    "first event is collected": ([], K.collected, "2027-01-04", {}),
    "nothing after infused or lost": (before(SHIPPED_AWAY, K.infused), K.lost, "2027-02-08", REASON),
    "each kind once, expected back many times": (
        before(SHIPPED_AWAY, K.shipped_back),
        K.expected_back,
        "2027-02-03",
        {},
    ),
    "expected back only after received": (before(SHIPPED_AWAY, K.expected_back), K.expected_back, "2027-02-01", {}),
    "expected back only before shipped back": (before(SHIPPED_AWAY, K.shipped_back), K.expected_back, "2027-02-01", {}),
    "shipped after collected": (SHIPPED_AWAY[:1], K.shipped, "2027-01-04", COURIER),
    "received after collected": (SHIPPED_AWAY[:1], K.received, "2027-01-04", {}),
    "manufacture started after received": (SHIPPED_AWAY[:3], K.manufacture_started, "2027-01-06", {}),
    "shipped back after received": (SHIPPED_AWAY[:4], K.shipped_back, "2027-01-29", {}),
    "received at the centre after shipped back": (SHIPPED_AWAY[:6], K.received_at_centre, "2027-01-30", STORED),
    "released at the centre when shipped": (SHIPPED_AWAY[:7], K.released, "2027-02-01", {}),
    "released after received when never shipped": (MADE_LOCALLY[:3], K.released, "2027-01-25", {}),
    "out of specification until the issue": (SHIPPED_AWAY[:7], K.out_of_specification, "2027-02-01", REASON),
    "exceptional release only after out of specification": (
        OUT_OF_SPECIFICATION,
        K.exceptional_release,
        "2027-02-02",
        {"clinician": "Dr A. Consultant", "reason": "no other option"},
    ),
    "after out of specification only exceptional release or lost": (
        OUT_OF_SPECIFICATION,
        K.lost,
        "2027-02-02",
        REASON,
    ),
    "issued after released": (SHIPPED_AWAY[:8], K.issued, "2027-02-08", {}),
    "issued after exceptional release": (EXCEPTIONALLY_RELEASED, K.issued, "2027-02-08", {}),
    "infused after issued": (SHIPPED_AWAY[:9], K.infused, "2027-02-08", {}),
    "lost any time after collected": (SHIPPED_AWAY[:1], K.lost, "2027-01-04", REASON),
    "not in the future": (SHIPPED_AWAY[:8], K.issued, "2027-02-15", {}),
    "expected back may be in the future": (SHIPPED_AWAY[:4], K.expected_back, "2027-03-01", {}),
    "not before the latest event": (SHIPPED_AWAY[:3], K.manufacture_started, "2027-01-05", {}),
    "expected back days are left out of the order": (SHIPPED_AWAY[:5], K.shipped_back, "2027-01-29", {}),
    "shipped needs the courier reference": (SHIPPED_AWAY[:1], K.shipped, "2027-01-04", COURIER),
    "received at the centre needs the storage location": (
        SHIPPED_AWAY[:6],
        K.received_at_centre,
        "2027-01-30",
        STORED,
    ),
    "lost needs a reason": (SHIPPED_AWAY[:3], K.lost, "2027-01-05", REASON),
}

# rule -> (history, kind, day, details) that may not, and the (field, problem) reported
REFUSED = {
    "first event is collected": (
        ([], K.shipped, "2027-01-04", COURIER),
        ("kind", "shipped cannot be recorded before collected: a product's first event is its collection"),
    ),
    "nothing after infused or lost": (
        (SHIPPED_AWAY, K.lost, "2027-02-08", REASON),
        ("kind", "the product is recorded as infused: nothing can be recorded after that"),
    ),
    "each kind once, expected back many times": (
        (SHIPPED_AWAY[:2], K.shipped, "2027-01-04", COURIER),
        ("kind", "shipped is already recorded for this product"),
    ),
    "expected back only after received": (
        (SHIPPED_AWAY[:2], K.expected_back, "2027-02-01", {}),
        ("kind", "expected back cannot be recorded before received"),
    ),
    "expected back only before shipped back": (
        (SHIPPED_AWAY[:6], K.expected_back, "2027-02-01", {}),
        ("kind", "expected back cannot be recorded after shipped back"),
    ),
    "shipped after collected": (
        ([], K.shipped, "2027-01-04", COURIER),
        ("kind", "shipped cannot be recorded before collected: a product's first event is its collection"),
    ),
    "received after collected": (
        ([], K.received, "2027-01-04", {}),
        ("kind", "received cannot be recorded before collected: a product's first event is its collection"),
    ),
    "manufacture started after received": (
        (SHIPPED_AWAY[:2], K.manufacture_started, "2027-01-06", {}),
        ("kind", "manufacture started cannot be recorded before received"),
    ),
    "shipped back after received": (
        (SHIPPED_AWAY[:2], K.shipped_back, "2027-01-29", {}),
        ("kind", "shipped back cannot be recorded before received"),
    ),
    "received at the centre after shipped back": (
        (SHIPPED_AWAY[:5], K.received_at_centre, "2027-01-30", STORED),
        ("kind", "received at the centre cannot be recorded before shipped back"),
    ),
    "released at the centre when shipped": (
        (SHIPPED_AWAY[:6], K.released, "2027-02-01", {}),
        ("kind", "released cannot be recorded before received at the centre"),
    ),
    "released after received when never shipped": (
        (MADE_LOCALLY[:1], K.released, "2027-01-25", {}),
        ("kind", "released cannot be recorded before received"),
    ),
    "out of specification until the issue": (
        (SHIPPED_AWAY[:9], K.out_of_specification, "2027-02-08", REASON),
        ("kind", "out of specification cannot be recorded after issued"),
    ),
    "exceptional release only after out of specification": (
        (SHIPPED_AWAY[:7], K.exceptional_release, "2027-02-02", {"clinician": "Dr A. Consultant", "reason": "x"}),
        ("kind", "exceptional release cannot be recorded before out of specification"),
    ),
    "after out of specification only exceptional release or lost": (
        (OUT_OF_SPECIFICATION, K.released, "2027-02-02", {}),
        ("kind", "after out of specification only an exceptional release or the loss can be recorded"),
    ),
    "issued after released": (
        (SHIPPED_AWAY[:7], K.issued, "2027-02-08", {}),
        ("kind", "issued cannot be recorded before released or exceptional release"),
    ),
    "issued after exceptional release": (
        (OUT_OF_SPECIFICATION, K.issued, "2027-02-08", {}),
        ("kind", "issued cannot be recorded before exceptional release"),
    ),
    "infused after issued": (
        (SHIPPED_AWAY[:8], K.infused, "2027-02-08", {}),
        ("kind", "infused cannot be recorded before issued"),
    ),
    "lost any time after collected": (
        ([], K.lost, "2027-01-04", REASON),
        ("kind", "lost cannot be recorded before collected: a product's first event is its collection"),
    ),
    "not in the future": (
        (SHIPPED_AWAY[:8], K.issued, "2027-02-16", {}),
        ("day", "the day is in the future: issued can be recorded once it has happened"),
    ),
    "expected back may be in the future": (
        (SHIPPED_AWAY[:4], K.expected_back, "2027-01-05", {}),
        ("day", "expected back on that day would come before manufacture started on Wed 06 Jan 2027"),
    ),
    "not before the latest event": (
        (SHIPPED_AWAY[:3], K.manufacture_started, "2027-01-04", {}),
        ("day", "manufacture started on that day would come before received on Tue 05 Jan 2027"),
    ),
    "expected back days are left out of the order": (
        (SHIPPED_AWAY[:5], K.shipped_back, "2027-01-05", {}),
        ("day", "shipped back on that day would come before manufacture started on Wed 06 Jan 2027"),
    ),
    "shipped needs the courier reference": (
        (SHIPPED_AWAY[:1], K.shipped, "2027-01-04", {"courier_reference": "  "}),
        ("details.courier_reference", "shipped needs the courier's reference"),
    ),
    "received at the centre needs the storage location": (
        (SHIPPED_AWAY[:6], K.received_at_centre, "2027-01-30", {}),
        ("details.storage_location", "received at the centre needs the storage location"),
    ),
    "lost needs a reason": (
        (SHIPPED_AWAY[:3], K.lost, "2027-01-05", {}),
        ("details.reason", "lost needs a reason"),
    ),
}


def test_the_kinds_are_those_the_database_accepts_in_the_same_order():
    from api.db import CUSTODY_KINDS

    assert tuple(kind.value for kind in CustodyKind) == CUSTODY_KINDS


def test_every_rule_has_a_case_allowed_and_a_case_refused():
    assert set(ALLOWED) == set(REFUSED)


@pytest.mark.parametrize("rule", sorted(ALLOWED))
def test_an_event_the_rule_allows_can_be_recorded(rule):
    history, kind, day, details = ALLOWED[rule]
    assert next_problem(history, kind, D(day), details, TODAY) is None


@pytest.mark.parametrize("rule", sorted(REFUSED))
def test_an_event_the_rule_refuses_is_refused_with_its_reason(rule):
    (history, kind, day, details), expected = REFUSED[rule]
    assert next_problem(history, kind, D(day), details, TODAY) == expected


@pytest.mark.parametrize(
    ("details", "field", "problem"),
    [
        ({"reason": "no other option"}, "details.clinician", "the authorising clinician's name or role"),
        ({"clinician": "Dr A. Consultant"}, "details.reason", "exceptional release needs a reason"),
    ],
)
def test_an_exceptional_release_needs_the_authorising_clinician_and_a_reason(details, field, problem):
    found = next_problem(OUT_OF_SPECIFICATION, K.exceptional_release, D("2027-02-02"), details, TODAY)
    assert found is not None and found[0] == field and problem in found[1]


def test_out_of_specification_needs_a_reason():
    found = next_problem(SHIPPED_AWAY[:7], K.out_of_specification, D("2027-02-01"), {}, TODAY)
    assert found == ("details.reason", "out of specification needs a reason")


def test_a_whole_commercial_chain_and_a_whole_local_chain_can_be_recorded_in_order():
    for chain in (SHIPPED_AWAY, MADE_LOCALLY, EXCEPTIONALLY_RELEASED):
        for i, step in enumerate(chain):
            assert next_problem(chain[:i], step.kind, step.day, step.details, TODAY) is None, step.kind


# -- the state of a product ------------------------------------------------------------------------
def test_a_product_away_is_awaited_and_says_when_it_is_expected_back():
    state = product_state(SHIPPED_AWAY[:6])
    assert (state.last, state.collected_on, state.released_on) == (K.shipped_back, D("2027-01-04"), None)
    assert state.awaited and state.expected_on == D("2027-02-01")
    assert state.describe() == "shipped back on Fri 29 Jan 2027; expected back on Mon 01 Feb 2027"


def test_the_latest_recorded_expected_back_day_counts_even_when_it_is_earlier():
    revised = [*SHIPPED_AWAY[:5], event(K.expected_back, "2027-01-28")]
    assert product_state(revised).expected_on == D("2027-01-28")


def test_a_product_back_at_the_centre_is_no_longer_expected():
    state = product_state(SHIPPED_AWAY[:7])
    assert state.expected_on is None and state.awaited
    assert state.describe() == "received at the centre on Sat 30 Jan 2027"


def test_a_released_product_is_available_and_no_longer_awaited():
    state = product_state(SHIPPED_AWAY[:8])
    assert state.released_on == D("2027-02-01") and state.available and not state.awaited


def test_a_product_lost_after_its_release_has_no_release_day():
    state = product_state([*SHIPPED_AWAY[:8], event(K.lost, "2027-02-03", reason="bag damaged")])
    assert (state.released_on, state.lost, state.available, state.awaited) == (None, True, False, False)
    assert state.describe() == "lost on Wed 03 Feb 2027"


def test_an_exceptionally_released_product_counts_as_released_and_says_so():
    state = product_state(EXCEPTIONALLY_RELEASED)
    assert (state.released_on, state.exceptional, state.out_of_specification) == (D("2027-02-02"), True, True)
    assert state.available
    assert state.describe() == "released by exception on Tue 02 Feb 2027"


def test_an_out_of_specification_product_is_neither_awaited_nor_available():
    state = product_state(OUT_OF_SPECIFICATION)
    assert (state.out_of_specification, state.awaited, state.available) == (True, False, False)


def test_an_infused_product_is_no_longer_available():
    state = product_state(SHIPPED_AWAY)
    assert (state.last, state.infused, state.available) == (K.infused, True, False)


def test_a_product_with_no_events_says_so():
    state = product_state([])
    assert (state.last, state.awaited) == (None, False) and state.describe() == "no event recorded"


# -- the conditioning gate -----------------------------------------------------------------------
RELEASED = product_state(SHIPPED_AWAY[:8])
AWAY = product_state(SHIPPED_AWAY[:6])


@pytest.mark.parametrize(
    ("template", "chain"),
    [(AXI_CEL, SHIPPED_AWAY[:8]), (IN_HOUSE, MADE_LOCALLY), (ASCT, MADE_LOCALLY[:2] + MADE_LOCALLY[3:])],
    ids=["axi-cel", "in-house-car-t", "asct-beam"],
)
def test_conditioning_may_start_once_a_product_is_released_at_the_centre(template, chain):
    assert conditioning_gate(template, [product_state(chain)]) is None


@pytest.mark.parametrize(
    ("template", "chain", "reason"),
    [
        (
            AXI_CEL,
            SHIPPED_AWAY[:6],
            "the product is not released at the centre: it was last recorded as shipped back on Fri 29 Jan 2027; "
            "expected back on Mon 01 Feb 2027",
        ),
        (
            IN_HOUSE,
            MADE_LOCALLY[:3],
            "the product is not released at the centre: it was last recorded as manufacture started on Tue 05 Jan 2027",
        ),
        (ASCT, MADE_LOCALLY[:2], "the product is not released at the centre: it was last recorded as received on"),
    ],
    ids=["axi-cel", "in-house-car-t", "asct-beam"],
)
def test_conditioning_may_not_start_before_a_product_is_released_at_the_centre(template, chain, reason):
    assert conditioning_gate(template, [product_state(chain)]).startswith(reason)


def test_conditioning_may_not_start_with_no_product_recorded():
    assert conditioning_gate(AXI_CEL, []) == "no product is recorded, so none is released at the centre"


def test_conditioning_may_start_on_an_exceptional_release():
    assert conditioning_gate(AXI_CEL, [product_state(EXCEPTIONALLY_RELEASED)]) is None


def test_conditioning_may_not_start_on_an_out_of_specification_product_not_released_by_exception():
    reason = conditioning_gate(AXI_CEL, [product_state(OUT_OF_SPECIFICATION)])
    assert reason.endswith("last recorded as found out of specification on Mon 01 Feb 2027")


def test_conditioning_may_not_start_on_a_released_product_since_lost():
    lost = product_state([*SHIPPED_AWAY[:8], event(K.lost, "2027-02-03", reason="bag damaged")])
    assert conditioning_gate(AXI_CEL, [lost]).endswith("last recorded as lost on Wed 03 Feb 2027")


def test_conditioning_may_start_on_a_second_collection_released_after_the_first_was_lost():
    first = product_state([*SHIPPED_AWAY[:3], event(K.lost, "2027-01-06", reason="manufacture failed")])
    assert conditioning_gate(AXI_CEL, [first, RELEASED]) is None


def test_a_refused_gate_describes_the_product_still_in_play_rather_than_a_lost_one():
    # The first product is recorded as lost after the second was shipped back: the page must
    # say where the second one is, since that is the product conditioning waits for.
    first = product_state([*SHIPPED_AWAY[:3], event(K.lost, "2027-02-03", reason="bag damaged")])
    assert conditioning_gate(AXI_CEL, [first, AWAY]).endswith(
        "shipped back on Fri 29 Jan 2027; expected back on Mon 01 Feb 2027"
    )


def test_a_fresh_graft_has_no_conditioning_gate():
    assert conditioning_gate(ALLO_FRESH, []) is None


# -- the infusion gate ---------------------------------------------------------------------------
GRAFT = product_state([event(K.collected, "2027-03-01")])


def test_the_fresh_graft_age_limit_is_read_from_the_catalogue():
    # allo-sct-fresh: infusion lag after donor_collection (2 days) anchor end, max 1: day 3 from its first day.
    assert (graft_age_limit_days(ALLO_FRESH), graft_age_limit_days(AXI_CEL)) == (3, None)


def test_a_fresh_graft_may_be_infused_within_its_age_limit():
    assert infusion_gate(ALLO_FRESH, [GRAFT], D("2027-03-01")) is None
    assert infusion_gate(ALLO_FRESH, [GRAFT], D("2027-03-04")) is None


def test_a_fresh_graft_may_not_be_infused_past_its_age_limit():
    assert infusion_gate(ALLO_FRESH, [GRAFT], D("2027-03-05")) == (
        "the graft collected on Mon 01 Mar 2027 would be 4 days old at the infusion; the limit is 3 days"
    )


def test_the_oldest_bag_of_a_fresh_graft_sets_its_age():
    second_day = product_state([event(K.collected, "2027-03-02")])
    assert infusion_gate(ALLO_FRESH, [GRAFT, second_day], D("2027-03-05")) is not None
    assert infusion_gate(ALLO_FRESH, [second_day], D("2027-03-05")) is None


def test_a_fresh_graft_may_not_be_infused_before_it_is_collected():
    assert infusion_gate(ALLO_FRESH, [GRAFT], D("2027-02-28")) == (
        "the infusion would come before the graft is collected on Mon 01 Mar 2027"
    )


def test_a_fresh_graft_may_not_be_infused_when_none_is_collected_or_it_is_lost():
    lost = product_state([event(K.collected, "2027-03-01"), event(K.lost, "2027-03-01", reason="bag leaked")])
    for products in ([], [lost]):
        assert (
            infusion_gate(ALLO_FRESH, products, D("2027-03-02")) == "no graft is recorded as collected (and not lost)"
        )


@pytest.mark.parametrize(
    ("template", "chain"),
    [(AXI_CEL, SHIPPED_AWAY[:9]), (IN_HOUSE, MADE_LOCALLY), (ASCT, EXCEPTIONALLY_RELEASED)],
    ids=["axi-cel", "in-house-car-t", "asct-beam"],
)
def test_a_stored_or_manufactured_product_may_be_infused_once_released(template, chain):
    assert infusion_gate(template, [product_state(chain)], D("2027-02-08")) is None


@pytest.mark.parametrize("template", [AXI_CEL, IN_HOUSE, ASCT], ids=["axi-cel", "in-house-car-t", "asct-beam"])
def test_a_stored_or_manufactured_product_may_not_be_infused_before_its_release(template):
    assert infusion_gate(template, [AWAY], D("2027-02-08")).startswith("the product is not released at the centre")


def test_a_late_result_after_the_release_withdraws_the_release_until_an_exceptional_one():
    late = [*SHIPPED_AWAY[:8], event(K.out_of_specification, "2027-02-03", reason="sterility culture positive")]
    assert next_problem(SHIPPED_AWAY[:8], K.out_of_specification, D("2027-02-03"), REASON, TODAY) is None
    state = product_state(late)
    assert (state.released_on, state.available, state.out_of_specification) == (None, False, True)
    refused = next_problem(late, K.issued, D("2027-02-04"), {}, TODAY)
    assert refused == ("kind", "issued cannot be recorded before exceptional release")
    exceptional = [*late, event(K.exceptional_release, "2027-02-04", clinician="Dr A. Consultant", reason="x")]
    assert product_state(exceptional).released_on == D("2027-02-04")
    assert next_problem(exceptional, K.issued, D("2027-02-05"), {}, TODAY) is None


def test_a_donors_graft_is_received_at_the_centre_straight_from_the_courier():
    donor = [event(K.collected, "2027-01-04"), event(K.shipped, "2027-01-04", courier_reference="WC-2")]
    assert next_problem(donor, K.received_at_centre, D("2027-01-05"), {"storage_location": "lab"}, TODAY) is None
    assert next_problem(donor[:1], K.received_at_centre, D("2027-01-05"), {"storage_location": "lab"}, TODAY) == (
        "kind",
        "received at the centre cannot be recorded before shipped",
    )


def test_conditioning_may_not_be_recorded_on_a_day_before_its_product_was_released():
    axi = CATALOGUE.template("axi-cel")
    released = product_state(SHIPPED_AWAY[:8])  # released on 1 Feb 2027
    assert conditioning_gate(axi, [released], D("2027-02-01")) is None
    refused = conditioning_gate(axi, [released], D("2027-01-31"))
    assert refused == "the product was released on Mon 01 Feb 2027, after Sun 31 Jan 2027"


def test_the_manufacturer_may_find_a_product_out_of_specification_before_shipping_it_back():
    at_manufacturer = SHIPPED_AWAY[:4]
    assert next_problem(at_manufacturer, K.out_of_specification, D("2027-01-20"), REASON, TODAY) is None
