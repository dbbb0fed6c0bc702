"""Reading and writing runs. Each write is one transaction: a turn is stored whole or not at all."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from sparring.conversation import Conversation, Role, Sample, Turn
from sparring.errors import ConfigError, ConflictError
from sparring.redaction import redact_database_url
from sparring.store.database import connect
from sparring.store.schema import (
    Base,
    ConversationRow,
    PairRow,
    RunRow,
    ScoreRow,
    TargetRow,
    TranscriptScoreRow,
    UtteranceRow,
)


def now() -> datetime:
    return datetime.now(UTC)


def _table(model: type[Base]) -> Table:
    """A mapped class's Core table: ``__table__`` is typed FromClause, but a declarative class's is a Table."""
    return cast(Table, model.__table__)


# Core tables and prepared statements: the write path runs executemany, not the ORM's per-row work.
UTTERANCES = _table(UtteranceRow)
SCORES = _table(ScoreRow)
PAIRS = _table(PairRow)
TRANSCRIPT_SCORES = _table(TranscriptScoreRow)
CONVERSATIONS = _table(ConversationRow)
_T = TypeVar("_T")
_PLAN_CHUNK = 2000  # conversations registered per INSERT (and per known-id lookup on a resume)
_SET_PROGRESS = (
    CONVERSATIONS.update().where(CONVERSATIONS.c.id == bindparam("cid"))
    .values(n_turns=bindparam("n"), status="open", error=None)
)
_SET_FINISHED = (
    CONVERSATIONS.update().where(CONVERSATIONS.c.id == bindparam("cid"))
    .values(status="finished", n_turns=bindparam("n"), error=None, finished_at=bindparam("at"))
)
_SET_ERROR = (
    CONVERSATIONS.update().where(CONVERSATIONS.c.id == bindparam("cid"))
    .values(status="error", error=bindparam("message"))
)


@dataclass(frozen=True)
class UnitRecord:
    """A planned conversation (one work unit) as stored."""

    id: str
    target: str
    attack: str
    item_id: str
    repetition: int
    task_description: str
    red_team_member: str


@dataclass
class TurnWrite:
    """Turns appended to a conversation (a human turn and the assistant's samples), scores, pairs."""

    conversation_id: str
    turns: list[tuple[int, Turn]]
    pair_source: str = ""


@dataclass
class FinishWrite:
    conversation_id: str
    n_turns: int
    transcript_scores: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass
class ErrorWrite:
    conversation_id: str
    message: str


Write = TurnWrite | FinishWrite | ErrorWrite


@dataclass
class StoredConversation:
    unit: UnitRecord
    status: str
    error: str | None
    conversation: Conversation
    transcript_scores: dict[tuple[str, str], float]
    rating: float | None = None


class Store:
    """Sync persistence API; the async engine calls it from a worker thread."""

    def __init__(self, url: str, pool_size: int = 5, pre_ping: bool = True, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = connect(url, pool_size, pre_ping, migrate)

    def close(self) -> None:
        self.engine.dispose()

    # -- runs -------------------------------------------------------------------------------
    def open_run(
        self,
        run_id: str,
        config_hash: str,
        config_toml: str,
        components: dict[str, Any],
        targets: Sequence[dict[str, Any]],
        units: Iterable[UnitRecord],
    ) -> bool:
        """Create the run and its plan, or check that an existing run has the same config.

        Returns True when the run already existed (a resume). Units missing from
        an existing plan are added; existing ones are never touched. ``units`` is
        read a chunk at a time inside one transaction, so a plan of millions is
        registered whole or not at all, without being held in memory.
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(RunRow.config_hash).where(RunRow.id == run_id)).first()
            existed = row is not None
            if row is not None and row.config_hash != config_hash:
                raise ConfigError(
                    f"run {run_id!r} already exists with a different configuration; "
                    "choose another --run-id to start a new run"
                )
            if not existed:
                conn.execute(insert(RunRow).values(
                    id=run_id, config_hash=config_hash, config_toml=config_toml, components=components,
                    status="running", created_at=now(), updated_at=now(),
                ))
                conn.execute(insert(TargetRow), [{"run_id": run_id, **t} for t in targets])
            for chunk in _chunks(units, _PLAN_CHUNK):
                known = set(conn.scalars(select(ConversationRow.id).where(
                    ConversationRow.id.in_([u.id for u in chunk])))) if existed else set()
                fresh = [u for u in chunk if u.id not in known]
                if fresh:
                    conn.execute(insert(ConversationRow), [
                        {**u.__dict__, "run_id": run_id, "status": "open", "n_turns": 0} for u in fresh
                    ])
            if existed:
                conn.execute(update(RunRow).where(RunRow.id == run_id).values(status="running", updated_at=now()))
        return existed

    def set_status(self, run_id: str, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == run_id).values(status=status, updated_at=now()))

    def run(self, run_id: str) -> RunRow:
        with self.engine.connect() as conn:
            row = conn.execute(select(RunRow).where(RunRow.id == run_id)).first()
        if row is None:
            known = ", ".join(self.run_ids()[-10:]) or "none yet"
            raise ConfigError(f"no run {run_id!r} in {redact_database_url(self.url)}; recent runs: {known}")
        return row  # type: ignore[return-value]

    def run_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(select(RunRow.id).order_by(RunRow.created_at)))

    def runs(self) -> list[RunRow]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(RunRow).order_by(RunRow.created_at)))  # type: ignore[arg-type]

    def targets(self, run_id: str) -> list[TargetRow]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(TargetRow).where(TargetRow.run_id == run_id).order_by(TargetRow.name)))  # type: ignore[arg-type]

    def status_counts(self, run_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ConversationRow.status, func.count()).where(ConversationRow.run_id == run_id)
                .group_by(ConversationRow.status)
            )
            return {status: count for status, count in rows}

    # -- writes -----------------------------------------------------------------------------
    def apply(self, writes: Iterable[Write]) -> None:
        """Apply writes in one transaction (group commit); rows go in with executemany."""
        utterances: list[dict[str, Any]] = []
        scores: list[dict[str, Any]] = []
        pairs: list[dict[str, Any]] = []
        progress: dict[str, int] = {}
        finishes: list[FinishWrite] = []
        errors: list[ErrorWrite] = []
        for write in writes:
            if isinstance(write, TurnWrite):
                _turn_rows(write, utterances, scores, pairs)
                progress[write.conversation_id] = max(i for i, _ in write.turns) + 1
            elif isinstance(write, FinishWrite):
                finishes.append(write)
            else:
                errors.append(write)
        try:
            self._apply(utterances, scores, pairs, progress, finishes, errors)
        except IntegrityError:
            # every turn is keyed: a second writer of the same conversation collides instead of duplicating it
            named = self._written_already(utterances) or sorted(
                {*progress, *(f.conversation_id for f in finishes), *(e.conversation_id for e in errors)})
            raise ConflictError(
                f"conversation {named[0]}{f' (and {len(named) - 1} more)' if len(named) > 1 else ''} was written by "
                "another process at the same time, so this batch was not saved: two `sparring run` of one run, or a "
                "killed run's Ray workers still finishing (they stop within seconds). Wait for the other process, "
                "then run the command again: it resumes from what was saved") from None

    def _written_already(self, utterances: list[dict[str, Any]]) -> list[str]:
        """The conversations whose turns in ``utterances`` another writer has stored meanwhile."""
        wanted = {(u["conversation_id"], u["turn_index"], u["sample_index"]) for u in utterances}
        with self.engine.connect() as conn:
            stored = conn.execute(select(UtteranceRow.conversation_id, UtteranceRow.turn_index, UtteranceRow.sample_index)
                                  .where(UtteranceRow.conversation_id.in_({cid for cid, _, _ in wanted})))
            return sorted({row.conversation_id for row in stored if tuple(row) in wanted})

    def _apply(self, utterances: list[dict[str, Any]], scores: list[dict[str, Any]], pairs: list[dict[str, Any]],
               progress: dict[str, int], finishes: list[FinishWrite], errors: list[ErrorWrite]) -> None:
        with self.engine.begin() as conn:
            for table, rows in ((UTTERANCES, utterances), (SCORES, scores), (PAIRS, pairs)):
                if rows:
                    conn.execute(table.insert(), rows)
            if progress:
                conn.execute(_SET_PROGRESS, [{"cid": cid, "n": n} for cid, n in progress.items()])
            transcript = [
                {"conversation_id": f.conversation_id, "scorer": scorer, "aggregate": aggregate, "value": value}
                for f in finishes for (scorer, aggregate), value in f.transcript_scores.items()
            ]
            if transcript:
                conn.execute(TRANSCRIPT_SCORES.insert(), transcript)
            if finishes:
                conn.execute(_SET_FINISHED, [{"cid": f.conversation_id, "n": f.n_turns, "at": now()} for f in finishes])
            if errors:
                conn.execute(_SET_ERROR, [{"cid": e.conversation_id, "message": e.message[:2000]} for e in errors])

    # -- reads ------------------------------------------------------------------------------
    def conversations(self, run_id: str, statuses: Sequence[str] | None = None,
                      ids: Sequence[str] | None = None) -> list[StoredConversation]:
        """Conversations of a run (only ``ids``, if given) with their turns, samples and scores, in plan order."""
        with self.engine.connect() as conn:
            query = select(ConversationRow).where(ConversationRow.run_id == run_id)
            if statuses:
                query = query.where(ConversationRow.status.in_(statuses))
            if ids is not None:
                query = query.where(ConversationRow.id.in_(ids))
            rows = list(conn.execute(query.order_by(ConversationRow.target, ConversationRow.attack,
                                                    ConversationRow.item_id, ConversationRow.repetition)))
            ids = [r.id for r in rows]
            utterances: dict[str, list[Row[Any]]] = defaultdict(list)
            sample_scores: dict[tuple[str, int, int], list[Row[Any]]] = defaultdict(list)
            compared: dict[tuple[str, int], list[int]] = defaultdict(list)
            transcript: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
            for chunk in _chunks(ids, 500):
                for u in conn.execute(select(UtteranceRow).where(UtteranceRow.conversation_id.in_(chunk))
                                      .order_by(UtteranceRow.turn_index, UtteranceRow.sample_index)):
                    utterances[u.conversation_id].append(u)
                for s in conn.execute(select(ScoreRow).where(ScoreRow.conversation_id.in_(chunk))):
                    sample_scores[(s.conversation_id, s.turn_index, s.sample_index)].append(s)
                for p in conn.execute(select(PairRow.conversation_id, PairRow.turn_index, PairRow.chosen_sample)
                                      .where(PairRow.conversation_id.in_(chunk))):
                    compared[(p.conversation_id, p.turn_index)].append(p.chosen_sample)
                for t in conn.execute(select(TranscriptScoreRow).where(TranscriptScoreRow.conversation_id.in_(chunk))):
                    transcript[t.conversation_id][(t.scorer, t.aggregate)] = t.value
        out = []
        for row in rows:
            unit = UnitRecord(row.id, row.target, row.attack, row.item_id, row.repetition,
                              row.task_description, row.red_team_member)
            conversation = Conversation(task_description=row.task_description, target=row.target,
                                        turns=_rebuild_turns(row.id, utterances[row.id], sample_scores, compared))
            out.append(StoredConversation(unit, row.status, row.error, conversation, transcript[row.id], row.rating))
        return out

    def pairs(self, run_id: str) -> list[tuple[str, int, int, int, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(PairRow.conversation_id, PairRow.turn_index, PairRow.chosen_sample,
                       PairRow.rejected_sample, PairRow.source)
                .join(ConversationRow, ConversationRow.id == PairRow.conversation_id)
                .where(ConversationRow.run_id == run_id)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def attempt_tags(self, run_id: str) -> dict[str, list[str]]:
        """Harm tags people gave the conversations of a campaign's run (none for automated runs)."""
        from sparring.store.campaign_schema import AttemptRow

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(AttemptRow.conversation_id, AttemptRow.tags)
                .join(ConversationRow, ConversationRow.id == AttemptRow.conversation_id)
                .where(ConversationRow.run_id == run_id, AttemptRow.tags.is_not(None))
            )
            return {r.conversation_id: list(r.tags) for r in rows if r.tags}


def _turn_rows(write: TurnWrite, utterances: list[dict[str, Any]], scores: list[dict[str, Any]],
               pairs: list[dict[str, Any]]) -> None:
    cid = write.conversation_id
    for index, turn in write.turns:
        for s_index, sample in enumerate(turn.samples):
            utterances.append({
                "conversation_id": cid, "turn_index": index, "sample_index": s_index, "role": turn.role.value,
                "text": sample.text, "picked": s_index == turn.picked, "finish_reason": sample.finish_reason,
                "completion_tokens": sample.completion_tokens, "queries": sample.queries,
                "hidden": sample.hidden, "converter_queries": sample.converter_queries,
                "converter_tokens": sample.converter_tokens,
            })
            scores += score_rows(cid, index, s_index, sample)
        if turn.role is Role.ASSISTANT and write.pair_source:
            for s_index in turn.compared_indices:
                pairs.append({"conversation_id": cid, "turn_index": index, "chosen_sample": s_index,
                              "rejected_sample": turn.picked, "source": write.pair_source})


def score_rows(conversation_id: str, turn_index: int, sample_index: int, sample: Sample) -> list[dict[str, Any]]:
    """The ``scores`` rows of one sample: a value and flag per scorer, or NULLs and the unscored reason."""
    key = {"conversation_id": conversation_id, "turn_index": turn_index, "sample_index": sample_index}
    rows = [{**key, "scorer": scorer, "value": value, "flagged": sample.flagged.get(scorer, False), "unscored": None}
            for scorer, value in sample.scores.items()]
    rows += [{**key, "scorer": scorer, "value": None, "flagged": None, "unscored": reason}
             for scorer, reason in sample.unscored.items()]
    return rows


def _rebuild_turns(cid: str, rows: list[Row[Any]], scores: dict[tuple[str, int, int], list[Row[Any]]],
                   compared: dict[tuple[str, int], list[int]]) -> list[Turn]:
    """Turns as stored; an assistant turn's ``compared`` is the samples its stored comparison pairs name."""
    turns: list[Turn] = []
    by_turn: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        by_turn[row.turn_index].append(row)
    for index in sorted(by_turn):
        samples, picked = [], 0
        for row in by_turn[index]:
            found = scores.get((cid, index, row.sample_index), [])
            samples.append(Sample(
                text=row.text, finish_reason=row.finish_reason, completion_tokens=row.completion_tokens,
                queries=row.queries, hidden=row.hidden, converter_queries=row.converter_queries,
                converter_tokens=row.converter_tokens,
                scores={s.scorer: s.value for s in found if s.value is not None},
                flagged={s.scorer: bool(s.flagged) for s in found if s.value is not None},
                unscored={s.scorer: s.unscored or "unscored" for s in found if s.value is None},
            ))
            if row.picked:
                picked = row.sample_index
        role = Role(by_turn[index][0].role)
        pairs = sorted(compared.get((cid, index), [])) if role is Role.ASSISTANT else None
        turns.append(Turn(role=role, samples=samples, picked=picked, compared=pairs))
    return turns


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """Consecutive lists of at most ``size`` items, read lazily (``itertools.batched`` needs Python 3.12)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
