"""The one thread that runs CPU-bound model work (llama.cpp generation, encoder forward passes).

A call uses every core, so calls take turns instead of thrashing; and OpenMP
(llama.cpp's and torch's thread teams) is set up once per calling thread, each
team spin-waiting: calls that hopped between threads ran ~30% slower.
That is why the executor is process-wide: a second one would bring back both
problems. It starts its thread on first use, not at import.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparring-compute")


async def run_on_compute_thread(function: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_THREAD, function, *args)


def run_on_compute_thread_sync(function: Callable[..., T], *args: object) -> T:
    """The same thread from synchronous code (the report): no event loop is started or needed."""
    return _THREAD.submit(function, *args).result()

