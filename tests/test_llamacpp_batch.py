"""Batched decoding on the embedded SmolLM2: the n samples of a call decoded side by side in one llama.cpp batch.

The invariant: sample i is a function of the prompt, the sampling parameters and
``seed + i`` alone, not of n, of the other samples in its batch, of rounds, or of
what the model decoded before (see ``sparring.models.llamacpp_batch``).
"""

import asyncio

import pytest

from sparring.errors import ConfigError, ModelError
from sparring.interventions import interventions
from sparring.models import models
from sparring.models.base import Message, Prompt, SamplingParams
from sparring.models.llamacpp_batch import BatchedLlama

pytestmark = pytest.mark.model

QUESTION = Prompt(messages=(Message("user", "What is the capital of France?"),))
COLOURS = Prompt(messages=(Message("user", "Name three colours and say why you like them."),),
                 preamble="You are a helpful assistant.")


def batched(config=None):
    """The embedded model, batched from two samples on (the default starts at four, where batching pays)."""
    return models.create("llamacpp", {"batched_from": 2, **(config or {})})


def calls(model, *requests: tuple[Prompt, SamplingParams]) -> list[list]:
    """Run the requests in turn on one model, then close it."""

    async def go():
        try:
            return [await model.sample(prompt, params) for prompt, params in requests]
        finally:
            await model.aclose()

    return asyncio.run(go())


def texts(completions) -> list[str]:
    return [c.text for c in completions]


def test_same_call_same_texts_whatever_ran_before():
    params = SamplingParams(n=4, seed=7, max_tokens=24)
    first, other, again = calls(
        batched(),
        (COLOURS, params),
        (Prompt(messages=(Message("user", "Tell me about tea."),), preamble=COLOURS.preamble), params.with_seed(99)),
        (COLOURS, params),
    )
    fresh = calls(batched(), (COLOURS, params))[0]
    assert texts(first) == texts(again) == texts(fresh)
    assert texts(other) != texts(first)
    assert len(set(texts(first))) > 1, "four seeds should not all give the same sample"


def test_n_samples_equal_n_single_batched_calls_with_consecutive_seeds():
    """Through the batched engine itself: the model sends small calls down the sequential path."""
    together = calls(batched(), (QUESTION, SamplingParams(n=4, seed=20, max_tokens=24)))[0]
    llama = BatchedLlama(models.create("llamacpp").path, "chat", 4096, None, 16, 4)
    try:
        alone = [llama.sample(QUESTION, SamplingParams(n=1, seed=20 + i, max_tokens=24))[0] for i in range(4)]
    finally:
        llama.close()
    assert texts(together) == texts(alone)


def test_temperature_zero_is_greedy_whatever_the_seed():
    params = SamplingParams(n=3, seed=1, temperature=0.0, max_tokens=24)
    greedy, other_seed = calls(batched(), (QUESTION, params), (QUESTION, params.with_seed(50)))
    sequential = calls(batched({"batched": False}), (QUESTION, params))[0]
    assert len(set(texts(greedy) + texts(other_seed))) == 1 and texts(greedy)[0]
    # Other kernels, so not the same text throughout, but the same most likely first word.
    assert texts(greedy)[0].split()[0] == texts(sequential)[0].split()[0]


def test_stop_sequence_cuts_the_text_before_it():
    greedy = SamplingParams(n=2, temperature=0.0, max_tokens=40)
    full = calls(batched(), (QUESTION, greedy))[0][0]
    assert full.text.count(" ") >= 3, full.text
    stop = full.text.split(" ")[2]  # the third word: the model writes text before and after it
    cut = calls(batched(), (QUESTION, SamplingParams(n=2, temperature=0.0, max_tokens=40, stop=(stop,))))[0]
    for completion in cut:
        assert completion.finish_reason == "stop"
        assert completion.text == full.text[: full.text.index(stop)].strip()
        assert completion.completion_tokens < full.completion_tokens


def test_max_tokens_and_usage_counts():
    params = SamplingParams(n=3, seed=5, max_tokens=6)
    together = calls(batched(), (COLOURS, params))[0]
    sequential = calls(batched({"batched": False}), (COLOURS, params))[0]
    assert all(c.finish_reason == "length" and c.completion_tokens == 6 for c in together)
    assert [c.prompt_tokens for c in together] == [c.prompt_tokens for c in sequential]
    assert together[0].prompt_tokens and together[0].prompt_tokens > 10


