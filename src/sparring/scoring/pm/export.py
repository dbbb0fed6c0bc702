"""Export a torch MiniLM network to ONNX and quantise its weights to int8 (training side: needs torch and onnx)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

OPSET = 17


def export_onnx(network: nn.Module, path: Path, output: str, quantize: bool = True) -> None:
    """Write ``network`` (ids, mask, types -> ``output``) to ``path``, batch and length dynamic."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    network.eval()
    example = (torch.ones(2, 8, dtype=torch.int64), torch.ones(2, 8, dtype=torch.int64), torch.zeros(2, 8, dtype=torch.int64))
    axes = {name: {0: "batch", 1: "length"} for name in ("ids", "mask", "types")}
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "fp32.onnx"
        torch.onnx.export(network, example, str(plain), input_names=["ids", "mask", "types"], output_names=[output],
                          dynamic_axes={**axes, output: {0: "batch"}}, opset_version=OPSET, dynamo=False)
        if not quantize:
            shutil.copyfile(plain, path)
            return
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # per-channel scales: per-tensor int8 cost the judge up to 0.016 AUROC on a source, per channel 0.001
        root = logging.getLogger()
        root.addFilter(_no_preprocessing_advice)
        try:
            quantize_dynamic(str(plain), str(path), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.removeFilter(_no_preprocessing_advice)


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    """Drops ONNX Runtime's advice to pre-process before quantising (a warning with a URL on every training)."""
    return "pre-processing before quantization" not in record.getMessage()


def copy_tokenizer(source_dir: Path, destination_dir: Path) -> None:
    destination_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source_dir / "tokenizer.json", destination_dir / "tokenizer.json")
