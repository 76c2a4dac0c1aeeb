"""Request bodies of the HTTP API. Strict: unknown fields refused, dates ISO strings only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from api.nhs import normalise_nhs_number
from pathway.catalogue import Model
from pathway.cohort import PATIENT_ID, DateRange, check_pseudonymous
from pathway.dates import IsoDate
from pathway.site import Urgency

Reason = Field(min_length=1, max_length=500, description="why, in words (kept in the audit log)")


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
    approval_date: IsoDate
    earliest_start: IsoDate | None = None
    urgency: Urgency = "routine"
    target_infusion_date: IsoDate | None = None
    last_doses: dict[str, IsoDate] = Field(default_factory=dict, description="agent -> last dose date")
    blackouts: tuple[DateRange, ...] = ()
    durations: dict[str, int] = Field(default_factory=dict, description="step -> days")

    _pseudonymous = field_validator("id")(check_pseudonymous)


class ReferralEdit(_Nhs):
    """Fields to change (those not given stay as they are; ``nhs_number: null`` removes it)."""

    centre: str | None = Field(default=None, min_length=1, max_length=64)
    approval_date: IsoDate | None = None
    earliest_start: IsoDate | None = None
    urgency: Urgency | None = None
    target_infusion_date: IsoDate | None = None
    last_doses: dict[str, IsoDate] | None = None
    blackouts: tuple[DateRange, ...] | None = None
    durations: dict[str, int] | None = None
    pathway: str | None = Field(default=None, min_length=1, max_length=64)


class ConfirmIn(Model):
    option: int = Field(default=0, ge=0, le=20, description="rank of the option to confirm (0: the first offered)")


class DeferIn(Model):
    from_date: IsoDate = Field(description="no step before this date")
    reason: str = Reason


class OutOfSpecificationIn(Model):
    redo: Literal["re-apheresis", "re-manufacture"]
    reason: str = Reason


class WithdrawIn(Model):
    reason: str = Reason


class ReplanIn(Model):
    patients: tuple[str, ...] = Field(min_length=1, max_length=200)
