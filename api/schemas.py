"""Request bodies of the HTTP API. Strict: unknown fields refused, dates ISO strings only (years 1900..2199),
every text screened for NHS numbers (``pathway.nhs.screen``: refused, never echoed), every list, map and text
bounded (the limits below, listed in the README). The OpenAPI document states the same rules: patterns for
dates and ids, lengths, item counts, and no ``null`` where null is refused."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, WithJsonSchema, field_validator

from api.db import CUSTODY_KINDS
from pathway.catalogue import Model
from pathway.cohort import PATIENT_ID, PATIENT_ID_SCHEMA, DateRange, check_pseudonymous
from pathway.dates import IsoDate
from pathway.nhs import NHS_NUMBER_PATTERN, normalise_nhs_number, screen
from pathway.site import CapacityChange, Urgency

FIRST_YEAR, LAST_YEAR = 1900, 2199
MAX_BLACKOUTS = 100  # days away per patient: a year of single days, in ranges, fits many times over
MAX_MAP_ENTRIES = 20  # last doses (agents) or durations (steps) per patient: no pathway has more steps
MAX_REASON = 500  # characters of a reason kept in the audit log
MAX_BLACKOUT_REASON = 200
MAX_CODE = 64  # characters of a centre, pathway, step or agent id


def _in_years(day: date) -> date:
    """Dates near year 1 or 9999 overflow in date arithmetic (a 500, not a 422): refused here."""
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"is outside the years {FIRST_YEAR}..{LAST_YEAR}")
    return day


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


# the years FIRST_YEAR..LAST_YEAR as a pattern, so that the OpenAPI document says what the server takes
DATE_PATTERN = r"^(19[0-9]{2}|2[01][0-9]{2})-[0-9]{2}-[0-9]{2}$"
ApiDate = Annotated[
    IsoDate, AfterValidator(_in_years), WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN})
]
"""An ISO date (YYYY-MM-DD) in the years FIRST_YEAR..LAST_YEAR."""
Screened = Annotated[str, AfterValidator(screen)]
"""Text that must not hold an NHS number (``pathway.nhs.screen``)."""
Text = Annotated[Screened, AfterValidator(_no_nul)]
"""Free text that is stored: no NUL character (PostgreSQL refuses it: a 500, not a 422), no NHS number."""
Reason = Field(min_length=1, max_length=MAX_REASON, description="why, in words (kept in the audit log)")
Code = Annotated[
    str, Field(min_length=1, max_length=MAX_CODE, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$"), AfterValidator(screen)
]
"""A catalogue or site id (centre, pathway, step, agent): letters first, so never a number."""
ResourceRef = Annotated[
    str, Field(min_length=1, max_length=2 * MAX_CODE, pattern=r"^[A-Za-z][A-Za-z0-9_./-]*$"), AfterValidator(screen)
]
"""A resource's kind (``bed``) or id (``liverpool/bed``: centre, slash, kind)."""
PatientRef = Annotated[str, PATIENT_ID, AfterValidator(check_pseudonymous), WithJsonSchema(PATIENT_ID_SCHEMA)]


class Blackout(DateRange):
    """Days the patient cannot attend."""

    first_day: ApiDate
    last_day: ApiDate
    reason: Text = Field(default="", max_length=MAX_BLACKOUT_REASON)


Blackouts = Annotated[tuple[Blackout, ...], Field(max_length=MAX_BLACKOUTS, description="days the patient is away")]


def _code_map(values: type, description: str) -> Any:
    """A map from codes (steps, agents) to ``values``, at most MAX_MAP_ENTRIES long; its OpenAPI schema
    refuses other keys (pydantic states the key pattern as patternProperties only)."""
    limits = Field(
        max_length=MAX_MAP_ENTRIES, description=description, json_schema_extra={"additionalProperties": False}
    )
    return Annotated[dict[Code, values], limits]


LastDoses = _code_map(ApiDate, "agent -> last dose date (for washouts)")
Durations = _code_map(int, "step -> days, within the catalogue's range")
NhsNumber = Annotated[str, WithJsonSchema({"type": "string", "pattern": f"^$|{NHS_NUMBER_PATTERN}"})]


class _Nhs(Model):
    nhs_number: NhsNumber | None = Field(
        default=None, description="optional (empty: none); validated (modulus 11), stored, never logged or shown"
    )

    @field_validator("nhs_number")
    @classmethod
    def _valid(cls, value: str | None) -> str | None:
        return normalise_nhs_number(value) if value else None


class ReferralIn(_Nhs):
    """A new referral: pathway/product, approval date, constraints, urgency, target date."""

    id: PatientRef
    centre: Code
    pathway: Code = Field(description="template id from the catalogue")
    approval_date: ApiDate
    earliest_start: ApiDate | None = None
    urgency: Urgency = "routine"
    target_infusion_date: ApiDate | None = None
    last_doses: LastDoses = Field(default_factory=dict)
    blackouts: Blackouts = ()
    durations: Durations = Field(default_factory=dict)


