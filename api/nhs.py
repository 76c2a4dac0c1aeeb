"""NHS number validation (modulus 11), as published in the NHS Data Dictionary.

Ten digits; the tenth is a check digit: weight the first nine by 10 down to 2,
sum, take 11 minus the remainder mod 11; 11 means 0 and 10 means the number is
invalid. Spaces and hyphens in the common 3-3-4 layout are accepted.
"""

from __future__ import annotations


def normalise_nhs_number(value: str) -> str:
    """The ten digits of a valid NHS number, or ValueError saying what is wrong (never echoing the number)."""
    digits = value.replace(" ", "").replace("-", "")
    if len(digits) != 10 or not digits.isdigit():
        raise ValueError("an NHS number has 10 digits")
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        raise ValueError("the NHS number's check digit is wrong (modulus 11)")
    return digits
