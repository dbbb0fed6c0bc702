"""Train the judge: a head over MiniLM (frozen by default, or its top layers fine-tuned), multi-task, on 2 CPU cores.

Two losses on one harm logit: binary cross-entropy on rows people labelled
harmful or not (each source weighs the same, and within a source each class),
and Bradley-Terry on comparison pairs (the red teamer's "more harmful" pick
gets the higher logit). The lower MiniLM layers (all six by default) stay as
pretrained and run once per text; only the top ``upper_layers`` and the head
are trained, which is what makes a full rebuild fit in minutes on a CPU.
Needs the ``train`` extra (torch); the result is exported to ONNX and scored
without torch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sparring.scoring.pm.inputs import PairEncoder, length_batches
from sparring.scoring.pm.model import most_harmful_window

if TYPE_CHECKING:
    import torch

    from sparring.scoring.pm.minilm import JudgeNetwork


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights besides the data; recorded in the artifact."""

    # The default is a frozen encoder under a linear head: in leave-one-source-out cross-validation it beat
    # fine-tuning the top layer (which learned each source's quirks) on five of six held-out sources.
    upper_layers: int = 0  # MiniLM layers run per training step; the rest run once per text
    epochs: int = 20
    batch_size: int = 32
    pair_batch: int = 4
    learning_rate: float = 0.0  # the upper MiniLM layers; 0 = a frozen encoder (the head alone learns)
    head_learning_rate: float = 3e-3
    weight_decay: float = 0.01
    pair_weight: float = 1.0
    per_source: int = 3000
    max_pairs: int = 2000  # training pairs used (one epoch of rows sees about rows / batch_size * pair_batch)
    pool_layers: int = 3  # the head reads the average of the last 3 layers (needs a frozen encoder when > 1)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.upper_layers <= 6 or not 1 <= self.pool_layers <= 6:
            raise ValueError(f"upper_layers must be 0-6 and pool_layers 1-6 (MiniLM has 6 layers), got "
                             f"{self.upper_layers} and {self.pool_layers}")
        if self.pool_layers > 1 and self.upper_layers > 0:
            raise ValueError("pool_layers > 1 needs a frozen encoder (upper_layers = 0)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingTexts:
    """All texts the judge sees in training, encoded once; rows and pairs index into ``encoded``."""

    encoded: list[tuple[list[int], int]]
    labelled: np.ndarray  # indices into encoded
    labels: np.ndarray  # 1.0 = harmful
    weights: np.ndarray  # per labelled row: each source and each class within it weigh the same
    pairs: np.ndarray  # (n, 2): index of the chosen (less harmful) and rejected text
    # (k, 2): a labelled row's position and the index of one of its later windows (not trained on)
    later_windows: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))


def balanced_weights(sources: Sequence[str], labels: np.ndarray) -> np.ndarray:
    """Weights with the mean 1 that give every (source, class) cell of a source the same total."""
    keys = list(zip(sources, labels.astype(int).tolist(), strict=False))
    cells: dict[tuple[str, int], int] = {}
    for key in keys:
        cells[key] = cells.get(key, 0) + 1
    classes = {source: sum(1 for s, _ in cells if s == source) for source, _ in cells}
    raw = np.array([1.0 / (cells[key] * classes[key[0]]) for key in keys])
    return raw * len(raw) / raw.sum()


def lower_states(network: JudgeNetwork, encoder: PairEncoder, encoded: Sequence[tuple[list[int], int]],
                 upper_layers: int, batch_size: int = 64) -> list[np.ndarray]:
    """Hidden states after the frozen layers, one ``(length, 384)`` float16 array per text."""
    import torch

    from sparring.scoring.pm.minilm import LAYERS

    states: list[np.ndarray] = [np.zeros(0)] * len(encoded)
    with torch.no_grad():
        for indices in length_batches([len(ids) for ids, _ in encoded], batch_size):
            batch = encoder.pad([encoded[i] for i in indices])
            ids, mask, types = (torch.from_numpy(a) for a in (batch.ids, batch.mask, batch.types))
            hidden = network.lower(ids, mask, types, LAYERS - upper_layers)
            for row, index in enumerate(indices):
                states[index] = hidden[row, : len(encoded[index][0])].numpy().astype(np.float16)
    return states


def _stack(states: Sequence[np.ndarray], indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(states[i]) for i in indices)
    hidden = np.zeros((len(indices), width, states[indices[0]].shape[1]), dtype=np.float32)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    for row, index in enumerate(indices):
        hidden[row, : len(states[index])] = states[index]
        mask[row, : len(states[index])] = 1
    return torch.from_numpy(hidden), torch.from_numpy(mask)