def test_end_of_generation_is_a_stop_and_is_not_counted():
    out = calls(batched(), (QUESTION, SamplingParams(n=4, seed=2, max_tokens=200)))[0]
    ended = [c for c in out if c.finish_reason == "stop"]
    assert ended, "SmolLM2 answers this question in fewer than 200 tokens"
    assert all(c.completion_tokens and c.completion_tokens < 200 for c in ended)


def test_prompt_longer_than_the_context_is_a_model_error():
    model = batched({"n_ctx": 256})
    long_prompt = Prompt(messages=(Message("user", "hello"),), preamble=interventions.create("prompted").preamble())
    with pytest.raises(ModelError, match=r"llama.cpp: Requested tokens \(\d+\) exceed context window of 256"):
        calls(model, (long_prompt, SamplingParams(n=4, max_tokens=8)))


def test_samples_decoded_in_rounds_are_the_same_samples():
    """n_ctx 256 holds the prompt and five 40-token samples at a time, max_batch 2 two: six samples take 2 and 3 rounds."""
    params = SamplingParams(n=6, seed=4, max_tokens=40)
    whole = calls(batched(), (QUESTION, params))[0]
    small = calls(batched({"n_ctx": 256}), (QUESTION, params))[0]
    pairs = calls(batched({"max_batch": 2}), (QUESTION, params))[0]
    assert len(small) == 6 and texts(small) == texts(whole) == texts(pairs)
    assert all(c.completion_tokens and c.completion_tokens <= 40 for c in small)


def test_raw_mode_stops_at_the_next_human_turn():
    model = batched({"mode": "raw"})
    prompt = Prompt(messages=(Message("user", "Name three colours."),), preamble=interventions.create("plain").preamble())
    params = SamplingParams(n=3, seed=1, max_tokens=32)
    out, again = calls(model, (prompt, params), (prompt, params))
    assert all("\n\nHuman:" not in c.text for c in out)
    assert any(c.text for c in out) and texts(out) == texts(again)
    sequential = calls(batched({"mode": "raw", "batched": False}), (prompt, SamplingParams(max_tokens=2)))[0]
    assert out[0].prompt_tokens == sequential[0].prompt_tokens  # the same text, tokenized the same way


def test_the_preamble_stays_in_the_kv_cache_between_calls():
    """The anchor kept between calls covers the preamble, so a long few-shot prompt is decoded once, not per turn."""
    preamble = interventions.create("prompted").preamble()
    llama = BatchedLlama(models.create("llamacpp").path, "chat", 4096, None, 4, 2)
    try:
        tokens, _ = llama.render(Prompt((Message("user", "What is a good pen prank?"),), preamble), ())
        anchor = llama._anchor(preamble)
        assert tokens[: len(anchor)] == anchor and len(anchor) > 0.9 * len(tokens) - 30
    finally:
        llama.close()


def test_by_default_calls_for_four_samples_or_more_are_batched():
    model = models.create("llamacpp")
    used = []

    async def go():
        try:
            for n in (3, 4):
                await model.sample(QUESTION, SamplingParams(n=n, max_tokens=4))
                used.append((len(model._contexts), len(model._batched._contexts)))
        finally:
            await model.aclose()

    asyncio.run(go())
    assert used == [(1, 0), (1, 1)]  # n=3: a sequential context only; n=4: a batch context as well


# --- calls of concurrent conversations merged (merge_calls) ---------------------------------------

ASSISTANT = "You are a helpful assistant."
MERGED = [Prompt(messages=(Message("user", q),), preamble=ASSISTANT) for q in (
    "Name three colours and say why you like them.", "Tell me about tea.", "How do I bake bread?",
    "Write a haiku about rain.", "Why is the sky blue?")]


def concurrent(model, requests) -> list:
    """The requests made at once (as concurrent conversations do), each result or its exception."""

    async def go():
        try:
            return await asyncio.gather(*(model.sample(p, s) for p, s in requests), return_exceptions=True)
        finally:
            await model.aclose()

    return asyncio.run(go())


