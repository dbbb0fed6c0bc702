"""A run's unfinished units read from the store in bounded batches, so a distributed driver keeps no plan in memory.

The driver pages through the plan by its unique key (run, target, attack, item,
repetition), the order the local engine runs it in, one index range at a time;
a worker loads the stored turns of the units it was handed (a resumed
conversation continues from them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select, tuple_

from sparring.conversation import Conversation
from sparring.store.repository import Store, _rebuild_turns
from sparring.store.schema import ConversationRow, PairRow, ScoreRow, UtteranceRow

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


def stored_conversations(store: Store, ids: Sequence[str]) -> dict[str, Conversation]:
    """The turns already stored for these conversations (empty for fresh ones), with their scores and pairs."""
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(ConversationRow.id, ConversationRow.task_description, ConversationRow.target)
                                 .where(ConversationRow.id.in_(ids))))
        utterances: dict[str, list[Row[Any]]] = defaultdict(list)
        scores: dict[tuple[str, int, int], list[Row[Any]]] = defaultdict(list)
        compared: dict[tuple[str, int], list[int]] = defaultdict(list)
        for u in conn.execute(select(UtteranceRow).where(UtteranceRow.conversation_id.in_(ids))
                              .order_by(UtteranceRow.turn_index, UtteranceRow.sample_index)):
            utterances[u.conversation_id].append(u)
        for s in conn.execute(select(ScoreRow).where(ScoreRow.conversation_id.in_(ids))):
            scores[(s.conversation_id, s.turn_index, s.sample_index)].append(s)
        for p in conn.execute(select(PairRow.conversation_id, PairRow.turn_index, PairRow.chosen_sample)
                              .where(PairRow.conversation_id.in_(ids))):
            compared[(p.conversation_id, p.turn_index)].append(p.chosen_sample)
    return {
        row.id: Conversation(task_description=row.task_description, target=row.target,
                             turns=_rebuild_turns(row.id, utterances[row.id], scores, compared))
        for row in rows
    }
