"""Plans worked out by hand, for the rule checker's tests and the label rules' tests.

Every date here follows pathway/data/pathways.yaml and the default site; no
solver code is involved (see the comments beside each hand-worked plan).
"""

from __future__ import annotations

from datetime import date, timedelta

from pathway.catalogue import Catalogue, load_catalogue, parse_catalogue
from pathway.cohort import Problem, parse_cohort
from pathway.plan import Booking, Plan, Unschedulable
from pathway.rules import Violation

D = date.fromisoformat


def patient(pid: str = "P001", pathway: str = "axi-cel", approval: str = "2027-01-04", **extra) -> dict:
    return {"id": pid, "centre": "liverpool", "pathway": pathway, "approval_date": approval, **extra}


def make_problem(*patients: dict, capacity_changes: tuple = (), catalogue: Catalogue | None = None) -> Problem:
    return parse_cohort(
        {
            "name": "rules-test",
            "site": "default",
            "horizon": {"start": "2026-01-01", "days": 800},
            "capacity_changes": list(capacity_changes),
            "patients": list(patients) or [patient()],
        },
        catalogue=catalogue,
    )


def edited_catalogue(template_id: str, edit) -> Catalogue:
    """The default catalogue with one template changed by ``edit(raw_template_dict)``."""
    raw = load_catalogue().model_dump(mode="json")
    edit(next(t for t in raw["templates"] if t["id"] == template_id))
    return parse_catalogue(raw)


def bookings_from_starts(problem: Problem, pid: str, starts: dict[str, date]) -> list[Booking]:
    """One booking per step from hand-chosen start days; lengths are the patient's resolved durations."""
    out = []
    for ps in problem.steps(problem.patient(pid)):
        first = starts[ps.name]
        last = first + timedelta(days=ps.duration - 1)
        out.append(Booking(patient=pid, step=ps.name, first_day=first, last_day=last))
    return out


def fresh_car_t(
    problem: Problem, pid: str, apheresis: date, release: date, conditioning: date, infusion: date
) -> list[Booking]:
    """axi-cel / brexu-cel: manufacture starts on the apheresis day; inpatient and high-risk window on infusion day."""
    return bookings_from_starts(
        problem,
        pid,
        {
            "apheresis": apheresis,
            "manufacture": apheresis,
            "release": release,
            "conditioning": conditioning,
            "infusion": infusion,
            "inpatient": infusion,
            "high_risk_window": infusion,
        },
    )


def asct_mel200(problem: Problem, pid: str, harvest: date, conditioning: date) -> list[Booking]:
    """G-CSF on the 4 days before the harvest, cryopreservation on the harvest day, Mel200 on day -2."""
    return bookings_from_starts(
        problem,
        pid,
        {
            "mobilisation": harvest - timedelta(days=4),
            "harvest": harvest,
            "cryopreservation": harvest,
            "conditioning": conditioning,
            "reinfusion": conditioning + timedelta(days=2),
            "inpatient": conditioning,
        },
    )


def allo_fresh(problem: Problem, pid: str, conditioning: date, collection: date, infusion: date) -> list[Booking]:
    return bookings_from_starts(
        problem,
        pid,
        {
            "donor_booking": D("2027-01-04"),
            "conditioning": conditioning,
            "donor_collection": collection,
            "infusion": infusion,
            "inpatient": conditioning,
        },
    )


# Hand-worked axi-cel plan for a patient approved Mon 04 Jan 2027:
#   apheresis    Mon 04 Jan            fresh_shipment_day (Mon-Thu), Fri 01 Jan was New Year's Day
#   manufacture  Mon 04 Jan - Sun 31 Jan  28 days, shipped on the collection day (lag start 0..0)
#   release      Mon 01 Feb            working day, 0 days after manufacture ends (0..4)
#   conditioning Wed 03 - Fri 05 Feb   day-unit days; starts 1 day after release ends (0..60), after release
#   infusion     Mon 08 Feb            day 0 = 2 days after LD ends (2..14); Mon-Thu, no bank holiday near
#   inpatient    Mon 08 - Wed 17 Feb;  high_risk_window Mon 08 - Mon 22 Feb
def car_t_dates(apheresis: str, release: str, conditioning: str, infusion: str) -> dict[str, date]:
    return dict(apheresis=D(apheresis), release=D(release), conditioning=D(conditioning), infusion=D(infusion))


AXI_CEL = car_t_dates("2027-01-04", "2027-02-01", "2027-02-03", "2027-02-08")

# Hand-worked asct-mel200 plan, approved Mon 04 Jan 2027: G-CSF Mon 04 - Thu 07 Jan, harvest and
# cryopreservation Fri 08 Jan, conditioning (Mel200) Mon 11 Jan (>= 1 day after cryo ends Sat 09 Jan,
# first working day), reinfusion Wed 13 Jan (1 day after conditioning ends), inpatient 11 - 26 Jan.
ASCT = dict(harvest=D("2027-01-08"), conditioning=D("2027-01-11"))

# Hand-worked allo-sct-fresh plan, approved Mon 04 Jan 2027: donor booking 04 - 31 Jan (28 days),
# Flu/Bu4 Mon 01 - Thu 04 Feb, donor collection Thu 04 - Fri 05 Feb (starts 1 day before conditioning
# ends), infusion Fri 05 Feb (0 days after conditioning ends; graft 24 h old; -1 day from collection end).
ALLO_FRESH = dict(conditioning=D("2027-02-01"), collection=D("2027-02-04"), infusion=D("2027-02-05"))


def make_plan(*booking_lists: list[Booking], unschedulable: tuple[Unschedulable, ...] = ()) -> Plan:
    return Plan(
        cohort="rules-test",
        method="hand",
        bookings=tuple(b for bookings in booking_lists for b in bookings),
        unschedulable=unschedulable,
    )


def moved(bookings: list[Booking], step: str, first_day: date, last_day: date | None = None) -> list[Booking]:
    """The same bookings with one step moved (keeping its length unless last_day is given)."""
    out = []
    for b in bookings:
        if b.step == step:
            last_day = last_day or first_day + (b.last_day - b.first_day)
            b = Booking(patient=b.patient, step=b.step, first_day=first_day, last_day=last_day)
        out.append(b)
    return out


def without(bookings: list[Booking], step: str) -> list[Booking]:
    return [b for b in bookings if b.step != step]


def codes(violations: list[Violation]) -> set[str]:
    return {v.rule for v in violations}


def axi_cel_case(**patient_fields) -> tuple[Problem, list[Booking]]:
    """One axi-cel patient P001 (approved Mon 04 Jan 2027) and the hand-worked clean plan."""
    problem = make_problem(patient(**patient_fields))
    return problem, fresh_car_t(problem, "P001", **AXI_CEL)


def unchecked_catalogue(template_id: str, **changes) -> Catalogue:
    """The default catalogue with one template's fields changed around the catalogue's own validation
    (which would refuse it): the checker must still catch what such a template lets through."""
    default = load_catalogue()
    templates = tuple(t.model_copy(update=changes) if t.id == template_id else t for t in default.templates)
    return default.model_copy(update={"templates": templates})
