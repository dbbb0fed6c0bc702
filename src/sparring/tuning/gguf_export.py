"""Writing a transformers LLaMA-family model back to GGUF for the llama.cpp backend.

The original file is the template: its metadata (tokenizer, chat template,
hyper-parameters) is copied as is and each of its tensors is replaced by the
model's weight of the same role. llama.cpp stores the query and key projections
with their rotary halves interleaved differently from transformers, so those
two are permuted back. The result is written as F16 (norms in F32), then
quantised to Q8_0 by llama.cpp itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from sparring.errors import ModelError

QUANTISED = "Q8_0"
_LLAMA_FTYPE_MOSTLY_F16 = 1
_LLAMA_FTYPE_MOSTLY_Q8_0 = 7
_SKIPPED_KEYS = ("GGUF.", "general.file_type", "general.quantization_version")


def llama_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """transformers' rotary layout of a q/k projection -> llama.cpp's (the inverse of what loading undid)."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def gguf_tensors(model: Any, template: Any) -> dict[str, np.ndarray]:
    """GGUF tensor name -> weights in llama.cpp's layout, for every tensor of the template file."""
    import gguf

    config = model.config
    blocks = int(config.num_hidden_layers)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)
    by_gguf: dict[str, np.ndarray] = {}
    for hf_name, tensor in model.state_dict().items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            continue
        weights = tensor.detach().to("cpu").float().numpy()
        if name.endswith("attn_q.weight"):
            weights = llama_permute(weights, int(config.num_attention_heads))
        elif name.endswith("attn_k.weight"):
            weights = llama_permute(weights, int(config.num_key_value_heads))
        by_gguf[name] = weights
    wanted = [t.name for t in template.tensors]
    missing = [n for n in wanted if n not in by_gguf]
    if missing:
        raise ModelError(f"cannot write GGUF: the model has no weights for {missing[0]} ({len(missing)} tensors missing)")
    return {n: by_gguf[n] for n in wanted}


def _copy_metadata(template: Any, writer: Any) -> None:
    import gguf

    for field in template.fields.values():
        if field.name.startswith(_SKIPPED_KEYS) or field.name == gguf.Keys.General.ARCHITECTURE:
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(field.name, field.contents(), kind, sub_type=field.types[-1])
        else:
            writer.add_key_value(field.name, field.contents(), kind)


def write_f16_gguf(model: Any, template_path: Path, out: Path) -> None:
    """``model``'s weights in ``template_path``'s layout and metadata, F16 (1-D tensors F32)."""
    import gguf

    template = gguf.GGUFReader(str(template_path))
    arch = template.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    _copy_metadata(template, writer)
    writer.add_file_type(_LLAMA_FTYPE_MOSTLY_F16)
    for name, weights in gguf_tensors(model, template).items():
        writer.add_tensor(name, weights.astype(np.float32 if weights.ndim == 1 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Native code's writes to stderr go nowhere for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quantise(source: Path, out: Path, ftype: int = _LLAMA_FTYPE_MOSTLY_Q8_0) -> None:
    """llama.cpp's own quantiser (the same code as ``llama-quantize``)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 0
    with _quiet_stderr():  # llama.cpp logs a line per tensor
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if status != 0:
        raise ModelError(f"{out}: llama.cpp could not quantise {source.name} (status {status})")


def write_tuned_gguf(model: Any, template_path: Path, out: Path) -> None:
    """``model`` as a Q8_0 GGUF at ``out``; the F16 intermediate is removed, and no half file is left."""
    f16 = out.with_name(out.name + ".f16.partial")
    partial = out.with_name(out.name + ".partial")
    try:
        write_f16_gguf(model, template_path, f16)
        quantise(f16, partial)
        partial.replace(out)
    finally:
        f16.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)


def write_base_and_tuned(template_path: Path, adapter_dir: Path, before: Path, after: Path,
                         log: Callable[[str], None]) -> None:
    """``before`` (the base) and ``after`` (the adapter merged in), the base loaded once; existing files are kept."""
    from sparring.tuning.dpo import load_gguf, merge_adapter

    model = load_gguf(template_path)[0]
    if not before.is_file():
        log(f"writing {before} (the base, through the same GGUF path as the tuned model)")
        write_tuned_gguf(model, template_path, before)
    if not after.is_file():
        log(f"writing {after} (the adapter merged into the weights)")
        write_tuned_gguf(merge_adapter(model, adapter_dir), template_path, after)
