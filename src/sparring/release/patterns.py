"""Structured personal information found by patterns: contact details, identity numbers, money, addresses.

Each finder returns ``Span``s. Numbers that have a check (payment cards: Luhn and
issuer prefix; IBANs: mod 97; SSNs: the ranges never issued; IPs: octets and
``ipaddress``) must pass it. Passport and driver's licence numbers have no
checkable form, so they are found only next to a word that names them
("passport", "licence", "DL"); a bare identity number without such a word is
caught only if it looks like another kind (a phone number, an SSN).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from sparring.release.checksums import iban_valid, luhn_valid
from sparring.release.spans import Span

_TRAILING = ".,;:!?)]}'\">"

CREDENTIAL_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s/@<>\"']+@[^\s<>\"']+")
EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
                   r"[A-Za-z]{2,24}(?![\w-])")
# 13-19 digits, optionally in groups split by single spaces or dashes
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
# compact, or in groups of four separated by single spaces (the printed form); never across words
IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[A-Za-z0-9]{11,30}|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,3})?)"
                  r"(?![A-Za-z0-9])")
SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|ss#|social\s+security(?:\s+(?:number|no\.?|#))?|social)\b[^\n\d]{0,25}?"
                         r"(?<!\d)(?P<value>(?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})(?!\d)")
PASSPORT = re.compile(r"(?i)\bpassport\b[^\n\d]{0,30}?(?<![A-Za-z0-9])(?P<value>[A-Za-z]{0,2}\d{6,9}[A-Za-z]?)"
                      r"(?![A-Za-z0-9])")
DRIVERS_LICENSE = re.compile(
    r"(?i)\b(?:driver'?s?|driving|licen[cs]e|DL|D/L)\b[^\n\d]{0,35}?(?<![A-Za-z0-9])"
    r"(?P<value>[A-Za-z]{0,3}\d[A-Za-z0-9]*(?:[ -]\d[A-Za-z0-9]*){0,5})(?![A-Za-z0-9])")
PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,6}(?!\d)")
PHONE_NANP = re.compile(r"(?<![\w+-])(?:1[ .-]?)?(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?!\d)"
                        r"|(?<![\w+-])[2-9]\d{2}[2-9]\d{6}(?!\d)")
PHONE_TRUNK = re.compile(r"(?<![\w+-])0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4}(?!\d)")  # 020 7946 0958 (national, leading 0)
PHONE_LOCAL = re.compile(r"(?i)\b(?:call|phone|number|text|cell|mobile|reach|dial)\b[^\n\d]{0,20}?"
                         r"(?<![\d-])(?P<value>\d{3}-\d{4})(?![\d-])")
IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                  r"(?!\d|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")

_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Terrace|Ter"
                  r"|Way|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Loop|Alley|Crescent|Close"
                  r"|Plaza|Row|Walk)")
_NAME_WORD = r"(?:[A-Z][A-Za-z'-]*|\d{1,3}(?:st|nd|rd|th))"
ADDRESS = re.compile(
    r"(?<![\w-])\d{1,6}[A-Za-z]?(?:-\d{1,4})?"                           # house number: 12, 221B, 12-14
    r"(?:\s+(?:[NSEW]\.?|North|South|East|West))?"
    rf"(?:\s+{_NAME_WORD}){{1,4}}?"                                       # street name: capitalised words or 5th
    rf"\s+(?i:{_STREET_SUFFIX})\.?(?![A-Za-z])"
    r"(?:\s+(?:[NSEW]{1,2}|North|South|East|West)\b)?"
    r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|floor|fl|#)\.?\s*#?\s*[A-Za-z0-9-]{1,6}\b)?"
    r"(?:,\s*[A-Z][A-Za-z]+(?:[ -][A-Z][A-Za-z]+){0,2}"                  # , City
    r"(?:,?\s*(?:[A-Z]{2}|[A-Z][a-z]+)(?=[\s,]|$))?"                     # , ST / , State
    r"(?:,?\s*\d{5}(?:-\d{4})?(?!\d))?)?")                               # 62704(-1234)
PO_BOX = re.compile(r"(?i)\bP\.?\s?O\.?\s*Box\s+\d{1,6}\b")

# Issuer prefixes (first digits) and lengths of the card networks in wide use.
_CARD_ISSUERS: tuple[tuple[Callable[[str], bool], tuple[int, ...]], ...] = (
    (lambda d: d[0] == "4", (13, 16, 19)),                                               # Visa
    (lambda d: 51 <= int(d[:2]) <= 55 or 2221 <= int(d[:4]) <= 2720, (16,)),             # Mastercard
    (lambda d: d[:2] in ("34", "37"), (15,)),                                             # American Express
    (lambda d: d[:4] == "6011" or d[:2] == "65" or 644 <= int(d[:3]) <= 649, (16, 19)),   # Discover
    (lambda d: 3528 <= int(d[:4]) <= 3589, (16, 19)),                                     # JCB
    (lambda d: d[:2] in ("36", "38") or 300 <= int(d[:3]) <= 305, (14,)),                # Diners Club
    (lambda d: d[:2] == "62", (16, 19)),                                                  # UnionPay
)

# ISO 13616 lengths of the IBANs of common countries; other countries: any length 15-34 that passes mod 97.
IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24,
    "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}


def card_number(digits: str) -> bool:
    """A Luhn-valid number with a known issuer prefix and a length that issuer uses."""
    if not luhn_valid(digits):
        return False
    return any(len(digits) in lengths and prefix(digits) for prefix, lengths in _CARD_ISSUERS)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop sentence punctuation a greedy pattern took at the end (a URL or address before a full stop)."""
    while end > start and text[end - 1] in _TRAILING:
        end -= 1
    return start, end


