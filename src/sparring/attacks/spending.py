"""A conversation's attacker budget as searching attackers spend it: model calls, target probes, tokens.

Model calls and probes are both queries; tokens are the attacker model's completion tokens.
What earlier turns spent is read back from the stored turns (their ``queries`` already include
the probes the engine counted as hidden), so a resumed conversation keeps the same budget.
"""

from __future__ import annotations

from dataclasses import replace

from sparring.attacks.generated import Budget, opening_text
from sparring.attacks.probe import Probe, Probed
from sparring.conversation import Conversation
from sparring.models import Model, Prompt, SamplingParams


class Spend:
    """Counts one attacker turn's calls against what the conversation has left."""

    def __init__(self, budget: Budget, conversation: Conversation) -> None:
        spent = [h.samples[0] for h in conversation.human_turns]
        self.budget = budget
        self.before_queries = sum(s.queries or 0 for s in spent)
        self.before_tokens = sum(s.completion_tokens or 0 for s in spent if s.queries)
        self.calls = 0  # attacker model calls this turn
        self.probes = 0  # target probes this turn
        self.tokens = 0

    @property
    def queries_left(self) -> int:
        return self.budget.queries - self.before_queries - self.calls - self.probes

    @property
    def tokens_left(self) -> int:
        return self.budget.tokens - self.before_tokens - self.tokens

    @property
    def can_write(self) -> bool:
        return self.queries_left > 0 and self.tokens_left > 0

    async def write(self, model: Model, prompt: Prompt, params: SamplingParams) -> str:
        """One attacker call capped by the tokens left; the message in its reply, or '' if it has none."""
        return opening_text(await self.ask(model, prompt, params))

    async def ask(self, model: Model, prompt: Prompt, params: SamplingParams) -> str:
        """One attacker call whose raw reply is wanted (a yes/no check), counted like ``write``."""
        [completion] = await model.sample(prompt, replace(params, max_tokens=min(params.max_tokens, self.tokens_left)))
        self.calls += 1
        self.tokens += completion.completion_tokens or len(completion.text.split())
        return completion.text

    async def probe(self, probe: Probe, text: str) -> Probed:
        self.probes += 1
        return await probe(text)

    @property
    def what(self) -> str:
        return (f"{self.before_queries + self.calls + self.probes} of {self.budget.queries} queries, "
                f"{self.before_tokens + self.tokens} of {self.budget.tokens} tokens")
