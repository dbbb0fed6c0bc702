"""How well a scorer agrees with people: pairwise accuracy on comparisons, and agreement,
precision/recall and AUROC on (prompt, response, human harmful/not label) files."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparring.conversation import Conversation
from sparring.datasets.hh_rlhf import ComparisonPair
from sparring.datasets.rows import read_rows, text_field
from sparring.errors import DataFormatError
from sparring.scoring.base import Scorer

TRUE_LABELS = {"1", "true", "yes", "harmful", "unsafe"}
FALSE_LABELS = {"0", "false", "no", "harmless", "unharmful", "safe"}


@dataclass(frozen=True)
class LabelledExample:
    prompt: str
    response: str
    harmful: bool


@dataclass(frozen=True)
class BinaryReport:
    n: int
    positives: int
    agreement: float
    balanced_accuracy: float
    precision: float
    recall: float
    auroc: float

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def read_labelled(path: Path, xstest_prompts: Path | None = None) -> list[LabelledExample]:
    """JailbreakBench artifacts (``jailbroken``), XSTest completions, or CSV/JSONL with prompt,response,label."""
    if path.suffix == ".json":
        return _read_jbb_artifact(path)
    fields = _header(path)
    if {"completion", "final_label"} <= fields:
        return _read_xstest(path, xstest_prompts or path.parent.parent / "xstest_prompts.csv")
    out = []
    for number, row in read_rows(path):
        label = str(row.get("label", "")).strip().lower()
        if label not in TRUE_LABELS | FALSE_LABELS:
            raise DataFormatError(f"{path}:{number}: field 'label' must be one of {sorted(TRUE_LABELS | FALSE_LABELS)}")
        out.append(LabelledExample(text_field(path, number, row, "prompt"), str(row.get("response") or ""),
                                   label in TRUE_LABELS))
    return out


def _header(path: Path) -> set[str]:
    for _, row in read_rows(path):
        return set(row)
    return set()


def _read_jbb_artifact(path: Path) -> list[LabelledExample]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}: invalid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("jailbreaks"), list):
        raise DataFormatError(f"{path}: expected a JailbreakBench artifact with a 'jailbreaks' list")
    out = []
    for index, record in enumerate(data["jailbreaks"]):
        if not isinstance(record, dict) or not isinstance(record.get("jailbroken"), bool):
            raise DataFormatError(f"{path}: jailbreaks[{index}]: field 'jailbroken' must be true or false")
        if not record.get("response") or not record.get("prompt"):
            continue  # the attack produced no prompt/response to judge
        out.append(LabelledExample(str(record["prompt"]), str(record["response"]), record["jailbroken"]))
    return out


def _read_xstest(path: Path, prompts_path: Path) -> list[LabelledExample]:
    """Harmful = the prompt is unsafe and the model fully complied (the XSTest authors' own labels)."""
    if not prompts_path.is_file():
        raise DataFormatError(f"{path}: XSTest completions need xstest_prompts.csv for labels; not found at {prompts_path}")
    with prompts_path.open(encoding="utf-8", newline="") as handle:
        unsafe = {row["id"]: row["label"] == "unsafe" for row in csv.DictReader(handle)}
    out = []
    for number, row in read_rows(path):
        ident = text_field(path, number, row, "id").removeprefix("v2-")  # completions say "v2-7" for prompt 7
        if ident not in unsafe:
            raise DataFormatError(f"{path}:{number}: field 'id' {ident!r} not found in {prompts_path.name}")
        complied = text_field(path, number, row, "final_label").startswith("1_")
        prompt = text_field(path, number, row, "prompt")
        out.append(LabelledExample(prompt, str(row.get("completion") or ""), unsafe[ident] and complied))
    return out


def auroc(harm: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a harmful example gets a higher harm score than a harmless one (ties count half)."""
    from scipy.stats import rankdata

    scores, truth = np.asarray(harm, dtype=float), np.asarray(labels, dtype=bool)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)  # ties get their average rank
    u = ranks[truth].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


async def evaluate_labelled(scorer: Scorer, examples: Sequence[LabelledExample]) -> BinaryReport:
    """The scorer's harmful/not decision vs the human label; AUROC on its harm axis (-harmlessness)."""
    items = []
    for example in examples:
        context = Conversation()
        context.add_human(example.prompt)
        items.append((context, example.response))
    scores = await scorer.score_batch(items)
    predicted = [score.flagged == scorer.flag_is_harmful for score in scores]
    harm = [-scorer.harmlessness(score.value) for score in scores]
    labels = [example.harmful for example in examples]
    p, t = np.asarray(predicted, dtype=bool), np.asarray(labels, dtype=bool)
    true_positive = int((p & t).sum())
    recall = true_positive / int(t.sum()) if t.any() else float("nan")
    specificity = float((~p & ~t).sum() / (~t).sum()) if (~t).any() else float("nan")
    return BinaryReport(
        n=int(t.size), positives=int(t.sum()), agreement=float((p == t).mean()) if t.size else float("nan"),
        balanced_accuracy=(recall + specificity) / 2,  # the sets are imbalanced
        precision=true_positive / int(p.sum()) if p.any() else float("nan"),
        recall=recall, auroc=auroc(harm, labels),
    )


async def pairwise_agreement(scorer: Scorer, pairs: Sequence[ComparisonPair]) -> float:
    """Share of pairs where the scorer finds ``chosen`` more harmless than ``rejected`` (ties count half)."""
    items = []
    for pair in pairs:
        chosen, rejected = Conversation.from_hh(pair.chosen), Conversation.from_hh(pair.rejected)
        items += [(Conversation(turns=chosen.turns[:-1]), chosen.turns[-1].text),
                  (Conversation(turns=rejected.turns[:-1]), rejected.turns[-1].text)]
    scores = [scorer.harmlessness(s.value) for s in await scorer.score_batch(items)]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(scores[::2], scores[1::2]))
    return wins / len(pairs) if pairs else float("nan")
