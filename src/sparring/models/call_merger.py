"""Concurrent calls to one local model, gathered while the compute thread is busy and decoded together.

Conversations run concurrently but the local model runs one call at a time on
the compute thread; each call alone decodes one or a few sequences per pass
over the weights. The merger queues the calls that arrive meanwhile and hands
those with one preamble to the model as one job, which decodes them side by
side (``BatchedLlama.sample_many``). Which calls end up together depends on
timing, and so, at the rounding level, do their texts (see ``llamacpp_batch``):
that is why merging is opt-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sparring.compute_thread import run_on_compute_thread
from sparring.models.base import Completion, Prompt, SamplingParams

RunMany = Callable[[Sequence[tuple[Prompt, SamplingParams]]], list[list[Completion] | Exception]]


@dataclass(eq=False)
class _Waiting:
    prompt: Prompt
    params: SamplingParams
    future: asyncio.Future[list[Completion]]


@dataclass(eq=False)
class CallMerger:
    """One queue per model and event loop; ``submit`` returns that call's completions (or raises its error)."""

    run_many: RunMany
    _waiting: list[_Waiting] = field(default_factory=list)
    _drainer: asyncio.Task[None] | None = None

    async def submit(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        loop = asyncio.get_running_loop()
        if self._drainer is not None and self._drainer.get_loop() is not loop:
            self._drainer, self._waiting = None, []  # a new event loop (another run in this process)
        waiting = _Waiting(prompt, params, loop.create_future())
        self._waiting.append(waiting)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await waiting.future

    async def _drain(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # calls made in this same step of the loop join the job
            preamble = self._waiting[0].prompt.preamble
            job = [w for w in self._waiting if w.prompt.preamble == preamble and not w.future.done()]
            self._waiting = [w for w in self._waiting if w.prompt.preamble != preamble]
            if not job:
                continue
            try:
                results = await run_on_compute_thread(self.run_many, [(w.prompt, w.params) for w in job])
            # the job as a whole failed (a bug, not a model error: those come back per call); every call waiting
            # on it is handed the exception to raise, none is left to wait forever
            except Exception as error:  # noqa: BLE001
                results = [error] * len(job)
            for waiting, result in zip(job, results, strict=True):
                if waiting.future.done():  # its conversation was cancelled meanwhile
                    continue
                if isinstance(result, Exception):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result(result)
