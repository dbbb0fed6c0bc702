"""A run's unfinished units read from the store in bounded batches, so a distributed driver keeps no plan in memory.

The driver pages through the plan by its unique key (run, target, attack, item,
repetition), the order the local engine runs it in, one index range at a time;
a worker loads the stored turns of the units it was handed (a resumed
conversation continues from them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_

from sparring.conversation import Conversation
from sparring.store.repository import Store
from sparring.store.schema import ConversationRow

UNFINISHED = ("open", "error")


@dataclass(frozen=True)
class UnitRef:
    """What a worker needs to rebuild a work unit from its own components: the key, not the objects."""

    id: str
    target: str
    attack: str
    item_id: str
    repetition: int


def unfinished_batches(store: Store, run_id: str, size: int, page: int = 1000) -> Iterator[list[UnitRef]]:
    """Unfinished units in plan order, ``size`` at a time; each page is one range of the plan's unique index.

    Only the last key seen is kept between pages. Units that finish meanwhile are
    behind the cursor, so nothing is handed out twice within one run of the driver.
    """
    c = ConversationRow
    key = (c.target, c.attack, c.item_id, c.repetition)
    last: tuple[Any, ...] | None = None
    batch: list[UnitRef] = []
    while True:
        query = select(c.id, c.status, *key).where(c.run_id == run_id)
        if last is not None:
            query = query.where(tuple_(*key) > tuple_(*last))
        with store.engine.connect() as conn:
            rows = conn.execute(query.order_by(*key).limit(page)).all()
        for row in rows:
            if row.status in UNFINISHED:
                batch.append(UnitRef(row.id, row.target, row.attack, row.item_id, row.repetition))
                if len(batch) == size:
                    yield batch
                    batch = []
        if len(rows) < page:
            break
        last = (rows[-1].target, rows[-1].attack, rows[-1].item_id, rows[-1].repetition)
    if batch:
        yield batch


def stored_conversations(store: Store, run_id: str, ids: Sequence[str]) -> dict[str, Conversation]:
    """The turns already stored for these conversations (empty for fresh ones), with their scores and pairs."""
    return {stored.unit.id: stored.conversation for stored in store.conversations(run_id, ids=ids)}
