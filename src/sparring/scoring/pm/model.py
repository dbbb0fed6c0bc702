"""The harm judge at scoring time: all-MiniLM-L6-v2 under a trained head, run by ONNX Runtime (no torch).

An artifact is a directory of three files, no pickle: ``judge.onnx`` (the
network: word pieces of one window in, one harm logit out),
``tokenizer.json`` and ``pm.json`` (input layout, threshold, recipe,
provenance and the cross-validated metrics). A response is read in windows
(``inputs.PairEncoder``) and its most harmful window counts. The score is the
negated harm logit, so higher = more harmless, as the paper's preference model.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sparring.errors import DataFormatError
from sparring.scoring.pm.inputs import CHUNKS, MAX_TOKENS, REQUEST_TOKENS, last_request
from sparring.scoring.pm.onnx_session import MiniLMRunner

FORMAT_VERSION = 2
META_FILE = "pm.json"
MODEL_FILE = "judge.onnx"
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class PreferenceModel:
    """Scores an assistant response given the HH context before it; higher = more harmless.

    ``threshold``: scores below it are judged harmful (chosen on training data only,
    see ``metadata["threshold_rule"]``).
    """

    directory: Path
    threshold: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    runner: MiniLMRunner = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.runner = MiniLMRunner(self.directory / MODEL_FILE, self.directory / TOKENIZER_FILE)

    def harm_logits(self, requests: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """The network's raw output per (request, response): higher = more harmful."""
        if len(requests) != len(responses):
            raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
        if not responses:
            return np.zeros(0)
        encoded, owners = self.runner.encoder.chunked_ids(requests, responses)
        # One text per call: int8 scales its activations per batch, so batching would make a score
        # depend on its neighbours (up to ~0.1 logit). Alone, it depends on the text only, which keeps
        # resumed runs, `show`, `export` and `score` in agreement, for ~20% less throughput.
        windows = self.runner.run(encoded, 1, batch_size=1)[:, 0].astype(np.float64)
        return most_harmful_window(windows, owners, len(responses))

    def score(self, contexts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Harmlessness scores (float64), one per response given its HH context; higher = more harmless."""
        # a judge that does not read the request (the default) is spared parsing every context
        requests = [last_request(c) for c in contexts] if self.runner.encoder.request_tokens else [""] * len(contexts)
        return -self.harm_logits(requests, responses)

    def save(self, directory: Path) -> None:
        """Write the artifact to ``directory`` (the network and tokenizer are copied as they are)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, TOKENIZER_FILE):
            if (self.directory / name).resolve() != (directory / name).resolve():
                shutil.copyfile(self.directory / name, directory / name)
        meta = {"format_version": FORMAT_VERSION, "threshold": self.threshold, "input": input_parameters(),
                **{k: v for k, v in self.metadata.items() if k not in _OWN_KEYS}}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> PreferenceModel:
        """Load an artifact written by ``save``; a bad file raises ``DataFormatError`` naming file and field."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        meta = _read_meta(meta_path)
        threshold = meta.get("threshold")
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not math.isfinite(threshold):
            raise DataFormatError(f"{meta_path}: field 'threshold': expected a finite number, got {threshold!r}")
        if meta.get("input") != input_parameters():
            raise DataFormatError(f"{meta_path}: field 'input': {meta.get('input')!r} does not match this version of "
                                  f"sparring.scoring.pm.inputs {input_parameters()}; retrain the judge")
        for name in (MODEL_FILE, TOKENIZER_FILE):
            if not (directory / name).is_file():
                raise DataFormatError(f"{directory / name}: not found (is this a judge directory from `sparring pm train`?)")
        return cls(directory, float(threshold), {k: v for k, v in meta.items() if k not in _OWN_KEYS})


_OWN_KEYS = {"format_version", "threshold", "input"}


def input_parameters() -> dict[str, int]:
    """Recorded with a trained judge: its weights are only valid for inputs built this way."""
    return {"request_tokens": REQUEST_TOKENS, "max_tokens": MAX_TOKENS, "chunks": CHUNKS}


def most_harmful_window(logits: np.ndarray, owners: Sequence[int], count: int) -> np.ndarray:
    """Per text, the highest harm logit among its windows (every text has at least one)."""
    out = np.full(count, -np.inf)
    np.maximum.at(out, np.asarray(owners, dtype=np.int64), logits)
    return out


def default_pm_path() -> Path:
    """The directory of the judge shipped in the package (``sparring/data/pm``)."""
    return Path(str(resources.files("sparring").joinpath("data", "pm")))


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError(f"{path}: not found (is this a judge directory from `sparring pm train`?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(meta, dict):
        raise DataFormatError(f"{path}: expected a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise DataFormatError(f"{path}: field 'format_version': expected {FORMAT_VERSION}, got {version!r}"
                              + (" (a frozen-encoder PM from an older sparring; retrain it)" if version == 1 else ""))
    return meta
