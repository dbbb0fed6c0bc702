"""Check digits that tell a payment card or an IBAN from any other run of digits.

A pattern alone would flag every long number; the checksum keeps false positives
to the ~10% (Luhn) or ~1% (mod 97) of random strings that pass by chance.
"""

from __future__ import annotations


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by every payment card number."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` Luhn-valid (for generating test cards)."""
    for digit in "0123456789":
        if luhn_valid(partial + digit):
            return digit
    raise ValueError(f"no Luhn check digit for {partial!r}")  # unreachable for digit strings


def iban_valid(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, the number mod 97 is 1."""
    text = iban.replace(" ", "").upper()
    if not (15 <= len(text) <= 34 and text[:2].isalpha() and text[2:4].isdigit() and text.isalnum()):
        return False
    return _mod97(text[4:] + text[:4]) == 1


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits for a country code and BBAN (for generating test IBANs)."""
    remainder = _mod97(bban.upper() + country.upper() + "00")
    return f"{98 - remainder:02d}"


def _mod97(text: str) -> int:
    remainder = 0
    for char in text:
        value = str(int(char, 36))  # '0'-'9' -> 0-9, 'A'-'Z' -> 10-35
        remainder = int(str(remainder) + value) % 97
    return remainder
