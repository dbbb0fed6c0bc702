"""ONNX Runtime for the bundled MiniLM networks: how a session is opened and fed, without torch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparring.errors import DataFormatError
from sparring.scoring.pm.inputs import Batch, PairEncoder, length_batches

INSTALL_HINT = "scoring needs onnxruntime and tokenizers (dependencies of sparring): pip install onnxruntime tokenizers"
BATCH_SIZE = 32


def open_session(path: Path) -> Any:
    """An ONNX Runtime session on the CPU; a missing or broken file names itself."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    if not path.is_file():
        raise DataFormatError(f"{path}: not found")
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    unreadable = (ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.Fail, ort_errors.InvalidArgument,
                  ort_errors.NoSuchFile)
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except unreadable as error:
        raise DataFormatError(f"{path}: not a readable ONNX model ({type(error).__name__})") from None


class MiniLMRunner:
    """Runs an exported network over encoded texts in length-sorted batches; one row of output per text."""

    def __init__(self, model_file: Path, tokenizer_file: Path) -> None:
        self.model_file, self.tokenizer_file = model_file, tokenizer_file
        self._session: Any = None
        self._encoder: PairEncoder | None = None

    @property
    def encoder(self) -> PairEncoder:
        if self._encoder is None:
            if not self.tokenizer_file.is_file():
                raise DataFormatError(f"{self.tokenizer_file}: not found")
            self._encoder = PairEncoder(self.tokenizer_file)
        return self._encoder

    @property
    def session(self) -> Any:
        if self._session is None:
            self._session = open_session(self.model_file)
        return self._session

    def run(self, encoded: Sequence[tuple[list[int], int]], width: int, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """``(len(encoded), width)`` float32 outputs, in input order."""
        out = np.zeros((len(encoded), width), dtype=np.float32)
        for indices in length_batches([len(ids) for ids, _ in encoded], batch_size):
            batch = self.encoder.pad([encoded[i] for i in indices])
            out[indices] = np.asarray(self.session.run(None, feeds(batch))[0], dtype=np.float32).reshape(len(indices), width)
        return out


def feeds(batch: Batch) -> dict[str, np.ndarray]:
    return {"ids": batch.ids, "mask": batch.mask, "types": batch.types}
