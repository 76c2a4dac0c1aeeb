"""Dates in input files: ISO ``YYYY-MM-DD`` strings only.

Pydantic's lax mode would accept ``0`` or ``1700000000`` as a date; a typo in a
cohort file must not silently become 1 January 1970.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_iso_date(value: object) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO.match(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a real calendar date") from None


IsoDate = Annotated[
    date,
    BeforeValidator(parse_iso_date),
    PlainSerializer(lambda d: d.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}),
]


def say_day(day: date) -> str:
    """A date as coordinators read it in every message and page: 'Mon 04 Jan 2027'."""
    return f"{day:%a %d %b %Y}"


def say_span(first: date, last: date) -> str:
    """A short span of days for lists: '25 Jan .. 31 Jul 2027'."""
    return f"{first:%d %b} .. {last:%d %b %Y}"
