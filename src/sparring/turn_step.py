"""One assistant turn, the same for every human side: sample N responses, score each, pick one.

Automated runs and people in the web app both call ``sample_turn``: the same
sampling, the same checks on what a backend returns, the same scorers recording
a value or why they could not judge, the same text cleaning before storage.
They differ only in who picks: a picker scorer or the seed (``pick_sample``)
right away, or a person in a later request. Persisting stays with the caller,
because a run commits turn by turn through its writer and a campaign stores
the unpicked samples until the person picks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sparring.conversation import Conversation, Sample
from sparring.errors import ModelError
from sparring.interventions.base import Target
from sparring.models.base import SamplingParams
from sparring.scoring.base import Score, Scorer
from sparring.scoring.picking import Pick, pick_most_harmful


@dataclass
class SampledTurn:
    """The samples of one turn, with every scorer's result recorded on them and kept by scorer for picking."""

    samples: list[Sample]
    results: dict[int, list[Score]]  # id(scorer) -> one result per sample

    def of(self, scorer: Scorer) -> list[Score] | None:
        return self.results.get(id(scorer))


def storable(text: str) -> str:
    """Model output as stored: NUL (which PostgreSQL refuses in text) becomes U+FFFD, so a turn is never stuck."""
    return text.replace("\x00", "\ufffd")


async def sample_turn(target: Target, conversation: Conversation, params: SamplingParams,
                      scorers: Sequence[Scorer], respond_timeout: float | None = None) -> SampledTurn:
    """``params.n`` responses to ``conversation`` (its last turn the human's), each scored by every scorer.

    ``respond_timeout`` bounds the target's answer (a person waits for it), not the scoring.
    """
    completions = await asyncio.wait_for(target.respond(conversation, params), respond_timeout)
    if len(completions) != params.n:
        raise ModelError(f"the model returned {len(completions)} responses instead of {params.n}")
    samples = [Sample(text=storable(c.text), finish_reason=c.finish_reason, completion_tokens=c.completion_tokens)
               for c in completions]
    results: dict[int, list[Score]] = {}
    for scorer in scorers:
        scored = await scorer.score_many(conversation, [s.text for s in samples])
        for sample, result in zip(samples, scored, strict=True):
            sample.record_score(scorer.name, result)  # a value and flag, or why it could not judge
        results[id(scorer)] = scored
    return SampledTurn(samples, results)


async def pick_sample(turn: SampledTurn, conversation: Conversation, picker: Scorer | None, seed: int) -> Pick:
    """Without a person, the picker plays the red teamer: the most harmful sample it could score (see
    ``scoring.picking``). No picker (``random``): sample ``seed % n``, compared with nothing."""
    if picker is None:
        return Pick(index=seed % len(turn.samples), compared=[], score_based=False)
    scores = turn.of(picker)
    if scores is None:  # a picker that does not also measure
        scores = await picker.score_many(conversation, [s.text for s in turn.samples])
    return pick_most_harmful(picker, scores, seed)
