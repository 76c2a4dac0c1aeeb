"""ISBT 128 identifiers as typed from a label or scanned from its barcode (pathway/isbt.py)."""

from __future__ import annotations

import pytest

from pathway.errors import InputError
from pathway.isbt import Din, check_character, parse_chain_of_identity, parse_din, parse_product_code


# -- the check character ------------------------------------------------------------------------
def test_check_character_matches_the_red_book_worked_example():
    # JPAC Guidelines for the Blood Transfusion Services in the UK (the "Red Book"), Annex 2
    # "ISBT 128 check character calculation", Table A2.2: donation number G123 498 654 321,
    # weighted sum 148354, mod 37 = 21, 38 - 21 = 17, eye-readable check character H.
    # https://www.transfusionguidelines.org/red-book/annex-2-isbt-128-check-character-calculation
    assert check_character("G123498654321") == "H"


def test_check_character_matches_the_iccbba_figure():
    # ICCBBA ST-001 v6.2.2 (2023), section 2.4.1, Figure 2 "Donation Numbering":
    # FIN A9999, year 21, sequence 123456, check character 3.
    assert check_character("A999921123456") == "3"


def test_a_checksum_of_36_is_written_as_an_asterisk():
    # Worked by hand: values 10,9,9,9,9,2,1,0,0,0,0,1,9 weighted by 2^13 .. 2^1 sum to 151702;
    # 151702 mod 37 = 2 and (38 - 2) mod 37 = 36, which ISO 7064 mod 37-2 writes as '*'.
    assert check_character("A999921000019") == "*"


def test_check_character_refuses_a_number_of_the_wrong_length():
    with pytest.raises(ValueError):
        check_character("A9999211234")


# -- reading a DIN ---------------------------------------------------------------------------------
def test_a_din_typed_from_the_label_with_spaces_and_lower_case_is_read():
    assert parse_din(" a9999 21 123456  3 ") == Din("A999921123456", "3")


def test_a_din_is_shown_in_its_eye_readable_groups():
    assert str(parse_din("A999921123456 3")) == "A9999 21 123456 3"


def test_a_scanned_din_gets_its_check_character_computed():
    # Barcode data content: '=', the 13 characters, flag characters 01 (container 1 of a set).
    assert parse_din("=A99992112345601") == Din("A999921123456", "3")


def test_a_scanned_din_whose_flags_carry_its_check_is_read():
    # Flags 60-96 carry 60 + the mod 37-2 checksum: '3' is worth 3, so 63 (ST-001 Table 3).
    assert parse_din("=A99992112345663") == Din("A999921123456", "3")


def test_a_scanned_din_whose_flags_carry_another_check_is_refused():
    with pytest.raises(InputError, match="the check character does not match the number: read the label again"):
        parse_din("=A99992112345664")


def test_a_din_with_reserved_letters_in_the_facility_number_is_read():
    # ST-001 2.4.1: FIN characters 2 and 3 may become letters (e.g. ABC12); they are digits today.
    number = "ABC1221123456"
    assert parse_din(number + check_character(number)) == Din(number, check_character(number))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("A9999 21 123456 3 0", "is 13 characters followed by its check character"),
        ("", "is 13 characters followed by its check character"),
        ("A9999 21 123456", "the check character (the boxed character after the number) is missing"),
        ("O9999 21 123456 3", "the first 5 characters (the facility identification number)"),
        ("09999 21 123456 3", "the first 5 characters (the facility identification number)"),
        ("A99X9 21 123456 3", "the first 5 characters (the facility identification number)"),
        ("A9999 2X 123456 3", "characters 6 and 7 (the year) must be digits"),
        ("A9999 21 12345X 3", "characters 8 to 13 (the sequence number) must be digits"),
        ("A9999 21 123456 -", "the check character must be a letter, a digit or '*'"),
        ("A9999 21 123456 4", "the check character does not match the number: read the label again"),
        ("=A999921123456", "scanned donation identification number is '=' and 15 characters"),
        ("=A999921123456Z0", "the scanned flag characters are not valid"),
        ("=O99992112345600", "the first 5 characters (the facility identification number)"),
    ],
)
def test_a_din_that_cannot_be_right_is_refused_with_its_problem_and_not_its_text(text, problem):
    with pytest.raises(InputError) as caught:
        parse_din(text)
    assert (caught.value.source, caught.value.field) == ("", "din")
    assert problem in caught.value.problem
    compact = "".join(text.split())
    assert not compact or compact not in str(caught.value)


# -- product codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("S1234", "S1234"),
        ("s1234", "S1234"),
        ("S1234V00", "S1234V00"),
        ("=<S1234V00", "S1234V00"),
        # Case carries meaning in the last three: 'r' is paid research, 'a' a lower-case sub-division.
        ("S1234r0a", "S1234r0a"),
        ("S1234 4A0", "S12344A0"),
    ],
)
def test_a_cellular_therapy_product_code_is_read(text, stored):
    assert parse_product_code(text) == stored


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("S123", "has 5 or 8 characters"),
        ("S1234V0", "has 5 or 8 characters"),
        ("S1234V00X", "has 5 or 8 characters"),
        ("E0001V00", "starts with S and 4 letters or digits"),
        ("S12-4", "starts with S and 4 letters or digits"),
        ("S1234Va0", "the last 3 characters (collection type and division)"),
        ("S1234V0A", "the last 3 characters (collection type and division)"),
    ],
)
def test_a_product_code_that_is_not_a_cellular_therapy_code_is_refused(text, problem):
    with pytest.raises(InputError) as caught:
        parse_product_code(text)
    assert caught.value.field == "product_code"
    assert problem in caught.value.problem
    assert text not in str(caught.value)


# -- chain of identity -----------------------------------------------------------------------------
def test_a_scanned_isbt_chain_of_identity_identifier_is_stored_without_its_data_identifier():
    assert parse_chain_of_identity("&/CHA999923ABC123") == "CHA999923ABC123"


def test_a_typed_isbt_chain_of_identity_identifier_is_stored_without_spaces():
    assert parse_chain_of_identity("CH A9999 23 abc123") == "CHA999923ABC123"


def test_a_manufacturers_own_chain_of_identity_identifier_is_stored_upper_cased():
    assert parse_chain_of_identity("kite-20270104-0042") == "KITE-20270104-0042"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("&/CHO999923ABC123", "scanned ISBT 128 chain of identity identifier"),
        ("&/CHA999923ABC12", "scanned ISBT 128 chain of identity identifier"),
        ("&/XYA999923ABC123", "scanned ISBT 128 chain of identity identifier"),
        ("AB12", "has 6 to 64 characters"),
        ("A" * 65, "has 6 to 64 characters"),
        ("AB_1234", "has 6 to 64 characters"),
    ],
)
def test_a_chain_of_identity_identifier_that_cannot_be_right_is_refused(text, problem):
    with pytest.raises(InputError) as caught:
        parse_chain_of_identity(text)
    assert caught.value.field == "chain_of_identity"
    assert problem in caught.value.problem
    assert text.upper() not in str(caught.value).upper()
