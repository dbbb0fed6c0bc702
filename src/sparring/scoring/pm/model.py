"""The preference model at scoring time: frozen encoder -> features -> a small numpy head.

The head is applied in numpy (no torch at scoring time beyond the encoder), and
an artifact is two small files, no pickle: ``head.npz`` (weights) and
``pm.json`` (encoder, feature recipe, threshold, provenance and metrics).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sparring.errors import DataFormatError
from sparring.scoring.pm.encoder import ENCODER_NAME, Encoder
from sparring.scoring.pm.features import (
    assemble,
    view_names,
    view_parameters,
    view_texts,
)

FORMAT_VERSION = 1
WEIGHTS_FILE = "head.npz"
META_FILE = "pm.json"
HEAD_ARRAYS = {"linear": ("w", "b"), "mlp": ("w1", "b1", "w2", "b2")}


@dataclass
class PreferenceModel:
    """Scores an assistant response given the HH context before it; higher = more harmless.

    ``threshold``: scores below it are judged harmful (chosen on training data only,
    see ``metadata["threshold_rule"]``).
    """

    recipe: tuple[str, ...]
    head: str
    weights: dict[str, np.ndarray]
    threshold: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    encoder: Encoder = field(default_factory=Encoder, repr=False, compare=False)

    def __post_init__(self) -> None:
        view_names(self.recipe)  # rejects unknown views early
        if self.head not in HEAD_ARRAYS:
            raise ValueError(f"unknown head {self.head!r}; known: {sorted(HEAD_ARRAYS)}")

    def features(self, contexts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Encode every view of every (context, response) in one encoder call."""
        if len(contexts) != len(responses):
            raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
        embeddings = self.encoder.encode(view_texts(self.recipe, contexts, responses))
        return assemble(self.recipe, embeddings, len(responses))

    def score(self, contexts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Harmlessness scores (float64), one per response; higher = more harmless."""
        if not responses:
            return np.zeros(0)
        return self.score_features(self.features(contexts, responses))

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """The head alone, for callers (training, evaluation) that already hold features."""
        x = features.astype(np.float32)
        w = self.weights
        if self.head == "linear":
            out = x @ w["w"] + w["b"]
        else:
            hidden = np.maximum(x @ w["w1"] + w["b1"], 0.0)
            out = hidden @ w["w2"] + w["b2"]
        return out.reshape(-1).astype(np.float64)

    def is_harmful(self, scores: np.ndarray) -> np.ndarray:
        return scores < self.threshold

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / WEIGHTS_FILE, **{k: np.asarray(v, dtype=np.float32) for k, v in self.weights.items()})
        meta = {
            "format_version": FORMAT_VERSION,
            "encoder": ENCODER_NAME,
            "recipe": list(self.recipe),
            "head": self.head,
            "threshold": self.threshold,
            "view_parameters": view_parameters(),
            **{k: v for k, v in self.metadata.items() if k not in _OWN_KEYS},
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> PreferenceModel:
        """Load an artifact written by ``save``; a bad file raises ``DataFormatError`` naming file and field."""
        directory = Path(directory)
        meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
        meta = _read_meta(meta_path)
        recipe = _field(meta_path, meta, "recipe", list)
        head = _field(meta_path, meta, "head", str)
        threshold = _field(meta_path, meta, "threshold", (int, float))
        if _field(meta_path, meta, "view_parameters", dict) != view_parameters():
            raise DataFormatError(
                f"{meta_path}: field 'view_parameters': {meta['view_parameters']} does not match this "
                f"version of sparring.scoring.pm.features {view_parameters()}; retrain the PM"
            )
        if not all(isinstance(part, str) for part in recipe):
            raise DataFormatError(f"{meta_path}: field 'recipe': expected a list of view names")
        if head not in HEAD_ARRAYS:
            raise DataFormatError(f"{meta_path}: field 'head': {head!r} is not one of {sorted(HEAD_ARRAYS)}")
        if not math.isfinite(threshold):
            raise DataFormatError(f"{meta_path}: field 'threshold': not a finite number")
        weights = _read_weights(weights_path, HEAD_ARRAYS[head])
        try:
            model = cls(tuple(recipe), head, weights, float(threshold), {k: v for k, v in meta.items() if k not in _OWN_KEYS})
        except ValueError as error:
            raise DataFormatError(f"{meta_path}: field 'recipe': {error}") from None
        _check_shapes(model, weights_path)
        return model


_OWN_KEYS = {"format_version", "encoder", "recipe", "head", "threshold", "view_parameters"}


def default_pm_path() -> Path:
    """The directory of the PM shipped in the package (``sparring/data/pm``)."""
    return Path(str(resources.files("sparring").joinpath("data", "pm")))


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError(f"{path}: not found (is this a preference-model directory?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(meta, dict):
        raise DataFormatError(f"{path}: expected a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise DataFormatError(f"{path}: field 'format_version': expected {FORMAT_VERSION}, got {version!r}")
    return meta


def _field(path: Path, meta: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in meta:
        raise DataFormatError(f"{path}: field {name!r} is missing")
    value = meta[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataFormatError(f"{path}: field {name!r}: unexpected value {value!r}")
    return value


def _read_weights(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise DataFormatError(f"{path}: not found (is this a preference-model directory?)") from None
    except (OSError, ValueError, EOFError) as error:
        raise DataFormatError(f"{path}: not a readable .npz weights file: {error}") from None
    for name in names:
        if name not in arrays:
            raise DataFormatError(f"{path}: array {name!r} is missing")
        if arrays[name].dtype != np.float32 or not np.all(np.isfinite(arrays[name])):
            raise DataFormatError(f"{path}: array {name!r}: expected finite float32 values")
    return {name: arrays[name] for name in names}


def _check_shapes(model: PreferenceModel, path: Path) -> None:
    dim = 384 * len(model.recipe)
    first = model.weights["w" if model.head == "linear" else "w1"]
    if first.ndim != 2 or first.shape[0] != dim:
        raise DataFormatError(f"{path}: first layer has shape {first.shape}, the recipe needs {dim} inputs")
    try:
        model.score_features(np.zeros((1, dim), dtype=np.float32))
    except ValueError as error:
        raise DataFormatError(f"{path}: layer shapes do not fit together: {error}") from None