def fit(network: JudgeNetwork, states: Sequence[np.ndarray], texts: TrainingTexts, recipe: Recipe,
        log: Any = None) -> None:
    """Train the upper layers and the head in place on the cached lower states."""
    import torch

    from sparring.scoring.pm.minilm import LAYERS

    start = LAYERS - recipe.upper_layers
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    layers = list(network.encoder.layers[start:].parameters()) if recipe.learning_rate > 0 else []
    for parameter in [*layers, *network.head.parameters()]:
        parameter.requires_grad_(True)
    groups = [{"params": list(network.head.parameters()), "lr": recipe.head_learning_rate}]
    if layers:
        groups.append({"params": layers, "lr": recipe.learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)
    rows = list(range(len(texts.labelled)))
    pairs = list(range(len(texts.pairs)))
    # with labelled rows an epoch is a pass over them; with pairs alone, a pass over the pairs
    steps_per_epoch = max(1, len(rows) // recipe.batch_size if rows else len(pairs) // recipe.pair_batch)
    total = steps_per_epoch * recipe.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, total // 20)) * max(0.0, 1 - step / total))
    network.train()
    pair_cursor = len(pairs)
    for epoch in range(recipe.epochs):
        rng.shuffle(rows)
        for step in range(steps_per_epoch):
            batch = rows[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            loss = torch.zeros(())
            if batch:
                hidden, mask = _stack(states, [int(texts.labelled[i]) for i in batch])
                logits = network.upper(hidden, mask, start)
                labels = torch.from_numpy(texts.labels[batch].astype(np.float32))
                weights = torch.from_numpy(texts.weights[batch].astype(np.float32))
                loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
                        * weights).mean()
            if pairs and (recipe.pair_weight > 0 or not batch):
                if pair_cursor + recipe.pair_batch > len(pairs):
                    rng.shuffle(pairs)
                    pair_cursor = 0
                chosen_rejected = texts.pairs[pairs[pair_cursor: pair_cursor + recipe.pair_batch]]
                pair_cursor += recipe.pair_batch
                hidden, mask = _stack(states, [int(i) for i in chosen_rejected.reshape(-1)])
                both = network.upper(hidden, mask, start).view(-1, 2)
                loss = loss + (recipe.pair_weight if batch else 1.0) * torch.nn.functional.softplus(both[:, 0] - both[:, 1]).mean()
            optimizer.zero_grad()
            torch.autograd.backward(loss)  # loss.backward(), which torch leaves unannotated
            optimizer.step()
            schedule.step()
            if log is not None and step % 50 == 0:
                log(f"epoch {epoch + 1}/{recipe.epochs} step {step}/{steps_per_epoch} loss {loss.item():.3f}")
    network.eval()


def predict(network: JudgeNetwork, states: Sequence[np.ndarray], indices: Sequence[int], upper_layers: int,
            batch_size: int = 64) -> np.ndarray:
    """Harm logits of the cached texts ``indices`` (in that order)."""
    import torch

    from sparring.scoring.pm.minilm import LAYERS

    out = np.zeros(len(indices), dtype=np.float64)
    network.eval()
    with torch.no_grad():
        for batch in length_batches([len(states[i]) for i in indices], batch_size):
            hidden, mask = _stack(states, [indices[j] for j in batch])
            out[batch] = network.upper(hidden, mask, LAYERS - upper_layers).numpy()
    return out


def row_harm(network: JudgeNetwork, states: Sequence[np.ndarray], texts: TrainingTexts, positions: np.ndarray,
             upper_layers: int) -> np.ndarray:
    """Harm logits of the labelled rows at ``positions`` as the scorer computes them: the most harmful window."""
    later = texts.later_windows[np.isin(texts.later_windows[:, 0], positions)]
    logits = predict(network, states, [int(i) for i in (*texts.labelled[positions], *later[:, 1])], upper_layers)
    where = {int(position): k for k, position in enumerate(positions)}
    owners = [*range(len(positions)), *(where[int(p)] for p in later[:, 0])]
    return most_harmful_window(logits, owners, len(positions))


def fresh_network(seed: int, pool_layers: int = 1) -> JudgeNetwork:
    """The pretrained MiniLM under a new head (the head's initial weights come from ``seed``)."""
    import torch

    from sparring.scoring.pm.minilm import JudgeNetwork, load_pretrained

    torch.manual_seed(seed)
    return JudgeNetwork(load_pretrained(), pool_layers)
