"""The human-labelled harm judgements in ../shared/data as one table: (request, response, harmful?, source, goal).

Each source keeps its authors' own definition of "harmful" (see
../shared/data/README.md); the loader only maps it to one boolean and records
where each row came from, so a judge can be trained on some sources and
measured on another. Comparison pairs (hh-rlhf) stay pairs: they have no
absolute label.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparring.datasets.hh_rlhf import ComparisonPair, read_pairs
from sparring.datasets.rows import read_rows, text_field
from sparring.errors import DataFormatError
from sparring.scoring.evaluation import LabelledExample, read_labelled


@dataclass(frozen=True)
class HarmSource:
    """A labelled source: where it lives under the data directory, what kind of text it is, who labelled it."""

    name: str
    kind: str  # jailbreak answers, chit-chat replies, ...
    labels: str  # "people" or the automated judge that produced them
    read: Callable[[Path], list[LabelledExample]]


def read_gptfuzz(data: Path) -> list[LabelledExample]:
    """GPTFuzz: responses to 100 harmful questions under jailbreak templates; label 1 = jailbroken."""
    questions = {text_field(path, n, row, "index"): text_field(path, n, row, "text")
                 for path in [data / "gptfuzz" / "question_list.csv.gz"] for n, row in read_rows(path)}
    out = []
    for name in ("train.csv.gz", "evaluate.csv.gz"):
        path = data / "gptfuzz" / name
        for number, row in read_rows(path):
            question = text_field(path, number, row, "question")
            if question not in questions:
                raise DataFormatError(f"{path}:{number}: field 'question' {question!r} is not in question_list")
            out.append(LabelledExample(questions[question], str(row.get("Response") or ""),
                                       _binary(path, number, row, "label", {"1"}, {"0"}), f"q{question}"))
    return out


def read_jailbreak_eval_manual(data: Path) -> list[LabelledExample]:
    """Jailbreak responses judged by people for a safeguard violation; the prompt is the attack as sent."""
    path = data / "jailbreak-eval-manual" / "manual_data.csv.gz"
    return [LabelledExample(text_field(path, n, row, "prompt"), str(row.get("response") or ""),
                            _binary(path, n, row, "manual_safeguard_violation_label", {"True"}, {"False"}),
                            text_field(path, n, row, "intent"))
            for n, row in read_rows(path)]


def read_diasafety(data: Path) -> list[LabelledExample]:
    """DiaSafety: a chit-chat reply to a user's message, Safe/Unsafe by people (all three published splits)."""
    out = []
    for name in ("train.json.gz", "val.json.gz", "test.json.gz"):
        path = data / "diasafety" / name
        try:
            records = json.loads(gzip.open(path, "rt", encoding="utf-8").read())
        except (OSError, ValueError) as error:
            raise DataFormatError(f"{path}: not a gzipped JSON array ({error})") from None
        for index, record in enumerate(records):
            where = f"{path}: record {index}"
            if not isinstance(record, dict) or record.get("label") not in ("Safe", "Unsafe"):
                raise DataFormatError(f"{where}: field 'label' must be 'Safe' or 'Unsafe'")
            context = str(record.get("context") or "")
            out.append(LabelledExample(context, str(record.get("response") or ""), record["label"] == "Unsafe",
                                       context))
    return out


def read_openai_moderation(data: Path) -> list[LabelledExample]:
    """Texts with people's category flags and no request: harmful = any flag set (a missing key = unknown)."""
    path = data / "openai-moderation" / "samples-1680.jsonl.gz"
    out = []
    for number, row in read_rows(path):
        text = text_field(path, number, row, "prompt")
        flags = [value for key, value in row.items() if key != "prompt"]
        if not flags or any(value not in (0, 1) for value in flags):
            raise DataFormatError(f"{path}:{number}: category flags must be 0 or 1")
        out.append(LabelledExample("", text, any(value == 1 for value in flags), f"line{number}"))
    return out


def read_xstest(data: Path) -> list[LabelledExample]:
    """XSTest completions by five models: harmful = an unsafe prompt fully complied with."""
    folder = data / "xstest" / "completions"
    return [example for path in sorted(folder.glob("xstest_v2_completions_*.csv"))
            for example in read_labelled(path, data / "xstest" / "xstest_prompts.csv")]


def read_jbb_artifacts(data: Path) -> list[LabelledExample]:
    """JailbreakBench artifacts: attack prompts and responses, ``jailbroken`` by the benchmark's GPT-4 judge."""
    return [example for path in sorted((data / "jbb-artifacts").glob("*.json")) for example in read_labelled(path)]


SOURCES: dict[str, HarmSource] = {source.name: source for source in (
    HarmSource("gptfuzz", "jailbreak answers", "people", read_gptfuzz),
    HarmSource("jailbreak-eval-manual", "jailbreak answers", "people", read_jailbreak_eval_manual),
    HarmSource("diasafety", "chit-chat replies", "people", read_diasafety),
    HarmSource("openai-moderation", "texts without a request", "people", read_openai_moderation),
    HarmSource("xstest", "answers to safe and unsafe probes (over-refusal)", "people", read_xstest),
    HarmSource("jbb-artifacts", "jailbreak answers", "an automated judge (GPT-4, JailbreakBench)", read_jbb_artifacts),
)}
PAIRS_FILE = Path("hh-rlhf") / "harmless-base-test.jsonl.gz"


@dataclass(frozen=True)
class LabelledRow:
    """One row of the common table."""

    source: str
    example: LabelledExample


def load_labelled(data: Path, sources: list[str] | None = None) -> list[LabelledRow]:
    """Every labelled row of the named sources (all by default), source by source in a fixed order."""
    names = list(SOURCES) if sources is None else sources
    unknown = [name for name in names if name not in SOURCES]
    if unknown:
        raise DataFormatError(f"unknown harm-label source(s) {unknown}; known: {sorted(SOURCES)}")
    return [LabelledRow(name, example) for name in names for example in SOURCES[name].read(data)
            if example.response.strip()]


def load_pairs(data: Path) -> list[ComparisonPair]:
    """The hh-rlhf harmlessness comparisons (``rejected`` = more harmful)."""
    return list(read_pairs(data / PAIRS_FILE))


def _binary(path: Path, number: int, row: dict, field: str, true: set[str], false: set[str]) -> bool:  # type: ignore[type-arg]
    value = str(row.get(field, "")).strip()
    if value not in true | false:
        raise DataFormatError(f"{path}:{number}: field {field!r} must be one of {sorted(true | false)}, got {value!r}")
    return value in true