class ReferralEdit(_Nhs):
    """Fields to change (those not given stay as they are; ``nhs_number: null`` removes it)."""

    # a field that cannot be removed is not nullable: null is refused by its type, the field named
    centre: Code = None
    approval_date: ApiDate = None
    earliest_start: ApiDate | None = None
    urgency: Urgency = None
    target_infusion_date: ApiDate | None = None
    last_doses: LastDoses | None = None
    blackouts: Blackouts | None = None
    durations: Durations | None = None
    pathway: Code = None

    @field_validator("centre", "approval_date", "urgency", "pathway", mode="before")
    @classmethod
    def _not_removed(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be removed (null)")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields given, as stored values (JSON); null empties a collection (null for a required field
        is refused above). The NHS number is apart (``nhs_number``)."""
        changes = self.model_dump(mode="json", exclude_unset=True, exclude={"nhs_number"})
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
    cause: Literal["withdrawn", "deceased"] = Field(
        default="withdrawn", description="why the patient leaves: withdrawn, or deceased (who cannot be reinstated)"
    )


class ReinstateIn(Model):
    reason: Text = Reason


class ConfirmationIn(Model):
    note: Text | None = Field(default=None, max_length=MAX_REASON, description="how or with whom, in words")


class ReplanIn(Model):
    patients: tuple[PatientRef, ...] = Field(min_length=1, max_length=200)
    reason: Text | None = Field(
        default=None, max_length=MAX_REASON, description="why, in words: the cause the moved patients are told"
    )


class CapacityChangeIn(CapacityChange):
    """A lab manager's closure (capacity 0) or change, bounded so that it fits the database."""

    resource: ResourceRef = Field(description="a resource kind")
    centre: Code | None = None
    first_day: ApiDate
    last_day: ApiDate
    capacity: int = Field(ge=0, le=10_000)
    reason: Text = Reason

    @field_validator("last_day")
    @classmethod
    def _not_before_first(cls, value: date, info: ValidationInfo) -> date:
        first = info.data.get("first_day")
        if first is not None and value < first:
            raise ValueError("last_day is before first_day")
        return value


# -- what happened ------------------------------------------------------------------------------
MAX_IDENTIFIER = 64  # characters of an order reference, a chain-of-identity identifier or a storage place
Identifier = Annotated[Text, Field(min_length=1, max_length=MAX_IDENTIFIER)]
Note = Field(default="", max_length=MAX_REASON, description="anything worth keeping, in words")


class ScannedIdentity(Model):
    """What the bedside scan of the bag and cassette reads."""

    din: Annotated[Text, Field(min_length=13, max_length=24)] = Field(
        description="the bag's donation identification number: 13 characters and the check character, "
        "or the barcode's data (= and 15 characters)"
    )
    chain_of_identity: Identifier | None = None


class StepRecordIn(Model):
    """A booked step started, done (on its booked days unless others are given), missed or cancelled."""

    outcome: Literal["started", "done", "missed", "cancelled"]
    first_day: ApiDate | None = Field(default=None, description="the day it really started (default: as booked)")
    last_day: ApiDate | None = Field(
        default=None, description="the day it really ended (done only; default: as booked)"
    )
    reason: Text = Field(
        default="", max_length=MAX_REASON, description="why it was missed or cancelled (required then)"
    )
    note: Text = Note
    scanned: ScannedIdentity | None = Field(
        default=None, description="an infusion: the identifiers scanned at the bedside"
    )


class ProductIn(Model):
    """A product made from one collection, with the identifiers on its labels (never made up here)."""

    collection_step: Code = Field(description="the pathway's collection step the cells come from")
    din: Annotated[Text, Field(min_length=13, max_length=24)] | None = Field(
        default=None, description="ISBT 128 donation identification number with its check character"
    )
    product_code: Annotated[Text, Field(min_length=5, max_length=8)] | None = Field(
        default=None, description="ISBT 128 product code (S and four digits, then the type code)"
    )
    chain_of_identity: Identifier | None = None
    order_reference: Identifier | None = Field(default=None, description="the manufacturer's order or slot reference")
    bags: int | None = Field(default=None, ge=1, le=50)


class PoorMobilisationIn(Model):
    reason: Text = Reason


class CustodyIn(Model):
    """One link of a product's chain of custody. ``day``: when it happened (expected_back: the day the
    product is expected back at the centre)."""

    kind: Literal[CUSTODY_KINDS]
    day: ApiDate
    courier_reference: Identifier | None = Field(default=None, description="shipped: the courier's reference")
    storage_location: Identifier | None = Field(default=None, description="received at the centre: where it is kept")
    clinician: Identifier | None = Field(default=None, description="exceptional release: who authorised it")
    reason: Text | None = Field(default=None, min_length=1, max_length=MAX_REASON)
    note: Text | None = Field(default=None, max_length=MAX_REASON)

    def details(self) -> dict[str, str]:
        names = ("courier_reference", "storage_location", "clinician", "reason", "note")
        return {name: getattr(self, name) for name in names if getattr(self, name)}
