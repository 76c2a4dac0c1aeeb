"""NHS numbers: validation of the one field that holds one, and screening of every other text for one.

An NHS number has ten digits; the tenth is a check digit (NHS Data Dictionary, modulus 11): weight the
first nine by 10 down to 2, sum, take 11 minus the remainder mod 11; 11 means 0 and 10 means the number
is invalid. People write it unspaced, in the 3-3-4 layout, or with hyphens.

Free text is kept for ever (the audit log is append-only), so a number typed into a reason or a note can
never be erased: ``mentions_nhs_number`` finds any ten digits that read as a valid NHS number, and the
API refuses such text without echoing it.
"""

from __future__ import annotations

import re
import unicodedata

# runs of digit groups, each joined to the next by up to three spaces, dots, slashes or hyphens
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[\s./-]{1,3}[0-9]+)*(?![0-9])")
_SEPARATOR = re.compile(r"[\s./-]{1,3}")
SCREENED = "reads as an NHS number (10 digits with a valid check digit): patient identifiers must not be typed here"


def _check_digit_holds(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


NHS_NUMBER_PATTERN = r"^[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}$"


def normalise_nhs_number(value: str) -> str:
    """The ten digits of a valid NHS number, or ValueError saying what is wrong (never echoing the number)."""
    if not re.match(NHS_NUMBER_PATTERN, value):
        raise ValueError("an NHS number has 10 digits, unspaced or spaced 3-3-4")
    digits = value.replace(" ", "").replace("-", "")
    if not _check_digit_holds(digits):
        raise ValueError("the NHS number's check digit is wrong (modulus 11)")
    return digits


def mentions_nhs_number(text: str) -> bool:
    """Whether ``text`` holds ten digits that read as a valid NHS number: unspaced, or in groups of three
    or more digits ("943 476 5919", "943-476-5919", "94347 65919", "943 . 476 . 5919"), also inside a
    longer run of groups. Text is compared in its compatibility form, so full-width digits and no-break
    spaces (pasted from a word processor) are read as digits and spaces. Ten digits inside a longer
    unbroken number (a 12-digit reference) do not count, nor do groups of one or two digits (the day and
    month of a date): nobody writes an NHS number that way."""
    for run in _DIGIT_RUN.finditer(unicodedata.normalize("NFKC", text)):
        groups = _SEPARATOR.split(run.group())
        for first in range(len(groups)):
            digits = ""
            for group in groups[first:]:
                if len(group) < 3 and len(groups) > 1:
                    break
                digits += group
                if len(digits) >= 10:
                    break
            if len(digits) == 10 and _check_digit_holds(digits):
                return True
    return False


def screen(text: str) -> str:
    """``text`` unchanged, or ValueError (the message never holds the text) if it mentions an NHS number."""
    if mentions_nhs_number(text):
        raise ValueError(SCREENED)
    return text


def first_mention(value: object, path: str = "") -> str | None:
    """The field path (``a.b[2].c``) of the first text in a JSON-like document, key or value, that
    mentions an NHS number; None if none does. For documents without a schema of their own fields
    (a catalogue upload)."""
    if isinstance(value, str):
        return (path or "body") if mentions_nhs_number(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if mentions_nhs_number(str(key)):
                return (path or "body") + ".<key>"
            found = first_mention(item, here)
            if found:
                return found
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_mention(item, f"{path}[{i}]")
            if found:
                return found
    return None
