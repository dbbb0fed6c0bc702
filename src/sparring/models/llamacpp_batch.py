"""Batched decoding for local GGUF models: the n samples of one turn decoded side by side.

The prompt is decoded once, into sequence 0. Each sample is its own sequence that
shares the prompt's KV cells (``llama_memory_seq_cp`` on a unified cache adds a
sequence id to a cell, it copies no data), and every step decodes the next token
of each unfinished sample in one ``llama_decode`` call: k tokens per pass over
the weights instead of one. A sample leaves the batch at end-of-generation, at a
stop sequence or at ``max_tokens``; if the context cannot hold all n samples at
once they are decoded in rounds.

Sampling is llama.cpp's own sampler chain, built the way llama-cpp-python builds
it for ``create_completion`` (top-k 40, top-p, min-p 0.05, temperature, then a
draw), one chain per sample seeded with ``seed + i``.

Determinism, guaranteed: a call's texts depend only on the call (prompt, sampling
parameters, model config), never on what the context decoded before. Between
calls the KV cache keeps only the *anchor*, a token prefix that is a function of
the preamble alone; everything after it is decoded again on every call and
dropped after it.

Determinism, where the kernels allow it: sample i depends only on the prompt,
the parameters and ``seed + i``, not on n, the other samples, rounds or
``max_batch`` (tested on the embedded SmolLM2, Q4_1). llama.cpp's CPU kernels
are not batch-invariant, so: (1) a one-token batch takes other kernels than a
batch of several (logits differ by up to ~0.6 on SmolLM2), so a lone token is
decoded beside a throw-away one; (2) without flash attention a token's attention
output depends on where its cells lie in the KV cache (~0.5); with it, masked
cells are skipped and only the order of the visible cells counts, so flash
attention is on and no cell is freed while a round runs (a freed cell would take
a later token out of order). It does not hold for Gemma 3 270M (Q4_K_M): the
likely cause is that llama.cpp repacks some weight types (Q4_0, Q4_K, IQ4_NL) for
CPU kernels that compute several rows of a batch together.

The sequential path decodes each token alone and without flash attention, so its
texts differ from these for the same seeds.

Calls of different conversations are decoded together only on request
(``generate_many``, driven by ``call_merger``): each call's prompt gets a
sequence of its own after the anchor, and one round decodes every call's
samples. That does not keep a call's texts: with prompts of different lengths
side by side, a call's logits change at the rounding level (measured on
SmolLM2), so its texts depend on which calls it was merged with.
"""

from __future__ import annotations

import importlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from sparring.errors import ConfigError, ModelError
from sparring.models.base import Completion, Message, Mode, Prompt, SamplingParams
from sparring.models.raw_format import raw_stops, render_raw

TOP_K = 40  # llama-cpp-python's defaults for create_completion / create_chat_completion
MIN_P = 0.05
ANCHOR_PROBES = ("0", "Hello there.")  # two one-message dialogues that differ from their first character on
ANCHOR_MARGIN = 2  # tokens dropped from the anchor's end, where a message could merge with the template's tokens


def _llama_cpp() -> Any:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise ConfigError("the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python") from error


@dataclass
class _Sample:
    """One sample in flight: its sequence id, sampler chain, tokens so far and what ended it."""

    seq: int
    chain: Any
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str | None = None


@dataclass(frozen=True, eq=False)
class _Call:
    """One call in a round: its prompt, stop sequences, parameters, its samples' seeds and its prompt's sequence."""

    tokens: list[int]
    stops: Sequence[bytes]
    params: SamplingParams
    max_tokens: int
    seeds: range
    prompt_seq: int


class _Rendered(Exception):
    """Carries the prompt a chat handler built out of its create_completion call (control flow, never shown)."""

    def __init__(self, tokens: list[int], stop: Any) -> None:
        super().__init__("rendered")
        self.tokens, self.stop = tokens, stop


