"""The diary (``api.diary``) on the small cohort, with the real solver: out of specification after
conditioning has started, answered by making the product again from the retained cells."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from api import diary, state, views
from api.db import PatientRow, StepRecord, make_engine, make_sessionmaker
from tests.builders import TODAY, assert_plan_valid


class Site:
    """What the database says now: current bookings by (patient, step), every step record by
    (patient, step) in order, each patient's pathway and products."""

    def __init__(self, settings):
        engine = make_engine(settings.database_url)
        try:
            with make_sessionmaker(engine)() as session:
                self.booked = {(b.patient_id, b.step): b for b in state.current_rows(session)}
                self.recorded: dict = {}
                for r in session.scalars(select(StepRecord).order_by(StepRecord.id)):
                    self.recorded.setdefault((r.patient_id, r.step), []).append(r)
                self.pathways = {p.id: p.pathway for p in session.scalars(select(PatientRow))}
                self.products = {p: views.product_views(session, p) for p in self.pathways}
        finally:
            engine.dispose()


def test_out_of_specification_during_conditioning_remade_keeps_the_doses_given_and_infuses_the_new_product(
    small_site,
):
    conditioning = min(
        (b for (p, step), b in Site(small_site).booked.items() if p.startswith("S-INH") and step == "conditioning"),
        key=lambda b: (b.first_day, b.patient_id),
    )
    patient, failed_on = conditioning.patient_id, conditioning.first_day + timedelta(days=1)
    oos = diary.OutOfSpecification(patient, failed_on, "CAR+ fraction below specification", choice="re-manufacture")

    def checked(settings, action):
        assert_plan_valid(settings)

    first_leg = diary.play(small_site, TODAY, failed_on, (oos,), observe=checked)
    site = Site(small_site)
    assert site.pathways[patient] == "in-house-car-t--re-manufacture"
    infusion = site.booked[(patient, "infusion")].first_day
    assert infusion > failed_on + timedelta(days=20)  # made again: manufacture, release testing, conditioning

    second_leg = diary.play(small_site, failed_on + timedelta(days=1), infusion, observe=checked)
    assert first_leg.refused == second_leg.refused == []
    site = Site(small_site)
    given = site.recorded[(patient, "conditioning")]
    # the doses given before the failure stay on record, then conditioning is given again, in full
    assert (given[0].outcome, given[0].first_day) == ("started", conditioning.first_day)
    assert [r.outcome for r in given[1:]] == ["started", "done"]
    assert given[1].first_day > failed_on
    first, again = site.products[patient]
    assert first["din"] == again["din"]  # the same donation's cells
    assert first["state"]["out_of_specification"] and not first["state"]["exceptional"]
    assert again["state"]["infused"] and date_of(again, "released") <= given[1].first_day
    assert [r.outcome for r in site.recorded[(patient, "infusion")]] == ["done"]


def date_of(product: dict, kind: str) -> date:
    return date.fromisoformat(next(e["day"] for e in product["custody"] if e["kind"] == kind))
