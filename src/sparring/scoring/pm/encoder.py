"""Sentence embeddings from all-MiniLM-L6-v2, exported to ONNX and shipped in the package (no torch).

The report's attack map embeds what red teamers wrote with it. The network is
the pretrained one, unchanged; it is exported by ``sparring.scoring.pm.export``
next to the judge and int8-quantised like it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from sparring.scoring.pm.onnx_session import BATCH_SIZE, MiniLMRunner

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (ONNX, int8, in sparring/data/minilm)"
DIMENSIONS = 384


def default_encoder_path() -> Path:
    return Path(str(resources.files("sparring").joinpath("data", "minilm")))


class Encoder:
    """Sentence embeddings (384-d, L2-normalised) computed on the CPU; the network loads on first use."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or default_encoder_path()
        self.runner = MiniLMRunner(directory / "encoder.onnx", directory / "tokenizer.json")

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Embed ``texts``; returns ``(len(texts), 384)`` float32, in input order."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return self.runner.run(self.runner.encoder.text_ids(texts), DIMENSIONS, batch_size)