class BatchContext:
    """A llama.cpp context with one sequence for the prompt, ``max_batch`` for samples and a scratch one.

    It keeps one preamble's anchor in its KV cache between calls. Call every
    method on the compute thread.
    """

    def __init__(self, host: Any, n_ctx: int, n_threads: int, max_batch: int, anchor: list[int],
                 max_calls: int = 1) -> None:
        lib = self._lib = _llama_cpp()
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = min(n_ctx, 512)
        # the prompt, the samples, a scratch sequence (see _decode); merging calls adds a prompt sequence per call
        params.n_seq_max = max_batch + 2 + (max_calls if max_calls > 1 else 0)
        params.kv_unified = True  # the samples read the prompt's cells instead of copies of them
        params.n_threads = params.n_threads_batch = n_threads
        params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_ENABLED  # attention that ignores cell placement (see above)
        params.no_perf = True
        self._ctx = lib.llama_init_from_model(host.model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp: could not create a context of {n_ctx} tokens for {max_batch} samples")
        self._host = host
        self._vocab = lib.llama_model_get_vocab(host.model)
        self._memory = lib.llama_get_memory(self._ctx)
        self._n_ctx = lib.llama_n_ctx(self._ctx)
        self._n_batch = lib.llama_n_batch(self._ctx)
        self._max_batch = max_batch
        self._scratch = max_batch + 1
        self.max_calls = max_calls
        self._batch = lib.llama_batch_init(max(self._n_batch, max_batch) + 1, 0, 1)
        self._anchor = anchor
        self._anchor_loaded = False

    def generate(self, tokens: list[int], stops: Sequence[bytes], params: SamplingParams) -> list[Completion]:
        """``params.n`` completions of the prompt ``tokens``; sample i uses seed ``params.seed + i``."""
        if len(tokens) >= self._n_ctx:
            raise ModelError(f"llama.cpp: Requested tokens ({len(tokens)}) exceed context window of {self._n_ctx}")
        if not tokens:
            raise ModelError("llama.cpp: the prompt rendered to no tokens")
        # Like create_completion: no limit (<= 0) or one past the context means what the context holds after the prompt.
        room = self._n_ctx - len(tokens)
        max_tokens = params.max_tokens if 0 < params.max_tokens < room else room
        # Each sample needs up to max_tokens cells of its own (the prompt's last token, then all but its last token).
        per_round = max(1, min(self._max_batch, params.n, (room + 1) // max_tokens))
        completions: list[Completion] = []
        try:
            self._prefill(tokens[:-1])
            for first in range(0, params.n, per_round):
                seeds = range(params.seed + first, params.seed + min(params.n, first + per_round))
                completions += self._round([_Call(tokens, stops, params, max_tokens, seeds, 0)])[0]
        finally:
            self._drop_prompt()
        return completions

    def cells_needed(self, tokens: list[int], params: SamplingParams) -> int | None:
        """KV cells a call takes beside others in ``generate_many`` (past the anchor); None if it cannot join."""
        anchor = self._anchor
        room = self._n_ctx - len(tokens)
        if not anchor or tokens[: len(anchor)] != anchor or len(tokens) <= len(anchor) or room <= 0 \
                or params.n > self._max_batch:
            return None
        max_tokens = params.max_tokens if 0 < params.max_tokens < room else room
        return len(tokens) - len(anchor) + params.n * max_tokens

    def room(self) -> int:
        """KV cells past the anchor: what the calls of one ``generate_many`` round may take together."""
        return int(self._n_ctx) - len(self._anchor)

    def generate_many(self, calls: Sequence[tuple[list[int], Sequence[bytes], SamplingParams]]) -> list[list[Completion]]:
        """Several calls' samples decoded side by side in one round (their texts may differ at the rounding level
        from each call decoded alone: see the module docstring).

        Each call's prompt is decoded on its own, after the shared anchor, into a prompt sequence of its own;
        then every step decodes the next token of every unfinished sample of every call. The caller checks
        ``cells_needed`` (each prompt starts with the anchor, the cells and samples fit).
        """
        if not 0 < len(calls) <= self.max_calls or sum(p.n for _, _, p in calls) > self._max_batch:
            raise ValueError(f"{len(calls)} calls for {sum(p.n for _, _, p in calls)} samples do not fit one round")
        lib, jobs, seq = self._lib, [], self._scratch + 1
        try:
            for tokens, stops, params in calls:
                self._prefill(tokens[:-1])  # sequence 0: the anchor, then this prompt
                lib.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
                if not lib.llama_memory_seq_rm(self._memory, 0, len(self._anchor), -1):  # sequence 0: the anchor again
                    raise ModelError("llama.cpp: this model's KV cache cannot drop part of a sequence, which "
                                     "merge_calls needs; set merge_calls = false for it")
                room = self._n_ctx - len(tokens)
                max_tokens = params.max_tokens if 0 < params.max_tokens < room else room
                jobs.append(_Call(tokens, stops, params, max_tokens, range(params.seed, params.seed + params.n), seq))
                seq += 1
            return self._round(jobs)
        finally:
            for job in jobs:
                lib.llama_memory_seq_rm(self._memory, job.prompt_seq, -1, -1)
            self._drop_prompt()

    def close(self) -> None:
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None

    # --- the prompt ---------------------------------------------------------------

    def _prefill(self, prefix: list[int]) -> None:
        """Decode all but the prompt's last token into sequence 0, reusing the anchor when the prompt starts with it."""
        anchor = self._anchor
        if anchor and prefix[: len(anchor)] == anchor:
            if not self._anchor_loaded:
                self._clear()
                self._feed(anchor, 0)
                self._anchor_loaded = True
            self._feed(prefix[len(anchor) :], len(anchor))
        else:
            self._clear()
            self._feed(prefix, 0)

    def _feed(self, tokens: list[int], start: int) -> None:
        for offset in range(0, len(tokens), self._n_batch):
            chunk = tokens[offset : offset + self._n_batch]
            self._decode([(token, start + offset + i, 0) for i, token in enumerate(chunk)], logits=False)

    def _clear(self) -> None:
        self._lib.llama_memory_clear(self._memory, True)
        self._anchor_loaded = False

    def _drop_prompt(self) -> None:
        """Back to the state between calls: the anchor alone (or nothing), whatever this call did."""
        # A cache that cannot drop part of a sequence (sliding-window models may not) starts again from empty.
        if not (self._anchor_loaded and self._lib.llama_memory_seq_rm(self._memory, -1, len(self._anchor), -1)):
            self._clear()

    # --- the samples ----------------------------------------------------------------

    def _round(self, calls: Sequence[_Call]) -> list[list[Completion]]:
        """Decode the samples of ``calls`` side by side until each has ended; one list of completions per call."""
        lib = self._lib
        samples: list[tuple[_Call, _Sample]] = []
        for call in calls:
            samples += [(call, _Sample(seq=len(samples) + j + 1, chain=self._chain(call.params, seed)))
                        for j, seed in enumerate(call.seeds)]
        try:
            for call, sample in samples:
                lib.llama_memory_seq_cp(self._memory, call.prompt_seq, sample.seq, -1, -1)
            active = samples
            while active:
                # Each unfinished sample feeds its last token (at first: the prompt's last token) in its own sequence.
                self._decode(
                    [(s.tokens[-1] if s.tokens else c.tokens[-1], len(c.tokens) - 1 + len(s.tokens), s.seq)
                     for c, s in active],
                    logits=True,
                )
                for index, (call, sample) in enumerate(active):
                    token = lib.llama_sampler_sample(sample.chain, self._ctx, index)
                    self._accept(sample, token, call.max_tokens, call.stops)
                # A finished sample keeps its cells until the round ends: freed cells would take the next tokens
                # of the others, out of position order, and flash attention sums the visible cells in cell order.
                active = [(c, s) for c, s in active if not s.finish]
        finally:
            for _, sample in samples:
                lib.llama_memory_seq_rm(self._memory, sample.seq, -1, -1)
                lib.llama_sampler_free(sample.chain)
        return [[
            Completion(
                text=s.text.decode("utf-8", errors="ignore").strip(),
                finish_reason=s.finish,
                prompt_tokens=len(call.tokens),
                completion_tokens=len(s.tokens),
            )
            for c, s in samples if c is call] for call in calls]

    def _chain(self, params: SamplingParams, seed: int) -> Any:
        """The sampler chain ``Llama._init_sampler`` builds for these settings (repeat penalty 1.0 is a no-op, left out)."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if params.temperature == 0:
            parts = [lib.llama_sampler_init_greedy()]
        else:
            parts = [] if params.temperature < 0 else [
                lib.llama_sampler_init_top_k(TOP_K),
                lib.llama_sampler_init_typical(1.0, 1),
                lib.llama_sampler_init_top_p(params.top_p, 1),
                lib.llama_sampler_init_min_p(MIN_P, 1),
                lib.llama_sampler_init_temp(params.temperature),
            ]
            parts.append(lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        for part in parts:
            lib.llama_sampler_chain_add(chain, part)
        return chain

    def _accept(self, sample: _Sample, token: int, max_tokens: int, stops: Sequence[bytes]) -> None:
        """create_completion's rules: end-of-generation, then the first stop sequence found, then max_tokens."""
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            sample.finish = "stop"
            return
        sample.tokens.append(token)
        sample.text += self._host.detokenize([token])
        for stop in stops:
            if stop in sample.text:
                sample.text = sample.text[: sample.text.index(stop)]
                sample.finish = "stop"
                return
        if len(sample.tokens) >= max_tokens:
            sample.finish = "length"

    def _decode(self, entries: Sequence[tuple[int, int, int]], *, logits: bool) -> None:
        """One llama_decode of (token, position, sequence) entries; with ``logits``, every entry's logits are kept.

        A lone token gets a throw-away companion in the scratch sequence (a one-row batch takes
        other kernels; see the module docstring).
        """
        batch = self._batch
        padded = [*entries, (entries[0][0], 0, self._scratch)] if len(entries) == 1 else entries
        for i, (token, position, seq) in enumerate(padded):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits and i < len(entries)
        batch.n_tokens = len(padded)
        status = self._lib.llama_decode(self._ctx, batch)
        if len(padded) > len(entries):
            self._lib.llama_memory_seq_rm(self._memory, self._scratch, -1, -1)
        if status != 0:
            raise ModelError(f"llama.cpp: llama_decode failed with status {status} (1: no room left in the context)")


def _model_error(error: Exception) -> Exception:
    """llama-cpp-python raises ValueError for a prompt longer than the context; the backend reports ModelError."""
    return ModelError(f"llama.cpp: {error}") if isinstance(error, ValueError) else error


class BatchedLlama:
    """One GGUF model (loaded once) with a batch context per preamble, least recently used evicted.

    ``max_calls`` > 1: ``sample_many`` decodes up to that many calls with one preamble side by side.
    """

    def __init__(self, path: Path, mode: Mode, n_ctx: int, n_threads: int | None, max_batch: int, contexts: int,
                 max_calls: int = 1) -> None:
        self.path, self.mode, self.n_ctx = path, mode, n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.max_batch, self.contexts, self.max_calls = max_batch, contexts, max_calls
        self._host: Any = None
        self._contexts: OrderedDict[str, BatchContext] = OrderedDict()

    def sample(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        tokens, stops = self.render(prompt, params.stop)
        return self._context(prompt.preamble).generate(tokens, stops, params)

    def sample_many(self, calls: Sequence[tuple[Prompt, SamplingParams]]) -> list[list[Completion] | Exception]:
        """The calls (one preamble) in rounds of as many as fit side by side; a call that cannot join others
        (its prompt does not start with the anchor, too many samples, too long) runs alone. An error is
        returned in the place of each call it ended."""
        if not calls:
            return []
        context = self._context(calls[0][0].preamble)
        out: list[list[Completion] | Exception | None] = [None] * len(calls)
        group: list[tuple[int, list[int], tuple[bytes, ...], SamplingParams]] = []
        cells = samples = 0

        def flush() -> None:
            nonlocal group, cells, samples
            try:
                results = ([context.generate(*group[0][1:])] if len(group) == 1
                           else context.generate_many([g[1:] for g in group]))
                for (index, *_), result in zip(group, results, strict=True):
                    out[index] = result
            except (ModelError, ValueError) as error:
                for index, *_ in group:
                    out[index] = _model_error(error)
            group, cells, samples = [], 0, 0

        for index, (prompt, params) in enumerate(calls):
            try:
                tokens, stops = self.render(prompt, params.stop)
                need = context.cells_needed(tokens, params)
                if need is None or need > context.room():  # alone, in rounds as generate decodes it
                    out[index] = context.generate(tokens, stops, params)
                    continue
            except (ModelError, ValueError) as error:
                out[index] = _model_error(error)
                continue
            if group and (len(group) == context.max_calls or samples + params.n > self.max_batch
                          or cells + need > context.room()):
                flush()
            group.append((index, tokens, stops, params))
            cells, samples = cells + need, samples + params.n
        if group:
            flush()
        return [result if result is not None else ModelError("llama.cpp: the call was not decoded") for result in out]

    def render(self, prompt: Prompt, stop: tuple[str, ...]) -> tuple[list[int], tuple[bytes, ...]]:
        """The prompt tokens and stop sequences the sequential path would decode with."""
        host = self._load()
        if self.mode == "raw":
            return self._raw_tokens(render_raw(prompt)), tuple(s.encode("utf-8") for s in raw_stops(stop))
        messages = [{"role": "system", "content": prompt.preamble}] if prompt.preamble else []
        messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
        # The chat handler llama-cpp-python picked for this GGUF renders and tokenizes the messages, then
        # calls create_completion: catching that call gives exactly what create_chat_completion decodes.
        def capture(*, prompt: list[int], stop: Any = None, **_: Any) -> NoReturn:
            raise _Rendered(list(prompt), stop)

        host.create_completion = capture
        try:
            host.create_chat_completion(messages=messages, stop=list(stop) or None)
        except _Rendered as rendered:
            stops = [rendered.stop] if isinstance(rendered.stop, str) else list(rendered.stop or [])
            return rendered.tokens, tuple(s.encode("utf-8") for s in stops)
        finally:
            del host.create_completion
        raise ModelError("llama.cpp: the chat handler returned without building a prompt")  # pragma: no cover

    def close(self) -> None:
        for context in self._contexts.values():
            context.close()
        self._contexts.clear()
        if self._host is not None:
            self._host.close()
            self._host = None

    def _load(self) -> Any:
        if self._host is None:
            from llama_cpp import Llama

            # The host holds the weights, tokenizer and chat handler; its own context is kept minimal.
            self._host = Llama(model_path=str(self.path), n_ctx=256, n_threads=self.n_threads, verbose=False)
        return self._host

    def _context(self, preamble: str) -> BatchContext:
        context = self._contexts.get(preamble)
        if context is not None:
            self._contexts.move_to_end(preamble)
            return context
        context = BatchContext(self._load(), self.n_ctx, self.n_threads, self.max_batch, self._anchor(preamble),
                               self.max_calls)
        self._contexts[preamble] = context
        while len(self._contexts) > self.contexts:
            _, old = self._contexts.popitem(last=False)
            old.close()
        return context

    def _anchor(self, preamble: str) -> list[int]:
        """The tokens every prompt with this preamble starts with: what two different dialogues share."""
        first, second = (self.render(Prompt((Message("user", probe),), preamble), ())[0] for probe in ANCHOR_PROBES)
        shared = next((i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), min(len(first), len(second)))
        return first[: max(0, shared - ANCHOR_MARGIN)]

    def _raw_tokens(self, text: str) -> list[int]:
        """Tokens as create_completion builds them for a text prompt (BOS before, EOS/SEP after where the vocab says)."""
        lib, host = _llama_cpp(), self._load()
        vocab = lib.llama_model_get_vocab(host.model)
        bos, sep = host.token_bos(), lib.llama_vocab_sep(vocab)  # llama.cpp's CLS token is its BOS token
        head = [bos] if lib.llama_vocab_get_add_bos(vocab) and bos != -1 else []
        tail = [] if not lib.llama_vocab_get_add_eos(vocab) and sep == -1 else [sep if sep != -1 else host.token_eos()]
        body: list[int] = host.tokenize(text.encode("utf-8"), add_bos=False, special=True) if text else []
        return head + body + tail
