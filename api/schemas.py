"""Request bodies of the HTTP API. Strict: unknown fields refused, dates ISO strings only (years 1900..2199)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from api.nhs import normalise_nhs_number
from pathway.catalogue import Model
from pathway.cohort import PATIENT_ID, DateRange, check_pseudonymous
from pathway.dates import IsoDate
from pathway.errors import InputError
from pathway.site import CapacityChange, Urgency

FIRST_YEAR, LAST_YEAR = 1900, 2199


def _in_years(day: date) -> date:
    """Dates near year 1 or 9999 overflow in date arithmetic (a 500, not a 422): refused here."""
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"{day.isoformat()} is outside the years {FIRST_YEAR}..{LAST_YEAR}")
    return day


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


ApiDate = Annotated[IsoDate, AfterValidator(_in_years)]
"""An ISO date (YYYY-MM-DD) in the years FIRST_YEAR..LAST_YEAR."""
Text = Annotated[str, AfterValidator(_no_nul)]
"""Free text that is stored (PostgreSQL refuses NUL characters in text: a 500, not a 422)."""
Reason = Field(min_length=1, max_length=500, description="why, in words (kept in the audit log)")
PatientRef = Annotated[str, PATIENT_ID]


class Blackout(DateRange):
    """Days the patient cannot attend."""

    first_day: ApiDate
    last_day: ApiDate


class _Nhs(Model):
    nhs_number: str | None = Field(default=None, description="optional; validated (modulus 11), stored, never logged")

    @field_validator("nhs_number")
    @classmethod
    def _valid(cls, value: str | None) -> str | None:
        return normalise_nhs_number(value) if value else None


class ReferralIn(_Nhs):
    """A new referral: pathway/product, approval date, constraints, urgency, target date."""

    id: str = PATIENT_ID
    centre: str = Field(min_length=1, max_length=64)
    pathway: str = Field(min_length=1, max_length=64, description="template id from the catalogue")
    approval_date: ApiDate
    earliest_start: ApiDate | None = None
    urgency: Urgency = "routine"
    target_infusion_date: ApiDate | None = None
    last_doses: dict[str, ApiDate] = Field(default_factory=dict, description="agent -> last dose date")
    blackouts: tuple[Blackout, ...] = ()
    durations: dict[str, int] = Field(default_factory=dict, description="step -> days")

    _pseudonymous = field_validator("id")(check_pseudonymous)


class ReferralEdit(_Nhs):
    """Fields to change (those not given stay as they are; ``nhs_number: null`` removes it)."""

    centre: str | None = Field(default=None, min_length=1, max_length=64)
    approval_date: ApiDate | None = None
    earliest_start: ApiDate | None = None
    urgency: Urgency | None = None
    target_infusion_date: ApiDate | None = None
    last_doses: dict[str, ApiDate] | None = None
    blackouts: tuple[Blackout, ...] | None = None
    durations: dict[str, int] | None = None
    pathway: str | None = Field(default=None, min_length=1, max_length=64)

    def changes(self) -> dict[str, Any]:
        """The fields given, as stored values (JSON); null empties a collection and is refused for a
        required field (InputError naming it). The NHS number is apart (``nhs_number``)."""
        changes = self.model_dump(mode="json", exclude_unset=True, exclude={"nhs_number"})
        for name in ("centre", "pathway", "approval_date", "urgency"):
            if name in changes and changes[name] is None:
                raise InputError("", name, "cannot be removed (null)")
        for name in ("last_doses", "durations"):
            if name in changes and changes[name] is None:
                changes[name] = {}
        if "blackouts" in changes and changes["blackouts"] is None:
            changes["blackouts"] = []
        return changes


class ConfirmIn(Model):
    option: int = Field(default=0, ge=0, le=20, description="rank of the option to confirm (0: the first offered)")


class DeferIn(Model):
    from_date: ApiDate = Field(description="no step before this date")
    reason: Text = Reason


class OutOfSpecificationIn(Model):
    redo: Literal["re-apheresis", "re-manufacture"]
    reason: Text = Reason


class WithdrawIn(Model):
    reason: Text = Reason


class ReplanIn(Model):
    patients: tuple[PatientRef, ...] = Field(min_length=1, max_length=200)


class CapacityChangeIn(CapacityChange):
    """A lab manager's closure (capacity 0) or change, bounded so that it fits the database."""

    first_day: ApiDate
    last_day: ApiDate
    capacity: int = Field(ge=0, le=10_000)
    reason: Text = Field(min_length=1, max_length=500)

    @field_validator("last_day")
    @classmethod
    def _not_before_first(cls, value: date, info: ValidationInfo) -> date:
        first = info.data.get("first_day")
        if first is not None and value < first:
            raise ValueError("last_day is before first_day")
        return value
