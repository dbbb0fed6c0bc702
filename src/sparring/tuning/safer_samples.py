"""Safer replies for the safety pairs: the target's own best sample, by the filter PM, instead of a refusal.

With a fixed refusal as ``chosen`` on every flagged red-team reply, the tuned
target learned to refuse look-alike safe questions too (over-refusal on XSTest
rose from 1% to 35% on a 150-dialogue run). The paper's own safe targets were
rejection sampling and RLHF against a preference model, not refusal training.
Here the base model answers each flagged turn ``k`` times under the paper's
helpful-honest-harmless prompt, the filter PM (never the judge) scores the
answers, and the most harmless becomes ``chosen`` when the filter does not
flag it: rejection sampling and context distillation, learned into the
weights. A turn with no unflagged sample keeps its refusal pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sparring.interventions.prompting import Prompted, PromptedConfig
from sparring.models.base import Model, Prompt, SamplingParams
from sparring.tuning.pairs import REFUSAL, SAFER_SAMPLE, PreferencePair
from sparring.tuning.reply_filter import transcript

if TYPE_CHECKING:
    from sparring.scoring.pm.model import PreferenceModel


async def with_safer_samples(pairs: Sequence[PreferencePair], model: Model, filter_pm: PreferenceModel, k: int,
                             seed: int, max_tokens: int) -> list[PreferencePair]:
    """``pairs`` with each refusal pair's ``chosen`` replaced by the filter's pick of ``k`` samples, where it has one."""
    preamble = Prompted(PromptedConfig()).preamble()
    out: list[PreferencePair] = []
    for index, pair in enumerate(pairs):
        if pair.kind != REFUSAL:
            out.append(pair)
            continue
        params = SamplingParams(n=k, seed=seed + index, temperature=0.8, max_tokens=max_tokens)
        samples = [c.text.strip() for c in await model.sample(Prompt(pair.prompt, preamble), params)]
        samples = [text for text in samples if text and text != pair.rejected.strip()]
        if samples:
            scores = filter_pm.score([transcript(pair.prompt)] * len(samples), samples)
            best = max(range(len(samples)), key=lambda i: scores[i])
            if scores[best] >= filter_pm.threshold:
                out.append(PreferencePair(pair.prompt, samples[best], pair.rejected, SAFER_SAMPLE, pair.source))
                continue
        out.append(pair)
    return out
