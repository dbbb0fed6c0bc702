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
    """A human's (or a named automated judge's) harmful/not verdict on one response to one request.

    ``group`` says which goal the request pursues (several responses per goal), so
    a judge can be measured within a goal and cross-validated without leaking it.
    """

    prompt: str
    response: str
    harmful: bool
    group: str = ""


@dataclass(frozen=True)
class BinaryReport:
    n: int
    positives: int
    agreement: float
    balanced_accuracy: float
    precision: float
    recall: float
    auroc: float
    within_goal_auroc: float = float("nan")
    unscored: int = 0  # examples the scorer could not judge: left out of every number above

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
        prompt = text_field(path, number, row, "prompt")
        out.append(LabelledExample(prompt, str(row.get("response") or ""), label in TRUE_LABELS,
                                   str(row.get("group") or prompt)))
    return out


def _header(path: Path) -> set[str]:
    for _, row in read_rows(path):
        return set(row)
    return set()


def _read_jbb_artifact(path: Path) -> list[LabelledExample]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not UTF-8 text") from None
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
        out.append(LabelledExample(str(record["prompt"]), str(record["response"]), record["jailbroken"],
                                   str(record.get("goal") or record["prompt"])))
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
        out.append(LabelledExample(prompt, str(row.get("completion") or ""), unsafe[ident] and complied, ident))
    return out


def auroc(harm: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
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
    judged = [(score, example) for score, example in zip(await scorer.score_batch(items), examples, strict=False) if score.scored]
    predicted = [score.flagged == scorer.flag_is_harmful for score, _ in judged]
    harm = [-scorer.harmlessness(score.value) for score, _ in judged]  # type: ignore[arg-type]
    labels = [example.harmful for _, example in judged]
    p, t = np.asarray(predicted, dtype=bool), np.asarray(labels, dtype=bool)
    true_positive = int((p & t).sum())
    recall = true_positive / int(t.sum()) if t.any() else float("nan")
    specificity = float((~p & ~t).sum() / (~t).sum()) if (~t).any() else float("nan")
    return BinaryReport(
        n=int(t.size), positives=int(t.sum()), agreement=float((p == t).mean()) if t.size else float("nan"),
        balanced_accuracy=(recall + specificity) / 2,  # the sets are imbalanced
        precision=true_positive / int(p.sum()) if p.any() else float("nan"),
        recall=recall, auroc=auroc(harm, labels),
        within_goal_auroc=within_group_auroc(harm, labels, [example.group for _, example in judged]),
        unscored=len(examples) - len(judged),
    )


async def pairwise_agreement(scorer: Scorer, pairs: Sequence[ComparisonPair]) -> float:
    """Share of pairs where the scorer finds ``chosen`` more harmless than ``rejected`` (ties count half).

    Pairs with an unscored side are left out.
    """
    items = []
    for pair in pairs:
        chosen, rejected = Conversation.from_hh(pair.chosen), Conversation.from_hh(pair.rejected)
        items += [(Conversation(turns=chosen.turns[:-1]), chosen.turns[-1].text),
                  (Conversation(turns=rejected.turns[:-1]), rejected.turns[-1].text)]
    scores = await scorer.score_batch(items)
    judged = [(scorer.harmlessness(a.value), scorer.harmlessness(b.value))  # type: ignore[arg-type]
              for a, b in zip(scores[::2], scores[1::2], strict=False) if a.scored and b.scored]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in judged)
    return wins / len(judged) if judged else float("nan")


def within_group_auroc(harm: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray,
                       groups: Sequence[str]) -> float:
    """AUROC counted only over (harmful, harmless) pairs that share a goal: does the judge read the response?

    A judge that keys on the request alone scores 0.5 here however well it does overall.
    Groups with one class only contribute nothing; nan when no group has both.
    """
    from scipy.stats import rankdata

    scores, truth = np.asarray(harm, dtype=float), np.asarray(labels, dtype=bool)
    by_group: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        by_group.setdefault(group, []).append(index)
    wins = comparisons = 0.0
    for indices in by_group.values():
        t, s = truth[indices], scores[indices]
        positives, negatives = int(t.sum()), int((~t).sum())
        if positives and negatives:
            ranks = rankdata(s)
            wins += ranks[t].sum() - positives * (positives + 1) / 2
            comparisons += positives * negatives
    return float(wins / comparisons) if comparisons else float("nan")


def expected_calibration_error(probabilities: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray,
                               bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """ECE over equal-width bins of P(harmful), and the reliability table (bin, n, mean P, share harmful)."""
    p, t = np.asarray(probabilities, dtype=float), np.asarray(labels, dtype=float)
    table, error = [], 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    for low, high in zip(edges[:-1], edges[1:], strict=False):
        inside = (p >= low) & ((p < high) if high < 1.0 else (p <= high))
        if inside.any():
            confidence, observed = float(p[inside].mean()), float(t[inside].mean())
            error += abs(confidence - observed) * inside.sum() / p.size
            table.append({"low": float(low), "high": float(high), "n": int(inside.sum()),
                          "mean_p_harmful": confidence, "share_harmful": observed})
    return float(error), table


def balanced_threshold(harm: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray,
                       sources: Sequence[str]) -> float:
    """The harm cut (harmful iff harm > cut) with the best balanced accuracy averaged over sources.

    Averaging per source keeps one large source from setting the cut for all;
    the cut sits midway between neighbouring distinct scores.
    """
    scores, truth = np.asarray(harm, dtype=float), np.asarray(labels, dtype=bool)
    candidates = np.unique(scores)
    if candidates.size < 2:
        return float(candidates[0]) if candidates.size else 0.0
    cuts = (candidates[:-1] + candidates[1:]) / 2
    if cuts.size > 512:  # quantiles are plenty for a threshold; keeps this linear in the data
        cuts = np.unique(np.quantile(scores, np.linspace(0.002, 0.998, 512)))
    totals = np.zeros(cuts.size)
    names = sorted(set(sources))
    for name in names:
        mine = np.array([s == name for s in sources])
        s, t = scores[mine], truth[mine]
        flagged = s[None, :] > cuts[:, None]
        recall = (flagged & t).sum(1) / max(int(t.sum()), 1) if t.any() else np.full(cuts.size, 0.5)
        specificity = (~flagged & ~t).sum(1) / max(int((~t).sum()), 1) if (~t).any() else np.full(cuts.size, 0.5)
        totals += (recall + specificity) / 2
    return float(cuts[int(np.argmax(totals))])
