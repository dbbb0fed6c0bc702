"""A labelled PII set for the release tests (no tests here): fake values planted into real red-team dialogues.

Every value is generated: card numbers get a Luhn check digit, IBANs mod-97 check
digits, names are drawn from short lists of common first and last names (no real
person's data), phone numbers use fictional area codes. Each value goes into a
sentence template, and the sentence into a human utterance of a real hh-rlhf
dialogue; the label is the value's exact span in the resulting transcript.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparring.release.checksums import iban_check_digits, luhn_check_digit

FIRST = ["Maria", "James", "Aisha", "Liam", "Sofia", "Noah", "Priya", "Mateo", "Hannah", "Omar", "Elena", "Lucas",
         "Grace", "Daniel", "Yuki", "Samuel", "Fatima", "Ethan", "Chloe", "Adrian", "Nadia", "Victor", "Ingrid",
         "Tomas", "Leila", "Marcus", "Rosa", "Felix", "Amara", "Jonah"]
LAST = ["Lopez", "Whitfield", "Okafor", "Brennan", "Kowalski", "Haddad", "Lindqvist", "Moreau", "Castellano",
        "Nakamura", "Petrov", "Abernathy", "Delgado", "Fischer", "Ramirez", "Thornton", "Vasquez", "Hollister",
        "Gallagher", "Sorensen", "Mbeki", "Ferreira", "Dubois", "Kensington", "Alvarado", "Rasmussen"]
CITIES = ["Springfield", "Portland", "Tucson", "Albuquerque", "Savannah", "Boise", "Spokane", "Fresno", "Toledo",
          "Dayton", "Manchester", "Leeds", "Lyon", "Rotterdam", "Hamburg", "Valencia", "Melbourne", "Winnipeg"]
STREETS = ["Maple", "Oak", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Sunset", "Park", "Willow",
           "Highland", "Jefferson", "Lincoln", "Madison", "Church", "Mill", "River"]
SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive", "Dr",
            "Court", "Way", "Place", "Terrace"]
STATES = ["IL", "OR", "AZ", "NM", "GA", "ID", "WA", "CA", "OH", "TX", "NY", "FL"]
DOMAINS = ["example.com", "mail.example.org", "example.net", "inbox.example.co.uk", "corp.example.io"]


@dataclass(frozen=True)
class Planted:
    kind: str
    start: int
    end: int
    value: str


@dataclass(frozen=True)
class LabelledDialogue:
    transcript: str
    planted: list[Planted]
    sentence_ranges: list[tuple[int, int]]  # where planted sentences lie (labels are complete there)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


NAME_FORMATS = ("first last", "first", "title last", "first initial last", "lower case")


def name_format(value: str) -> str:
    """Which of ``NAME_FORMATS`` a planted name has (for recall per format)."""
    if value.islower():
        return "lower case"
    if " " not in value:
        return "first"
    if value.split()[0] in ("Mr.", "Mrs.", "Ms.", "Dr."):
        return "title last"
    return "first initial last" if "." in value else "first last"


def _name(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    roll = rng.random()
    if roll < 0.55:
        return f"{first} {last}"
    if roll < 0.75:
        return first
    if roll < 0.90:
        return f"{rng.choice(['Mr.', 'Mrs.', 'Ms.', 'Dr.'])} {last}"
    if roll < 0.95:
        return f"{first} {rng.choice('ABCDEJKMRST')}. {last}"
    return f"{first} {last}".lower()  # typed in a hurry


def _email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    local = rng.choice([f"{first}.{last}", f"{first}{last[0]}{rng.randint(1, 99)}", f"{first[0]}_{last}",
                        f"{first}+red{rng.randint(1, 9)}", f"{last.upper()}.{first}"])
    return f"{local}@{rng.choice(DOMAINS)}"


def _phone(rng: random.Random) -> str:
    area, exchange, line = f"{rng.randint(2, 9)}{_digits(rng, 2)}", f"{rng.randint(2, 9)}{_digits(rng, 2)}", _digits(rng, 4)
    return rng.choice([
        f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}",
        f"+1 {area} {exchange} {line}", f"1-{area}-{exchange}-{line}", f"{area}{exchange}{line}",
        f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}", f"+49 30 {_digits(rng, 7)}", f"020 {_digits(rng, 4)} {_digits(rng, 4)}",
        f"+33 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}", f"+1 ({area}) {exchange}-{line}",
    ])


def _address(rng: random.Random) -> str:
    base = f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"
    return rng.choice([
        base, f"{base}, Apt {rng.randint(1, 40)}{rng.choice('ABCD')}",
        f"{base}, {rng.choice(CITIES)}, {rng.choice(STATES)} {_digits(rng, 5)}",
        f"{rng.randint(1, 999)} {rng.choice(['N', 'S', 'E', 'W'])} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}",
        f"{rng.randint(1, 99)}{rng.choice('AB')} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}",
        f"PO Box {rng.randint(10, 99999)}",
    ])


def _ssn(rng: random.Random) -> str:
    area, group, serial = f"{rng.randint(1, 665):03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"
    return rng.choice([f"{area}-{group}-{serial}", f"{area} {group} {serial}"])


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                                 ("6011", 16), ("65", 16), ("3530", 16), ("4", 13)])
    partial = prefix + _digits(rng, length - len(prefix) - 1)
    number = partial + luhn_check_digit(partial)
    if length == 15:
        grouped = [number[:4], number[4:10], number[10:]]
    else:
        grouped = [number[i:i + 4] for i in range(0, len(number), 4)]
    return rng.choice([number, " ".join(grouped), "-".join(grouped)])


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice([
        ("DE", _digits(rng, 18)), ("GB", "WEST" + _digits(rng, 14)), ("FR", _digits(rng, 23)),
        ("NL", "ABNA" + _digits(rng, 10)), ("ES", _digits(rng, 20)), ("IT", "X" + _digits(rng, 22)),
        ("CH", _digits(rng, 17)), ("BE", _digits(rng, 12)),
    ])
    iban = country + iban_check_digits(country, bban) + bban
    return rng.choice([iban, " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))])


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return rng.choice([":".join(groups), f"2001:db8::{groups[6]}:{groups[7]}", f"fe80::{groups[5]}:{groups[6]}:{groups[7]}"])


def _passport(rng: random.Random) -> str:
    return rng.choice([_digits(rng, 9), rng.choice("ABCXZ") + _digits(rng, 8), "".join(rng.choices("ABCDEFGH", k=2)) + _digits(rng, 7)])


def _licence(rng: random.Random) -> str:
    return rng.choice([rng.choice("ABDSW") + _digits(rng, 7), f"{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 3)}",
                       f"{rng.choice('SW')}{_digits(rng, 3)}-{_digits(rng, 4)}-{_digits(rng, 4)}", _digits(rng, 8)])


def _url(rng: random.Random) -> str:
    user, password = rng.choice(FIRST).lower(), rng.choice(["hunter2", "s3cr3t!", "Passw0rd", "tr0ub4dor"])
    return rng.choice([f"https://{user}:{password}@{rng.choice(DOMAINS)}/admin",
                       f"ftp://{user}:{password}@files.{rng.choice(DOMAINS)}/pub/data.zip",
                       f"postgresql://{user}:{password}@db.{rng.choice(DOMAINS)}:5432/prod"])


# kind -> (value maker, sentence templates with {v})
KINDS: dict[str, tuple[Callable[[random.Random], str], list[str]]] = {
    "EMAIL": (_email, ["You can email me at {v} if you want.", "Her address is {v}", "Send it to {v}."]),
    "PHONE": (_phone, ["Call me at {v}.", "His number is {v}", "Text {v} tonight.", "My cell: {v}"]),
    "ADDRESS": (_address, ["I live at {v}.", "Send the package to {v}", "He lives at {v} with his wife."]),
    "SSN": (_ssn, ["My SSN is {v}.", "Her social security number is {v}", "Use {v} as the SSN."]),
    "PASSPORT": (_passport, ["My passport number is {v}.", "Passport: {v}", "here is his passport no. {v}"]),
    "DRIVERS_LICENSE": (_licence, ["My driver's license number is {v}.", "DL# {v}", "Her driving licence: {v}"]),
    "CARD": (_card, ["My card number is {v}, expiring 09/27.", "Charge it to {v}", "Card {v} has a limit."]),
    "IBAN": (_iban, ["Wire it to IBAN {v} please.", "My bank account is {v}", "Send the money to {v}."]),
    "IP": (_ip, ["His IP address is {v}.", "The server at {v} is mine", "Connect to {v} and look."]),
    "CREDENTIAL_URL": (_url, ["Log in with {v} and look.", "The backup is at {v}", "Use {v} to get in."]),
    "NAME": (_name, ["My neighbor {v} is really annoying.", "What do you think of {v}?",
                     "I want to get back at {v} from work.", "Tell {v} that I said hello.",
                     "Can you find where {v} lives?", "{v} stole my lunch again."]),
    "LOCATION": (lambda rng: rng.choice(CITIES), ["I grew up in {v}.", "Is {v} a safe place to live?",
                                                   "We moved to {v} last year."]),
}
STRUCTURED = [k for k in KINDS if k not in ("NAME", "LOCATION")]


def hh_dialogues(shared_data: Path, limit: int | None = None) -> list[dict[str, str]]:
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return rows[:limit] if limit else rows


def _human_ends(transcript: str) -> list[int]:
    """Offsets where a human utterance ends (just before the next marker)."""
    ends = []
    for match in re.finditer(r"\n\nHuman:", transcript):
        following = transcript.find("\n\nAssistant:", match.end())
        if following != -1:
            ends.append(following)
    return ends


def plant(transcript: str, items: list[tuple[str, str, str]], rng: random.Random) -> LabelledDialogue:
    """Insert each (kind, value, template) as a sentence at the end of a random human utterance."""
    planted: list[Planted] = []
    ranges: list[tuple[int, int]] = []
    for kind, value, template in items:
        end = rng.choice(_human_ends(transcript))
        before, after = template.split("{v}")
        sentence = " " + before + value + after
        transcript = transcript[:end] + sentence + transcript[end:]
        shift = len(sentence)
        planted = [Planted(p.kind, p.start + shift, p.end + shift, p.value) if p.start >= end else p for p in planted]
        ranges = [(a + shift, b + shift) if a >= end else (a, b) for a, b in ranges]
        start = end + 1 + len(before)
        planted.append(Planted(kind, start, start + len(value), value))
        ranges.append((end, end + shift))
    return LabelledDialogue(transcript, planted, ranges)


def labelled_set(shared_data: Path, per_kind: int = 60, names: int = 150, seed: int = 13) -> list[LabelledDialogue]:
    """``per_kind`` values of each structured kind and of locations, ``names`` names; three per dialogue."""
    rng = random.Random(seed)
    wanted = [k for k in STRUCTURED for _ in range(per_kind)] + ["LOCATION"] * per_kind + ["NAME"] * names
    rng.shuffle(wanted)
    dialogues = [d["chosen"] for d in hh_dialogues(shared_data) if _human_ends(d["chosen"])]
    rng.shuffle(dialogues)
    out = []
    for number in range(0, len(wanted), 3):
        items = []
        for kind in wanted[number:number + 3]:
            make, templates = KINDS[kind]
            items.append((kind, make(rng), rng.choice(templates)))
        out.append(plant(dialogues[number // 3 % len(dialogues)], items, rng))
    return out
