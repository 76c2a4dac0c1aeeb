"""ISBT 128 identifiers as a hospital scheduler stores and shows them; it never generates them.

The lab and the manufacturer issue these identifiers (issuing them needs an
ICCBBA licence). A coordinator types them from a label or scans its barcode;
these functions read what was typed or scanned, check its structure, and
return the form that is stored. Error messages never repeat what was typed.

The structures follow the ISBT 128 Standard Technical Specification (ICCBBA
ST-001, v6.2.2, April 2023):

- Donation Identification Number (DIN), Data Structure 001 (section 2.4.1):
  ``=αppppyynnnnnnff``. The 13-character DIN is ``αppppyynnnnnn``: the facility
  identification number (FIN) ``αpppp``, the nominal year ``yy`` and the
  sequence number ``nnnnnn``. ``α`` is a letter other than O or a digit 1-9;
  the next two characters are letters other than O or digits (ICCBBA still
  issues only digits there, but has reserved letters for the future); the last
  two FIN characters, the year and the sequence are digits. ``ff`` are flag
  characters, not part of the DIN. The keyboard check character printed in a
  box after the number is not in the barcode: it is computed from the 13
  characters (ISO/IEC 7064 mod 37-2, ST-001 Appendix A).
- Product Code, Data Structure 003 (section 2.4.3): ``=<αooootds``; ``α`` is
  S for a cellular therapy product.
- Chain of Identity Identifier, Data Structure 040 (section 2.4.40, and ICCBBA
  ST-028): ``&/CHαppppyynnnnnn``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pathway.errors import InputError

# ISO/IEC 7064 mod 37-2: 0-9 are worth 0-9, A-Z 10-35, and a result of 36 is written '*'.
CHECK_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"

DIN_LENGTH = 13
_FACILITY = re.compile(r"[A-NP-Z1-9][A-NP-Z0-9]{2}[0-9]{2}")
_DIGITS = re.compile(r"[0-9]+")
_CHECK = re.compile(r"[0-9A-Z*]")
# ST-001 Table 3 [RT004] and section 2.4.1: digits, and letters A-H, J-N, P, R-Y.
_FLAGS = re.compile(r"[0-9A-HJ-NPR-Y]{2}")
# Flag values 60-96 carry the check: 60 plus the mod 37-2 checksum (ST-001 Table 3).
_CHECK_FLAGS = range(60, 97)

_MISMATCH = "the check character does not match the number: read the label again"


def check_character(din: str) -> str:
    """The ISO/IEC 7064 mod 37-2 check character of a 13-character DIN (ST-001 Appendix A).

    Each character's value is weighted by 2 to the power of its position from
    the right (1 for the last); the check value is (38 - sum mod 37) mod 37.
    """
    if len(din) != DIN_LENGTH or any(c not in CHECK_ALPHABET[:36] for c in din):
        raise ValueError("a check character is computed from 13 characters of 0-9 and A-Z")
    running = 0
    for character in din:
        running = (running + CHECK_ALPHABET.index(character)) * 2 % 37
    return CHECK_ALPHABET[(38 - running) % 37]


@dataclass(frozen=True)
class Din:
    """A donation identification number and its keyboard check character. Read one with ``parse_din``."""

    number: str
    check: str

    @property
    def facility(self) -> str:
        """The facility identification number of the organisation that assigned the number."""
        return self.number[:5]

    @property
    def year(self) -> str:
        return self.number[5:7]

    @property
    def sequence(self) -> str:
        return self.number[7:]

    def __str__(self) -> str:
        """The eye-readable form, as on the label: 'A9999 21 123456 3'."""
        return f"{self.facility} {self.year} {self.sequence} {self.check}"


def _din_error(problem: str) -> InputError:
    return InputError("", "din", problem)


def _require_structure(number: str) -> None:
    """Refuse a 13-character DIN whose parts do not have the ISBT 128 structure."""
    if not _FACILITY.fullmatch(number[:5]):
        raise _din_error(
            "the first 5 characters (the facility identification number) must be a letter other than O "
            "or a digit 1-9, then two letters other than O or digits, then two digits"
        )
    if not _DIGITS.fullmatch(number[5:7]):
        raise _din_error("characters 6 and 7 (the year) must be digits")
    if not _DIGITS.fullmatch(number[7:]):
        raise _din_error("characters 8 to 13 (the sequence number) must be digits")


def _typed_din(compact: str) -> Din:
    """13 characters and the boxed check character, as read from the label."""
    if len(compact) == DIN_LENGTH:
        raise _din_error("the check character (the boxed character after the number) is missing")
    if len(compact) != DIN_LENGTH + 1:
        raise _din_error("a donation identification number is 13 characters followed by its check character")
    number, check = compact[:DIN_LENGTH], compact[DIN_LENGTH]
    _require_structure(number)
    if not _CHECK.fullmatch(check):
        raise _din_error("the check character must be a letter, a digit or '*'")
    if check != check_character(number):
        raise _din_error(_MISMATCH)
    return Din(number, check)


def _scanned_din(content: str) -> Din:
    """A barcode's data content after '=': 13 characters and 2 flag characters, no check character."""
    if len(content) != DIN_LENGTH + 2:
        raise _din_error("a scanned donation identification number is '=' and 15 characters: scan the label again")
    number, flags = content[:DIN_LENGTH], content[DIN_LENGTH:]
    _require_structure(number)
    if not _FLAGS.fullmatch(flags):
        raise _din_error("the scanned flag characters are not valid: scan the label again")
    check = check_character(number)
    if flags.isdigit() and int(flags) in _CHECK_FLAGS and CHECK_ALPHABET[int(flags) - 60] != check:
        raise _din_error(_MISMATCH)
    return Din(number, check)


