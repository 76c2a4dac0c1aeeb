"""A plan: the dated bookings of every scheduled patient, and who could not be scheduled."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from pathway.catalogue import Model, read_data_file
from pathway.dates import IsoDate
from pathway.errors import validation_error


class Booking(Model):
    patient: str
    step: str
    first_day: IsoDate
    last_day: IsoDate

    @model_validator(mode="after")
    def _ordered(self) -> Booking:
        if self.last_day < self.first_day:
            raise ValueError(f"{self.patient} {self.step}: last_day is before first_day")
        return self

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]


class Unschedulable(Model):
    patient: str
    rule: str = Field(description="rule or resource code that blocks the patient")
    reason: str = Field(description="a sentence a coordinator understands")
    earliest_infusion: IsoDate | None = Field(
        default=None, description="earliest infusion found, if any (may lie beyond the horizon)"
    )


class PatientOutcome(Model):
    """Per-patient figures reported with a plan."""

    patient: str
    infusion: IsoDate | None
    capacity_free_infusion: IsoDate | None = Field(
        description="earliest infusion if the patient were alone on the site"
    )
    delayed_by: tuple[str, ...] = Field(
        default=(), description="resource-days that pushed the plan past the capacity-free date"
    )


class Plan(Model):
    cohort: str
    method: str = Field(description="cp-sat, greedy, or capacity-free")
    bookings: tuple[Booking, ...]
    unschedulable: tuple[Unschedulable, ...] = ()
    outcomes: tuple[PatientOutcome, ...] = ()
    stats: dict[str, float | int | str | None] = Field(default_factory=dict)

    def bookings_of(self, patient_id: str) -> dict[str, Booking]:
        return {b.step: b for b in self.bookings if b.patient == patient_id}

    def scheduled_patients(self) -> set[str]:
        """Patients the plan schedules (an unschedulable patient may still hold frozen bookings)."""
        return {b.patient for b in self.bookings} - {u.patient for u in self.unschedulable}


def load_plan(path: Path | str) -> Plan:
    path = Path(path)
    try:
        return Plan.model_validate(read_data_file(path))
    except ValidationError as exc:
        raise validation_error(str(path), exc) from None
