"""PII scrubbing measured: precision and recall per kind on planted fake values, false positives on real dialogues.

The NER engine (presidio over the offline spaCy package) is loaded once for the
whole test session through ``shared_engine``, as the release command does.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from release_support import NAME_FORMATS, STRUCTURED, hh_dialogues, labelled_set, name_format

from sparring.errors import ConfigError
from sparring.release.checksums import iban_check_digits, iban_valid, luhn_check_digit, luhn_valid
from sparring.release.ner import NerEngine, shared_engine
from sparring.release.patterns import find_structured
from sparring.release.scrub import Scrubber, TextField, role_structure
from sparring.release.spans import merge


@pytest.fixture(scope="session")
def scrubber() -> Scrubber:
    return Scrubber(shared_engine())


def test_check_digits() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert luhn_valid("378282246310005")  # a published Amex test number
    assert iban_valid("DE89 3704 0044 0532 0130 00") and iban_valid("GB82WEST12345698765432")
    assert not iban_valid("DE89 3704 0044 0532 0130 01")
    rng = random.Random(0)
    for _ in range(200):
        partial = "".join(rng.choice("0123456789") for _ in range(15))
        assert luhn_valid(partial + luhn_check_digit(partial))
        bban = "".join(rng.choice("0123456789") for _ in range(18))
        assert iban_valid("DE" + iban_check_digits("DE", bban) + bban)


def test_checks_reject_lookalikes() -> None:
    """Numbers with the shape but not the check are left alone: versions, timestamps, order numbers."""
    texts = ["Version 1.2.3 shipped at 12:30:45.", "Order 4111111111111112 was late.", "It costs 1,000,000 dollars.",
             "Call 911 now.", "The year 2023 and 10:30.", "Room 1204, floor 3, 45 minutes."]
    for text in texts:
        assert merge(find_structured(text)) == [], text
    # a wrong check digit is no IBAN (its digit groups may still look like a phone number, and go)
    assert "IBAN" not in {s.kind for s in find_structured("IBAN DE89 3704 0044 0532 0130 01 is wrong.")}


def test_placeholders_are_consistent_and_the_structure_is_untouched(scrubber: Scrubber) -> None:
    transcript = ("\n\nHuman: My number is (415) 555-2671 and my friend Nadia Ferreira knows it."
                  "\n\nAssistant: I will not call 415-555-2671."
                  "\n\nHuman: Nadia lives at 12 Willow Lane. Email nadia.f@example.org or call (212) 555-0199."
                  "\n\nAssistant:")
    chosen = transcript + " Please do not share (415) 555-2671."
    rejected = transcript + " Sure, Nadia Ferreira is at 12 Willow Lane."
    [done] = scrubber.scrub([[TextField("task_description", "find Nadia Ferreira"),
                              TextField("transcript", transcript, True),
                              TextField("chosen", chosen, True), TextField("rejected", rejected, True)]])
    out = done.fields
    for name, original in (("transcript", transcript), ("chosen", chosen), ("rejected", rejected)):
        assert role_structure(out[name]) == role_structure(original)  # markers never touched
        assert out[name].startswith("\n\nHuman: ") and out[name].count("\n\nAssistant:") == original.count(
            "\n\nAssistant:")
    text = out["transcript"]
    assert "555" not in text and "Nadia" not in text and "Willow" not in text and "@" not in text
    assert text.count("[PHONE_1]") == 2 and "[PHONE_2]" in text  # same number -> same placeholder
    assert "[NAME_1]" in out["task_description"] and text.count("[NAME_1]") == 2  # "Nadia" alone = Nadia Ferreira
    assert "[PHONE_1]" in out["chosen"] and "[ADDRESS_1]" in out["rejected"] and "[NAME_1]" in out["rejected"]
    # the log names kind, field and where the placeholder stands; never the value
    for entry in done.replacements:
        field_text = out[entry.field]
        assert field_text[entry.offset:entry.offset + len(entry.placeholder)] == entry.placeholder
        assert entry.placeholder.startswith(f"[{entry.kind}_")
    assert not any("555" in repr(e) or "Nadia" in repr(e) for e in done.replacements)


def test_engine_is_built_once_per_process(scrubber: Scrubber) -> None:
    before = NerEngine.loads
    for _ in range(3):
        scrubber.scrub([[TextField("t", "\n\nHuman: Is Maria Lopez in Boise?\n\nAssistant: No.", True)]])
    assert shared_engine() is scrubber.ner and NerEngine.loads == before == 1
    assert scrubber.ner.load_seconds > 0  # measured, reported by the command


def test_a_missing_model_package_is_a_config_error_not_a_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy.cli

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download a model")

    monkeypatch.setattr(spacy.cli, "download", no_download)
    with pytest.raises(ConfigError, match="not installed .*no download"):
        NerEngine(model="en_core_web_nonexistent")


def _covered(text: str, spans: list, start: int, end: int) -> bool:
    """Every character of the value is replaced (the space between two replaced words may stay)."""
    return all(any(s.start <= i < s.end for s in spans) for i in range(start, end) if not text[i].isspace())


def test_precision_and_recall_per_kind(shared_data: Path, scrubber: Scrubber, artifacts_dir: Path) -> None:
    """Recall: the planted value is wholly replaced. Precision: replacements inside planted sentences of the right kind."""
    dialogues = labelled_set(shared_data, per_kind=60, names=300)
    found = scrubber.find([[TextField("transcript", d.transcript, True)] for d in dialogues])
    total, recalled, detected, correct = Counter(), Counter(), Counter(), Counter()
    formats, formats_recalled = Counter(), Counter()
    for dialogue, [spans] in zip(dialogues, found, strict=True):
        for planted in dialogue.planted:
            total[planted.kind] += 1
            hit = _covered(dialogue.transcript, spans, planted.start, planted.end)
            recalled[planted.kind] += hit
            if planted.kind == "NAME":
                formats[name_format(planted.value)] += 1
                formats_recalled[name_format(planted.value)] += hit
        for span in spans:
            if any(a <= span.start < b for a, b in dialogue.sentence_ranges):
                detected[span.kind] += 1
                correct[span.kind] += any(p.kind == span.kind and span.start < p.end and p.start < span.end
                                          for p in dialogue.planted)
    lines = [f"{'kind':16} {'recall':>8} {'precision':>10}  planted"]
    for kind in sorted(total):
        precision = correct[kind] / detected[kind] if detected[kind] else float("nan")
        lines.append(f"{kind:16} {recalled[kind] / total[kind]:8.3f} {precision:10.3f}  {total[kind]}")
    lines += ["name recall per format: " + ", ".join(
        f"{f} {formats_recalled[f] / formats[f]:.2f} ({formats[f]})" for f in NAME_FORMATS if formats[f])]
    report = "\n".join(lines)
    print("\n" + report)
    (artifacts_dir / "release").mkdir(parents=True, exist_ok=True)
    (artifacts_dir / "release" / "precision_recall.txt").write_text(report + "\n", encoding="utf-8")
    for kind in STRUCTURED:
        assert recalled[kind] / total[kind] >= 0.99, report
        assert correct[kind] / detected[kind] >= 0.95, report
    assert recalled["NAME"] / total["NAME"] >= 0.90, report
    assert correct["NAME"] / detected["NAME"] >= 0.80, report
    assert recalled["LOCATION"] / total["LOCATION"] >= 0.75, report


def test_false_positive_rate_on_real_dialogues(shared_data: Path, scrubber: Scrubber, artifacts_dir: Path) -> None:
    """Real hh-rlhf dialogues have (almost) no personal information: every replacement counts against us."""
    rows = hh_dialogues(shared_data, limit=400)
    texts = [row["chosen"] for row in rows]
    found = scrubber.find([[TextField("transcript", text, True)] for text in texts])
    words = sum(len(text.split()) for text in texts)
    kinds: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    for text, [spans] in zip(texts, found, strict=True):
        for span in spans:
            kinds[span.kind] += 1
            if len(examples[span.kind]) < 12:
                examples[span.kind].append(re.sub(r"\s+", " ", text[span.start:span.end])[:40])
    rate = 1000 * sum(kinds.values()) / words
    lines = [f"{len(texts)} real dialogues, {words} words: {rate:.2f} placeholders per 1,000 words"]
    lines += [f"  {kind:16} {1000 * n / words:6.2f} per 1,000 words; e.g. {examples[kind]}"
              for kind, n in kinds.most_common()]
    report = "\n".join(lines)
    print("\n" + report)
    (artifacts_dir / "release").mkdir(parents=True, exist_ok=True)
    (artifacts_dir / "release" / "false_positives.txt").write_text(report + "\n", encoding="utf-8")
    assert rate < 12.0, report  # measured 7-8: mostly public figures and countries, replaced by design
    structured = sum(n for kind, n in kinds.items() if kind in STRUCTURED)
    assert 1000 * structured / words < 0.5, report
