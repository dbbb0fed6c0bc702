"""Group commit: turns from many conversations go into one transaction, each caller waits for its commit."""

from __future__ import annotations

import asyncio

from sparring.store.repository import Store, Write


class StoreWriter:
    """A single writer task in front of the store; ``submit`` returns once the write is committed."""

    def __init__(self, store: Store, max_batch: int = 512) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Write, asyncio.Future[None]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StoreWriter:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Flush everything submitted so far, even when the run was cancelled."""
        self._queue.put_nowait(None)
        if self._task is not None:
            await asyncio.shield(self._task)

    def enqueue(self, write: Write) -> asyncio.Future[None]:
        """Queue a write; the future resolves once it is committed. Writes commit in queue order."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((write, future))
        return future

    async def submit(self, write: Write) -> None:
        await self.enqueue(write)

    async def _loop(self) -> None:
        closing = False
        while not closing:
            first = await self._queue.get()
            batch = [] if first is None else [first]
            closing = first is None
            while len(batch) < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    closing = True
                else:
                    batch.append(item)
            if not batch:
                continue
            try:
                await asyncio.to_thread(self.store.apply, [write for write, _ in batch])
            except Exception as error:  # noqa: BLE001 — the callers see the failure; nothing of the batch was committed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
