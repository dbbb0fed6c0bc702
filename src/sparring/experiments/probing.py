"""The engine's side of ``attacks.probe``: candidate turns tried with the run's own turn step, nothing stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sparring.attacks.probe import Probed
from sparring.conversation import Conversation
from sparring.interventions.base import Target
from sparring.models.base import SamplingParams
from sparring.scoring.base import Scorer
from sparring.scoring.picking import Pick
from sparring.turn_step import SampledTurn, pick_sample, sample_turn


class TurnProber:
    """Probes one position of one conversation with the parameters the stored turn there would use.

    Each probed turn is kept by the candidate's text, with what the target saw (after the
    attack's converters), so when the attacker speaks a probed candidate the engine stores that
    turn (``take``) rather than converting and asking again: the stored reply is the one the
    attacker judged, for any backend.
    """

    def __init__(self, target: Target, conversation: Conversation, params: SamplingParams, judge: Scorer,
                 scorers: list[Scorer], picker: Scorer | None, convert: Callable[[str], Awaitable[str]]) -> None:
        self.target, self.conversation, self.params = target, conversation, params
        self.judge, self.scorers, self.picker, self.convert = judge, scorers, picker, convert
        self.turns: dict[str, tuple[str, SampledTurn, Pick]] = {}
        self.calls = 0

    async def __call__(self, text: str) -> Probed:
        if text not in self.turns:
            seen = await self.convert(text)
            candidate = self.conversation.model_copy(deep=True)
            candidate.add_human(seen)
            turn = await sample_turn(self.target, candidate, self.params, self.scorers)
            self.turns[text] = (seen, turn, await pick_sample(turn, candidate, self.picker, self.params.seed))
            self.calls += 1
        _, turn, pick = self.turns[text]
        reply = turn.samples[pick.index]
        value = reply.scores.get(self.judge.name)
        return Probed(reply=reply.model_copy(deep=True),
                      harmlessness=None if value is None else self.judge.harmlessness(value),
                      harmful=None if value is None else reply.flagged[self.judge.name] == self.judge.flag_is_harmful)

    def take(self, text: str) -> tuple[str, SampledTurn, Pick] | None:
        """For a probed candidate: what the target saw, and its sampled, scored and picked turn."""
        return self.turns.get(text)