def _value(match: re.Match[str]) -> tuple[int, int]:
    return match.start("value"), match.end("value")


def _cards(text: str) -> Iterator[Span]:
    """The longest run of digit groups that is a card number (a card followed by its CVV or expiry still counts)."""
    for match in CARD.finditer(text):
        groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", match.group())]
        first = 0
        while first < len(groups):
            for last in range(len(groups) - 1, first - 1, -1):
                start, end = groups[first][0], groups[last][1]
                if card_number(_digits(match.group()[start:end])):
                    yield Span(match.start() + start, match.start() + end, "CARD")
                    first = last
                    break
            first += 1


def _ibans(text: str) -> Iterator[Span]:
    for match in IBAN.finditer(text):
        raw = match.group()
        compact = raw.replace(" ", "").upper()
        lengths = [IBAN_LENGTHS[compact[:2]]] if compact[:2] in IBAN_LENGTHS else range(min(len(compact), 34), 14, -1)
        for length in lengths:
            if length <= len(compact) and iban_valid(compact[:length]):
                # map the compact length back onto the raw text (which may have spaces)
                seen, end = 0, match.start()
                for offset, char in enumerate(raw):
                    if char != " ":
                        seen += 1
                    if seen == length:
                        end = match.start() + offset + 1
                        break
                yield Span(match.start(), end, "IBAN")
                break


def _ssns(text: str) -> Iterator[Span]:
    for match in SSN.finditer(text):
        yield Span(match.start(), match.end(), "SSN")
    for match in SSN_CONTEXT.finditer(text):
        yield Span(*_value(match), "SSN")


def _phones(text: str) -> Iterator[Span]:
    for pattern in (PHONE_INTERNATIONAL, PHONE_NANP, PHONE_TRUNK):
        for match in pattern.finditer(text):
            if 7 <= len(_digits(match.group())) <= 15:
                yield Span(match.start(), match.end(), "PHONE")
    for match in PHONE_LOCAL.finditer(text):
        yield Span(*_value(match), "PHONE")


def _ips(text: str) -> Iterator[Span]:
    for match in IPV4.finditer(text):
        yield Span(match.start(), match.end(), "IP")
    for match in IPV6.finditer(text):
        candidate = match.group()
        if len(candidate) < 6 or candidate.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield Span(match.start(), match.end(), "IP")


def _simple(pattern: re.Pattern[str], kind: str, strip: bool = False) -> Callable[[str], Iterator[Span]]:
    def find(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            start, end = _strip(text, match.start(), match.end()) if strip else (match.start(), match.end())
            if end > start:
                yield Span(start, end, kind)
    return find


def _grouped(pattern: re.Pattern[str], kind: str) -> Callable[[str], Iterator[Span]]:
    def find(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            if len(_digits(match.group("value"))) >= 4:
                yield Span(*_value(match), kind)
    return find


FINDERS: tuple[Callable[[str], Iterator[Span]], ...] = (
    _simple(CREDENTIAL_URL, "CREDENTIAL_URL", strip=True),
    _simple(EMAIL, "EMAIL"),
    _ibans,
    _cards,
    _ssns,
    _grouped(PASSPORT, "PASSPORT"),
    _grouped(DRIVERS_LICENSE, "DRIVERS_LICENSE"),
    _phones,
    _ips,
    _simple(ADDRESS, "ADDRESS", strip=True),
    _simple(PO_BOX, "ADDRESS"),
)


def find_structured(text: str) -> list[Span]:
    """Every structured span in ``text`` (overlaps included; ``spans.merge`` resolves them)."""
    return [span for finder in FINDERS for span in finder(text)]