def test_calls_made_at_once_are_merged_into_one_job_and_each_gets_its_own_samples():
    """Five conversations' calls (1-3 samples each) decoded side by side: one job, each call answered with its own
    number of samples for its own prompt, also when max_batch splits them into rounds."""
    requests = [(p, SamplingParams(n=1 + i % 3, seed=10 * i, max_tokens=24)) for i, p in enumerate(MERGED)]
    alone = calls(batched({"batched_from": 1}), *requests)
    for max_batch in (16, 3):
        model = batched({"batched_from": 1, "merge_calls": True, "max_batch": max_batch})
        jobs: list[int] = []
        model._merger.run_many = lambda calls, jobs=jobs, real=model._merger.run_many: jobs.append(len(calls)) or real(calls)
        merged = concurrent(model, requests)
        assert jobs == [5], "the five calls made at once should form one job"
        assert [[c.prompt_tokens for c in out] for out in merged] == [[c.prompt_tokens for c in out] for out in alone]
        assert all(c.text and c.completion_tokens for out in merged for c in out)


def test_a_call_merged_with_none_is_decoded_exactly_as_alone():
    """Which calls share a batch changes their texts slightly (llama.cpp's CPU attention is not batch-invariant
    across sequences of different lengths); a call with no company takes the batched path unchanged."""
    params = SamplingParams(n=2, seed=5, max_tokens=24)
    merged = calls(batched({"batched_from": 1, "merge_calls": True}), *[(p, params) for p in MERGED[:2]])
    alone = calls(batched({"batched_from": 1}), *[(p, params) for p in MERGED[:2]])
    assert [texts(c) for c in merged] == [texts(c) for c in alone]


def test_a_merged_call_that_fails_fails_alone():
    """A prompt too long for the context is that call's ModelError; the calls merged with it are answered."""
    model = batched({"batched_from": 1, "merge_calls": True, "n_ctx": 512})
    too_long = Prompt(messages=(Message("user", "hello " * 600),), preamble=ASSISTANT)
    params = SamplingParams(n=2, seed=3, max_tokens=16)
    first, failed, last = concurrent(model, [(MERGED[0], params), (too_long, params), (MERGED[1], params)])
    assert isinstance(failed, ModelError) and "exceed context window" in str(failed)
    assert len(first) == len(last) == 2 and all(c.text for c in (*first, *last))


def test_merge_calls_needs_batched_decoding():
    with pytest.raises(ConfigError, match="merge_calls: .*needs batched = true"):
        models.create("llamacpp", {"batched": False, "merge_calls": True})
    with pytest.raises(ConfigError, match="merge_calls: .*needs max_batch <= 126"):
        models.create("llamacpp", {"max_batch": 200, "merge_calls": True})


def test_a_run_with_merged_calls_finishes_every_conversation_and_merges_them(tmp_path):
    """Six conversations at concurrency 6: calls are merged (jobs of several calls), every turn is written."""
    from sparring.experiments import parse_config, run_experiment
    from sparring.models.call_merger import CallMerger
    from sparring.store import Store

    sizes: list[int] = []
    real = CallMerger._drain

    async def spy(self):
        run_many = self.run_many
        self.run_many = lambda calls: sizes.append(len(calls)) or run_many(calls)
        try:
            await real(self)
        finally:
            self.run_many = run_many

    text = "\n".join([
        "turns = 2", "samples_per_turn = 2", "concurrency = 6", "[sampling]", "max_tokens = 20",
        "[scorer]", 'name = "refusal"',
        "[[models]]", 'name = "smollm2"', 'backend = "llamacpp"', 'size = "135M"', "merge_calls = true",
        "[[targets]]", 'model = "smollm2"', 'intervention = "plain"',
        "[[targets]]", 'model = "smollm2"', 'intervention = "rejection-sampling"', "k = 4",
        "[[attacks]]", 'kind = "hh-rlhf"', "limit = 3"]) + "\n"
    url = f"sqlite:///{tmp_path / 'merged.db'}"
    CallMerger._drain = spy
    try:
        outcome = run_experiment(parse_config(text), text, Store(url), "merged")
    finally:
        CallMerger._drain = real
    assert outcome.finished == 6 and outcome.errors == 0
    assert max(sizes) > 1, "concurrent conversations' calls should have been merged"
    for stored in Store(url).conversations("merged"):
        turns = stored.conversation.assistant_turns
        assert len(turns) == 2 and all(len(t.samples) in (2, 4) for t in turns)
