"""Embedded model: experiment generation throughput vs llama-cpp-python called directly.

The experiment (engine, intervention, scoring, SQLite) runs on the embedded
SmolLM2 model while every llama call it makes is recorded; then the same calls
(same prompts, seeds, sampling settings, so the same tokens) are replayed on a
fresh ``llama_cpp.Llama`` in the same order. Ratio = experiment tokens/s over
direct tokens/s (goal >= 0.9). Both sides run ``--repeats`` times, alternating,
and the best of each is compared (this machine is noisy). The model runs with
``batched = false`` (one llama call per sample, as replayed); batched decoding
against it is ``bench_batched_decoding.py``.

    python benchmarks/bench_embedded_model.py [--items 4] [--max-tokens 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sparring.experiments import parse_config
from sparring.experiments.runner import arun_experiment
from sparring.models.llamacpp import LlamaCppModel, embedded_model_path
from sparring.store import Store


def config_text(items: int, max_tokens: int) -> str:
    return f"""
name = "bench-embedded"
turns = 2
samples_per_turn = 2
concurrency = 4
[sampling]
max_tokens = {max_tokens}
[[models]]
name = "smollm2"
backend = "llamacpp"
mode = "chat"
n_ctx = 2048
batched = false
[[targets]]
model = "smollm2"
intervention = "plain"
[[targets]]
model = "smollm2"
intervention = "system"
[[attacks]]
kind = "hh-rlhf"
limit = {items}
min_turns = 2
"""


def record_calls() -> list[dict[str, Any]]:
    """Wrap the backend's single-sample call to capture exactly what it sent to llama.cpp."""
    calls: list[dict[str, Any]] = []
    original = LlamaCppModel._one

    def recording(self, llama, prompt, params, seed):  # type: ignore[no-untyped-def]
        completion = original(self, llama, prompt, params, seed)
        messages = [{"role": "system", "content": prompt.preamble}] if prompt.preamble else []
        messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
        calls.append({"context": prompt.preamble, "messages": messages, "seed": seed,
                      "max_tokens": params.max_tokens, "temperature": params.temperature,
                      "top_p": params.top_p, "tokens": completion.completion_tokens or 0})
        return completion

    LlamaCppModel._one = recording  # type: ignore[method-assign]
    return calls


def direct(calls: list[dict[str, Any]]) -> tuple[int, float]:
    from llama_cpp import Llama

    contexts: dict[str, Llama] = {}
    tokens = 0
    start = time.perf_counter()
    for call in calls:
        llama = contexts.get(call["context"])
        if llama is None:
            llama = contexts[call["context"]] = Llama(
                model_path=str(embedded_model_path()), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
        result = llama.create_chat_completion(
            messages=call["messages"], seed=call["seed"], max_tokens=call["max_tokens"],
            temperature=call["temperature"], top_p=call["top_p"])
        tokens += result["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    calls = record_calls()
    text = config_text(args.items, args.max_tokens)
    engine_times, direct_times = [], []
    for _ in range(args.repeats):
        calls.clear()
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            asyncio.run(arun_experiment(parse_config(text), text, Store(f"sqlite:///{Path(tmp) / 'b.db'}")))
            engine_times.append(time.perf_counter() - start)
        direct_tokens, seconds = direct(calls)
        direct_times.append(seconds)
    engine_tokens = sum(c["tokens"] for c in calls)
    engine_s, direct_s = min(engine_times), min(direct_times)
    engine_rate, direct_rate = engine_tokens / engine_s, direct_tokens / direct_s
    print(f"experiment (best of {args.repeats}): {len(calls)} samples, {engine_tokens} tokens in {engine_s:.1f}s = {engine_rate:.1f} tokens/s "
          "(includes model load, scoring, persistence)")
    print(f"direct llama-cpp-python, same calls (best of {args.repeats}): {direct_tokens} tokens in {direct_s:.1f}s = {direct_rate:.1f} tokens/s")
    print(f"RESULT experiment/direct throughput = {engine_rate / direct_rate:.2f} (goal >= 0.9); "
          f"same tokens: {engine_tokens == direct_tokens}")


if __name__ == "__main__":
    main()
