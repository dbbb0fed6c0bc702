"""Safer samples: the filter's pick of the target's own answers replaces the refusal in a safety pair."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sparring.interventions.prompting import Prompted, PromptedConfig
from sparring.models.base import Message
from sparring.models.scripted import ScriptedConfig, ScriptedModel
from sparring.tuning.pairs import HELPFUL, REFUSAL, SAFER_SAMPLE, PreferencePair
from sparring.tuning.safer_samples import with_safer_samples

CAREFUL, HARMFUL = "That could hurt someone; here is a safer way to think about it.", "Sure, here is how you do it."


class MarkerFilter:
    """A filter double: flags every reply except the careful one (higher = more harmless)."""

    threshold = 0.0

    def __init__(self) -> None:
        self.contexts: list[str] = []
        self.responses: list[str] = []

    def score(self, contexts: Sequence[str], responses: Sequence[str]) -> list[float]:
        self.contexts.extend(contexts)
        self.responses.extend(responses)
        return [1.0 if response == CAREFUL else -1.0 for response in responses]


def _pair(kind: str, request: str) -> PreferencePair:
    return PreferencePair((Message("user", request),), "I'm sorry, but I can't help with that.", HARMFUL, kind,
                          f"run:r/{request}/1")


def test_the_filters_pick_replaces_the_refusal_only_where_it_is_not_flagged() -> None:
    pairs = [_pair(REFUSAL, "how do I do it?"), _pair(HELPFUL, "Write a poem."), _pair(REFUSAL, "and then?")]
    careful = ScriptedModel(ScriptedConfig(responses=[CAREFUL, HARMFUL]))
    told: list[tuple[int, int]] = []
    out = asyncio.run(with_safer_samples(pairs, careful, MarkerFilter(), k=8, seed=0, max_tokens=32,
                                         progress=lambda done, total: told.append((done, total))))
    assert told == [(1, 2), (2, 2)]  # after each safety pair
    assert [p.kind for p in out] == [SAFER_SAMPLE, HELPFUL, SAFER_SAMPLE]
    for before, after in zip(pairs, out, strict=True):
        assert (after.prompt, after.rejected, after.source) == (before.prompt, before.rejected, before.source)
    assert out[0].chosen == out[2].chosen == CAREFUL and out[1] == pairs[1]
    hhh = Prompted(PromptedConfig()).preamble()
    assert [p.preamble for p in careful.prompts] == [hhh, hhh]  # sampled under the HHH prompt, safety pairs only
    assert {p.messages for p in careful.prompts} == {pairs[0].prompt, pairs[2].prompt}


def test_a_turn_without_an_unflagged_sample_is_left_out() -> None:
    pairs = [_pair(REFUSAL, "how do I do it?"), _pair(HELPFUL, "Write a poem.")]
    harmful_only = ScriptedModel(ScriptedConfig(responses=[HARMFUL, "Step one: get the tools."]))
    checked = MarkerFilter()
    # no fixed refusal in its place: that is what raised over-refusal
    assert asyncio.run(with_safer_samples(pairs, harmful_only, checked, k=8, seed=0, max_tokens=32)) == pairs[1:]
    # the rejected reply itself is never a candidate; the filter reads the turn as an HH transcript
    assert checked.responses and set(checked.responses) == {"Step one: get the tools."}
    assert set(checked.contexts) == {"\n\nHuman: how do I do it?"}


def test_a_turn_the_model_cannot_answer_is_left_out() -> None:
    pairs = [_pair(REFUSAL, "a dialogue too long for the context"), _pair(REFUSAL, "how do I do it?")]
    failing = ScriptedModel(ScriptedConfig(responses=[CAREFUL], fail_if_contains="too long"))
    out = asyncio.run(with_safer_samples(pairs, failing, MarkerFilter(), k=4, seed=0, max_tokens=32))
    assert [(p.kind, p.chosen, p.source) for p in out] == [(SAFER_SAMPLE, CAREFUL, pairs[1].source)]
