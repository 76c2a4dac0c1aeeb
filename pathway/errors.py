"""One error type for bad input, carrying the file, the field and the problem."""

from __future__ import annotations

from pydantic import ValidationError


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


def validation_error(source: str, exc: ValidationError) -> InputError:
    """Turn pydantic's first error into an InputError (returned, for ``raise ... from``)."""
    first = exc.errors(include_url=False)[0]
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return InputError(source, field_path(tuple(first["loc"])), message)