def parse_din(text: str) -> Din:
    """A DIN as typed from the label (13 characters and the boxed check character; spaces between
    groups and lower case allowed) or as scanned from its barcode ('=' + 13 characters + 2 flags)."""
    compact = "".join(text.split()).upper()
    if compact.startswith("="):
        return _scanned_din(compact[1:])
    return _typed_din(compact)


# ST-001 section 2.4.3: the Product Description Code αoooo (α = 'S' for cellular therapy
# products; oooo alphanumeric {A-Z; 0-9}), then tds: t, the collection type code (Table 7;
# {A-Z; a-z; 0-9}), and the division code ds, d a capital letter or digit and s a lower case
# letter or digit. Case matters in tds ('R' volunteer research, 'r' paid research), so only
# the description code is folded to upper case.
_PRODUCT_DESCRIPTION = re.compile(r"S[A-Z0-9]{4}")
_TYPE_AND_DIVISION = re.compile(r"[A-Za-z0-9][A-Z0-9][a-z0-9]")
PRODUCT_CODE_LENGTH = 8


def parse_product_code(text: str) -> str:
    """A cellular therapy product code: 'S' and 4 characters, optionally followed by the collection
    type and division code ('S1234', 'S1234V00'); as typed, or scanned with its '=<' data identifier."""
    compact = "".join(text.split())
    if compact.startswith("=<"):
        compact = compact[2:]
    if len(compact) not in (5, PRODUCT_CODE_LENGTH):
        raise InputError("", "product_code", "a cellular therapy product code has 5 or 8 characters")
    description, rest = compact[:5].upper(), compact[5:]
    if not _PRODUCT_DESCRIPTION.fullmatch(description):
        raise InputError("", "product_code", "a cellular therapy product code starts with S and 4 letters or digits")
    if rest and not _TYPE_AND_DIVISION.fullmatch(rest):
        raise InputError(
            "",
            "product_code",
            "the last 3 characters (collection type and division) must be a letter or digit, "
            "a capital letter or digit, and a lower case letter or digit",
        )
    return description + rest


# ST-001 section 2.4.40 (Data Structure 040) and ICCBBA ST-028: 'CH', the issuing
# organisation's facility identification number (as in a DIN), a 2-digit nominal year and a
# 6-character sequence of capital letters and digits. ICCBBA says manufacturers still use
# their own chain-of-identity identifiers, whose formats differ, so any other identifier of
# 6-64 capital letters, digits and hyphens is accepted as it is; only a scanned Data
# Structure 040 ('&/' and 15 characters) must have the ISBT 128 structure.
_ISBT_CHAIN_OF_IDENTITY = re.compile(r"CH[A-NP-Z1-9][A-NP-Z0-9]{2}[0-9]{2}[0-9]{2}[A-Z0-9]{6}")
_MANUFACTURER_CHAIN_OF_IDENTITY = re.compile(r"[A-Z0-9-]{6,64}")


def parse_chain_of_identity(text: str) -> str:
    """A chain-of-identity identifier: the ISBT 128 CoI Identifier (typed, or scanned with '&/'),
    or a manufacturer's own identifier; spaces are dropped and letters upper-cased."""
    compact = "".join(text.split()).upper()
    if compact.startswith("&/"):
        if not _ISBT_CHAIN_OF_IDENTITY.fullmatch(compact[2:]):
            raise InputError(
                "",
                "chain_of_identity",
                "a scanned ISBT 128 chain of identity identifier is '&/', 'CH', a facility identification "
                "number, a 2-digit year and 6 letters or digits: scan the label again",
            )
        return compact[2:]
    if not _MANUFACTURER_CHAIN_OF_IDENTITY.fullmatch(compact):
        raise InputError(
            "",
            "chain_of_identity",
            "a chain of identity identifier has 6 to 64 characters: letters, digits and hyphens",
        )
    return compact
