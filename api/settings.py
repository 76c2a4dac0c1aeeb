"""Service configuration: environment variables (prefix ``V2V_``) and an optional ``.env`` file.

``DATABASE_URL`` is read without the prefix, as hosting platforms set it.
Every setting is listed in the README's Configuration section.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pathway.catalogue import DEFAULT_CATALOGUE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="V2V_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///vein2vein.db",
        validation_alias=AliasChoices("DATABASE_URL", "V2V_DATABASE_URL"),
        description="SQLAlchemy URL; postgresql://... uses psycopg 3",
    )
    migration_database_url: str | None = Field(
        default=None,
        description="URL migrations run with, as the schema's owner role (PostgreSQL); unset: database_url",
    )
    admin_database_url: str | None = Field(
        default=None,
        description="administrator's URL (PostgreSQL), used only by `v2v db init --roles` to create the roles",
    )
    catalogue_file: Path = Field(
        default=DEFAULT_CATALOGUE, description="pathway catalogue loaded into an empty database"
    )
    site: str = Field(
        default="default",
        description="site file (pathway/data/sites/NAME.yaml, packaged) loaded into an empty database",
    )
    today: date | None = Field(default=None, description="planning date; unset: today in nightly_timezone")
    horizon_days: int = Field(default=365, ge=28, le=800, description="days planned ahead from today")
    solve_time_limit: float = Field(default=10.0, gt=0, le=600, description="seconds for a whole-cohort solve")
    propose_time_limit: float = Field(
        default=0.5, gt=0, le=60, description="seconds for one proposal (fast path and alternatives)"
    )
    alternative_max_slip_days: int = Field(
        default=14, ge=0, le=120, description="an alternative delays no moved patient's infusion by more"
    )
    freeze_working_days: int = Field(
        default=3, ge=0, le=30, description="working days ahead whose bookings others' proposals never move"
    )
    alternatives: int = Field(default=3, ge=0, le=10, description="ranked alternatives offered with a proposal")
    worklist_working_days: int = Field(
        default=3, ge=0, le=20, description="working days after today that the worklist looks ahead"
    )
    at_risk_working_days: int = Field(
        default=5,
        ge=0,
        le=30,
        description="a conditioning booked within this many working days whose product is not released is at risk",
    )
    solver_threads: int = Field(default=2, ge=1, le=16, description="solves running at once; more wait their turn")
    nightly_enabled: bool = Field(
        default=True, description="run the nightly re-solve inside the service (off: only on demand)"
    )
    nightly_at: str = Field(
        default="02:30",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="local time of the nightly re-solve (HH:MM)",
    )
    nightly_timezone: str = Field(default="Europe/London", description="time zone of nightly_at (IANA name)")
    nightly_time_limit: float = Field(default=20.0, gt=0, le=3600, description="seconds for the nightly re-solve")
    max_body_bytes: int = Field(
        default=1_048_576, ge=65_536, le=67_108_864, description="largest request body taken (413 beyond)"
    )
    workers: int = Field(
        default=1, ge=1, le=16, description="server processes of v2v serve and demo (each with its own solver pool)"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("nightly_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/London)") from None
        return value

    def planning_day(self) -> date:
        """``today`` if set, else today's date where the site is (``nightly_timezone``), whatever the server's zone."""
        return self.today or datetime.now(ZoneInfo(self.nightly_timezone)).date()
