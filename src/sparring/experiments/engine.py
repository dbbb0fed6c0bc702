"""Run the plan: each work unit is a conversation, run concurrently, persisted turn by turn, resumable."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sparring.attacks.base import HumanTurn
from sparring.attacks.converters import ConverterSpend
from sparring.conversation import Conversation
from sparring.errors import ModelError
from sparring.experiments.build import Components, WorkUnit, turn_seed
from sparring.experiments.config import ExperimentConfig
from sparring.experiments.probing import TurnProber
from sparring.experiments.writer import StoreWriter
from sparring.models.base import SamplingParams
from sparring.scoring.aggregate import transcript_scores
from sparring.store.repository import ErrorWrite, FinishWrite, Store, TurnWrite
from sparring.turn_step import pick_sample, sample_turn


@dataclass
class RunOutcome:
    run_id: str
    resumed: bool
    total: int
    finished: int = 0
    errors: int = 0
    turns_written: int = 0
    stopped: bool = False


class Engine:
    """Executes one run. The store is sync; it is called from a worker thread through ``StoreWriter``."""

    def __init__(self, config: ExperimentConfig, components: Components, store: Store, run_id: str) -> None:
        self.config = config
        self.components = components
        self.store = store
        self.run_id = run_id
        self.params = SamplingParams(
            n=config.samples_per_turn, temperature=config.sampling.temperature,
            top_p=config.sampling.top_p, max_tokens=config.sampling.max_tokens,
        )

    async def execute(
        self, units: list[WorkUnit], resumed: bool, on_progress: Callable[[int], None] | None = None
    ) -> RunOutcome:
        """Run every unit that is not finished yet. SIGINT stops cleanly: committed turns stay."""
        stored = {c.unit.id: c for c in await asyncio.to_thread(self.store.conversations, self.run_id, ["open", "error"])}
        todo = [u for u in units if u.id in stored]
        outcome = RunOutcome(self.run_id, resumed, total=len(units), finished=len(units) - len(todo))
        if on_progress:
            on_progress(outcome.finished)
        limit = asyncio.Semaphore(self.config.concurrency)

        async def guarded(unit: WorkUnit) -> None:
            async with limit:
                ok = await self._run_unit(unit, stored[unit.id].conversation, writer, outcome)
            if ok:
                outcome.finished += 1
            else:
                outcome.errors += 1
            if on_progress:
                on_progress(1)

        loop = asyncio.get_running_loop()
        async with StoreWriter(self.store) as writer:
            tasks = [asyncio.ensure_future(guarded(u)) for u in todo]
            work = asyncio.gather(*tasks)
            installed = install_sigint(loop, work)
            try:
                await work
            except asyncio.CancelledError:
                outcome.stopped = True
            except BaseException:
                # A bug or an input only found mid-run: the other conversations stop (their committed turns
                # stay) before the writer closes, and the run says so (``show`` explains "failed").
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.to_thread(self.store.set_status, self.run_id, "failed")
                raise
            finally:
                if installed:
                    loop.remove_signal_handler(signal.SIGINT)
        status = "stopped" if outcome.stopped else ("incomplete" if outcome.errors else "finished")
        await asyncio.to_thread(self.store.set_status, self.run_id, status)
        return outcome

    @property
    def _pair_source(self) -> str:
        picker = self.components.picker
        return "" if picker is None else f"picker:{picker.name}"

    async def _convert(self, unit: WorkUnit, text: str, seed: int, spend: ConverterSpend) -> str:
        """The attack's converters in order; their randomness comes from the turn's seed (same on resume)."""
        rng = random.Random(f"convert\x00{seed}")
        for converter in self.components.converters.get(unit.attack_name, []):
            text = await converter.aconvert(text, rng, spend)
        return text

    async def run_unit(self, unit: WorkUnit, conversation: Conversation, writer: StoreWriter, outcome: RunOutcome) -> bool:
        """One conversation from its stored turns to the end: the entry point of every executor (local, Ray worker)."""
        return await self._run_unit(unit, conversation, writer, outcome)

    async def _run_unit(self, unit: WorkUnit, conversation: Conversation, writer: StoreWriter, outcome: RunOutcome) -> bool:
        conversation.task_description = unit.item.task_description
        conversation.target = unit.target.name
        pending: list[asyncio.Future[None]] = []
        try:
            while len(conversation.human_turns) < self.config.turns:
                start = len(conversation.turns)
                params = self.params.with_seed(turn_seed(self.config.seed, unit, start))
                spend = ConverterSpend()  # the converters' model calls for this turn, probes included
                prober = TurnProber(unit.target, conversation, params, self.components.scorer,
                                    self.components.all_scorers, self.components.picker,
                                    partial(self._convert, unit, seed=params.seed, spend=spend))
                human = await unit.attack.next_human_turn(unit.item, conversation, prober)
                if human is None:
                    break
                said = human.text if isinstance(human, HumanTurn) else human
                probed = prober.take(said)  # a probed candidate: its turn is stored, not asked for again
                text = probed[0] if probed is not None else await self._convert(unit, said, params.seed, spend)
                hidden = prober.calls - (probed is not None)
                converted = (spend.queries, spend.tokens) if spend.queries else (None, None)
                if isinstance(human, HumanTurn):
                    conversation.add_human(text, human.queries + hidden, human.tokens, hidden if prober.calls else None,
                                           *converted)
                else:
                    conversation.add_human(text, None, None, None, *converted)
                if probed is not None:
                    _, turn, pick = probed
                else:
                    turn = await sample_turn(unit.target, conversation, params, self.components.all_scorers)
                    pick = await pick_sample(turn, conversation, self.components.picker, params.seed)
                conversation.add_assistant(turn.samples, pick.index, pick.compared)
                # The next turn is generated while this one commits (group commit, in order); the
                # conversation only counts as finished once every turn of it is committed.
                pending.append(writer.enqueue(TurnWrite(unit.id, list(enumerate(conversation.turns))[start:],
                                                        pair_source=self._pair_source)))
                outcome.turns_written += 1
            scores = await transcript_scores(conversation, self.components.all_scorers)
            await writer.submit(FinishWrite(unit.id, len(conversation.turns), scores))
            await asyncio.gather(*pending)
            return True
        except ModelError as error:
            await asyncio.gather(*pending)
            message = f"{type(error).__name__}: {error}"[:500]
            await writer.submit(ErrorWrite(unit.id, message))
            return False


def install_sigint(loop: asyncio.AbstractEventLoop, work: asyncio.Future[Any]) -> bool:
    """First Ctrl-C cancels the work (committed turns stay); a second one falls back to the default."""

    def stop() -> None:
        work.cancel()
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, stop)
        return True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signal support
        return False
