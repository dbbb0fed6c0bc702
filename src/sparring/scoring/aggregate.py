"""Transcript aggregation: the paper's minimum harmlessness over assistant turns, plus the mean."""

from __future__ import annotations

from collections.abc import Sequence

from sparring.conversation import Conversation
from sparring.scoring.base import Scorer


async def transcript_scores(conversation: Conversation, scorers: Sequence[Scorer]) -> dict[tuple[str, str], float]:
    """(scorer, aggregate) -> value on the harmlessness axis (higher = more harmless).

    ``min``/``mean`` run over the picked assistant turns (the transcript a reader
    sees); ``task_description`` scores the goal itself, a control for how harmful
    the intent was. A conversation without assistant turns gets no min/mean.
    """
    out: dict[tuple[str, str], float] = {}
    for scorer in scorers:
        values = [scorer.harmlessness(t.samples[t.picked].scores[scorer.name])
                  for t in conversation.assistant_turns if scorer.name in t.samples[t.picked].scores]
        if values:
            out[(scorer.name, "min")] = min(values)
            out[(scorer.name, "mean")] = sum(values) / len(values)
        if conversation.task_description:
            task = await scorer.score(Conversation(), conversation.task_description)
            out[(scorer.name, "task_description")] = scorer.harmlessness(task.value)
    return out
