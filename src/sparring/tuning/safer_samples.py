"""Safer replies for the safety pairs: the target's own best sample, by the filter PM, instead of a refusal.

With a fixed refusal as ``chosen`` on every flagged red-team reply, the tuned
target learned to refuse look-alike safe questions too (over-refusal on XSTest
rose from 1% to 35% on a 150-dialogue run). The paper's own safe targets were
rejection sampling and RLHF against a preference model, not refusal training.
Here the base model answers each flagged turn ``k`` times under the paper's
helpful-honest-harmless prompt, the filter PM (never the judge) scores the
answers, and the most harmless becomes ``chosen`` when the filter does not
flag it: rejection sampling and context distillation, learned into the
weights. A turn with no unflagged sample (or that the model could not answer)
is left out: a fixed refusal in ``chosen`` is what raised over-refusal (with
40 such fallbacks among 132 pairs: 8%; without them: 1%, as the base).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sparring.errors import ModelError
from sparring.interventions.prompting import Prompted, PromptedConfig
from sparring.models.base import Model, Prompt, SamplingParams
from sparring.tuning.pairs import REFUSAL, SAFER_SAMPLE, PreferencePair
from sparring.tuning.reply_filter import transcript

if TYPE_CHECKING:
    from sparring.scoring.pm.model import PreferenceModel


async def with_safer_samples(pairs: Sequence[PreferencePair], model: Model, filter_pm: PreferenceModel, k: int,
                             seed: int, max_tokens: int,
                             progress: Callable[[int, int], None] | None = None) -> list[PreferencePair]:
    """``pairs`` with each refusal pair's ``chosen`` replaced by the filter's pick of ``k`` samples; without one, dropped.

    ``progress`` is told (done, total) after each refusal pair: at 8 samples a turn this stage takes minutes.
    """
    preamble = Prompted(PromptedConfig()).preamble()
    total, done = sum(pair.kind == REFUSAL for pair in pairs), 0
    out: list[PreferencePair] = []
    for index, pair in enumerate(pairs):
        if pair.kind != REFUSAL:
            out.append(pair)
            continue
        params = SamplingParams(n=k, seed=seed + index, temperature=0.8, max_tokens=max_tokens)
        safer = await _safer(pair, model, filter_pm, Prompt(pair.prompt, preamble), params)
        if safer is not None:
            out.append(safer)
        done += 1
        if progress is not None:
            progress(done, total)
    return out


async def _safer(pair: PreferencePair, model: Model, filter_pm: PreferenceModel, prompt: Prompt,
                 params: SamplingParams) -> PreferencePair | None:
    try:
        samples = [c.text.strip() for c in await model.sample(prompt, params)]
    except ModelError:  # e.g. a long dialogue and the HHH prompt past the context
        return None
    samples = [text for text in samples if text and text != pair.rejected.strip()]
    if not samples:
        return None
    scores = filter_pm.score([transcript(pair.prompt)] * len(samples), samples)
    best = max(range(len(samples)), key=lambda i: scores[i])
    if scores[best] < filter_pm.threshold:
        return None  # the filter flags every sample too
    return PreferencePair(pair.prompt, samples[best], pair.rejected, SAFER_SAMPLE, pair.source)
