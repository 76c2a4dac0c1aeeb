"""One error type for bad input, carrying the file, the field and the problem."""

from __future__ import annotations

import re

from pydantic import ValidationError

from pathway.nhs import mentions_nhs_number


class InputError(ValueError):
    """Bad input that a person must fix: names where it is and what is wrong."""

    def __init__(self, source: str, field: str, problem: str):
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ": ".join(part for part in (self.source, self.field) if part)
        return f"{where}: {self.problem}" if where else self.problem


def field_path(loc: tuple) -> str:
    """('patients', 3, 'approval_date') -> 'patients[3].approval_date'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
UNNAMED_KEY = "<key>"


def safe_locations(errors: list[dict]) -> list[tuple]:
    """Each pydantic error's location without anything typed by the client that could identify someone:
    a map key that failed its own validation, or any part that is not a plain name, becomes ``<key>``."""
    bad_keys = {str(e["loc"][-2]) for e in errors if len(e.get("loc", ())) >= 2 and e["loc"][-1] == "[key]"}
    out = []
    for error in errors:
        loc = []
        for part in error.get("loc", ()):
            if part == "[key]":
                continue
            if isinstance(part, str) and (part in bad_keys or not _NAME.match(part) or mentions_nhs_number(part)):
                part = UNNAMED_KEY
            loc.append(part)
        out.append(tuple(loc))
    return out


def validation_error(source: str, exc: ValidationError) -> InputError:
    """Turn pydantic's first error into an InputError (returned, for ``raise ... from``)."""
    errors = exc.errors(include_url=False)
    message = errors[0]["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return InputError(source, field_path(safe_locations(errors)[0]), message)
