"""A person's campaign conversations as stored: reading their state, writing turns, picks and endings.

Campaign conversations are ordinary ``conversations`` rows of the campaign's
run, so exports and analyses read them like any run. Each write below is one
transaction. Sampled responses are written as soon as they exist, none picked,
so a reload never samples again; the pick marks one and stores a comparison
pair per other response. Unique keys turn a duplicate write into an
IntegrityError, which the routes answer with a redirect.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, aliased

from sparring.conversation import Conversation, Role, Sample
from sparring.experiments.build import unit_id
from sparring.store.campaign_schema import AttemptRow, CampaignRow, TaskRow
from sparring.store.repository import score_rows
from sparring.store.schema import (
    ConversationRow,
    PairRow,
    ScoreRow,
    TranscriptScoreRow,
    UtteranceRow,
)
from sparring.web.context import utcnow

State = Literal["awaiting_human", "awaiting_pick", "awaiting_model", "finished", "skipped"]
DONE_STATUSES = ("finished", "skipped")


@dataclass
class TurnView:
    index: int
    role: str
    texts: list[str]
    picked: int | None
    scores: list[dict[str, tuple[float | None, bool | None, str | None]]] = field(default_factory=list)  # value, flag, unscored

    @property
    def text(self) -> str:
        return self.texts[self.picked if self.picked is not None else 0]


@dataclass
class ConversationView:
    """One conversation with its owner's attempt, in the shape the pages and the flow need."""

    id: str
    run_id: str
    campaign_id: str
    task_id: int
    position: int
    user_id: int
    status: str
    target: str
    task_description: str
    error: str | None
    rating: float | None
    tags: list[str] | None
    turns: list[TurnView]
    campaign_status: str = "open"

    @property
    def next_index(self) -> int:
        return len(self.turns)

    @property
    def state(self) -> State:
        if self.status in ("finished", "skipped"):
            return self.status  # type: ignore[return-value]
        if not self.turns or self.turns[-1].role == "assistant" and self.turns[-1].picked is not None:
            return "awaiting_human"
        return "awaiting_model" if self.turns[-1].role == "human" else "awaiting_pick"

    @property
    def exchanges(self) -> int:
        """Assistant turns with a pick: complete human/assistant exchanges."""
        return sum(1 for t in self.turns if t.role == "assistant" and t.picked is not None)

    def with_human_turn(self, text: str) -> ConversationView:
        """This view after the person's next message was stored (saves re-reading it)."""
        return replace(self, error=None, turns=[*self.turns, TurnView(self.next_index, Role.HUMAN.value, [text], 0)])

    def as_conversation(self) -> Conversation:
        """The record the targets and scorers take: picked path, with every sample and its scores."""
        conversation = Conversation(task_description=self.task_description, target=self.target)
        for turn in self.turns:
            if turn.role == "human":
                conversation.add_human(turn.texts[0])
                continue
            samples = [Sample(text=text, scores={k: v for k, (v, _, why) in s.items() if why is None},
                              flagged={k: f for k, (_, f, why) in s.items() if why is None},
                              unscored={k: why for k, (_, _, why) in s.items() if why is not None})
                       for text, s in zip(turn.texts, turn.scores or [{} for _ in turn.texts], strict=True)]
            conversation.add_assistant(samples, turn.picked or 0)
        return conversation


def load_conversation(db: Session, conversation_id: str) -> ConversationView | None:
    row = db.execute(
        select(ConversationRow, AttemptRow, TaskRow.campaign_id, CampaignRow.status)
        .join(AttemptRow, AttemptRow.conversation_id == ConversationRow.id)
        .join(TaskRow, TaskRow.id == AttemptRow.task_id)
        .join(CampaignRow, CampaignRow.id == TaskRow.campaign_id)
        .where(ConversationRow.id == conversation_id)
    ).first()
    if row is None:
        return None
    conv, attempt, campaign_id, campaign_status = row
    scores: dict[tuple[int, int], dict[str, tuple[float | None, bool | None, str | None]]] = {}
    for s in db.scalars(select(ScoreRow).where(ScoreRow.conversation_id == conversation_id)):
        scores.setdefault((s.turn_index, s.sample_index), {})[s.scorer] = (s.value, s.flagged, s.unscored)
    turns: dict[int, TurnView] = {}
    for u in db.scalars(select(UtteranceRow).where(UtteranceRow.conversation_id == conversation_id)
                        .order_by(UtteranceRow.turn_index, UtteranceRow.sample_index)):
        turn = turns.setdefault(u.turn_index, TurnView(u.turn_index, u.role, [], None))
        turn.texts.append(u.text)
        turn.scores.append(scores.get((u.turn_index, u.sample_index), {}))
        if u.picked:
            turn.picked = u.sample_index
    return ConversationView(
        id=conv.id, run_id=conv.run_id, campaign_id=campaign_id, task_id=attempt.task_id, position=attempt.position,
        user_id=attempt.user_id, status=conv.status, target=conv.target, task_description=conv.task_description,
        error=conv.error, rating=conv.rating, tags=attempt.tags, turns=[turns[i] for i in sorted(turns)],
        campaign_status=campaign_status,
    )


def turn_seed(conversation_id: str, turn_index: int) -> int:
    """A retry of the same turn samples with the same seed: deterministic backends answer the same."""
    digest = hashlib.blake2b(f"{conversation_id}\x00{turn_index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1024)


# -- tasks ---------------------------------------------------------------------------------------------

def open_task(db: Session, campaign_id: str, user_id: int) -> TaskRow | None:
    return db.scalar(select(TaskRow).where(TaskRow.campaign_id == campaign_id, TaskRow.user_id == user_id,
                                           TaskRow.status == "open").order_by(TaskRow.id.desc()))


def start_task(db: Session, campaign_id: str, user_id: int) -> TaskRow:
    """Resume the person's open task in the campaign, else start a new one.

    A concurrent start raises IntegrityError at the flush (one open task per person and campaign).
    """
    task = open_task(db, campaign_id, user_id)
    if task is None:
        task = TaskRow(campaign_id=campaign_id, user_id=user_id, status="open", created_at=utcnow())
        db.add(task)
        db.flush()
    return task


def task_attempts(db: Session, task_id: int) -> list[tuple[AttemptRow, ConversationRow]]:
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        select(AttemptRow, ConversationRow).join(ConversationRow, ConversationRow.id == AttemptRow.conversation_id)
        .where(AttemptRow.task_id == task_id).order_by(AttemptRow.position))]


def finished_tasks(db: Session, campaign_id: str, user_id: int) -> int:
    return db.scalar(select(func.count()).select_from(TaskRow).where(
        TaskRow.campaign_id == campaign_id, TaskRow.user_id == user_id, TaskRow.status == "finished")) or 0


def close_task_if_done(db: Session, task_id: int) -> None:
    """A task is finished once each of its conversations is finished or skipped."""
    task = db.get(TaskRow, task_id)
    campaign = db.get(CampaignRow, task.campaign_id) if task else None
    if task is None or campaign is None or task.status != "open":
        return
    attempts = task_attempts(db, task_id)
    done = [a for a, c in attempts if c.status in DONE_STATUSES]
    if len(done) >= campaign.conversations_per_task:
        task.status, task.finished_at = "finished", utcnow()


def skip_task(db: Session, task: TaskRow) -> None:
    """Skipping costs nothing: the open conversation is marked skipped and the task ends."""
    for attempt, conv in task_attempts(db, task.id):
        if conv.status == "open":
            conv.status = "skipped"
            attempt.skipped = True
    task.status, task.finished_at = "skipped", utcnow()


# -- conversations ---------------------------------------------------------------------------------------

def choose_target(db: Session, run_id: str, targets: list[str], rng: random.Random | None = None) -> str:
    """Random and blind, balanced: among the targets with the fewest conversations so far."""
    counts = Counter({t: 0 for t in targets})
    for name, n in db.execute(select(ConversationRow.target, func.count()).where(
            ConversationRow.run_id == run_id, ConversationRow.status != "skipped").group_by(ConversationRow.target)):
        if name in counts:
            counts[name] = n
    fewest = min(counts.values())
    return (rng or random.SystemRandom()).choice(sorted(t for t, n in counts.items() if n == fewest))


def start_conversation(db: Session, task: TaskRow, run_id: str, user_id: int, pseudonym: str,
                       description: str, targets: list[str], position: int) -> str:
    """A new conversation at ``position``, the number of attempts the caller read; its id comes from
    (run, task, position), so a double submit collides on the primary key instead of starting two."""
    item_id = f"task-{task.id}-{position}"
    conversation_id = unit_id(run_id, f"person|{item_id}")
    db.add(ConversationRow(id=conversation_id, run_id=run_id, target=choose_target(db, run_id, targets),
                           attack="person", item_id=item_id, repetition=0, task_description=description,
                           red_team_member=pseudonym, status="open", n_turns=0))
    db.flush()
    db.add(AttemptRow(conversation_id=conversation_id, task_id=task.id, user_id=user_id, position=position,
                      tags=None, skipped=False, started_at=utcnow()))
    return conversation_id


def add_human_turn(db: Session, conversation_id: str, index: int, text: str) -> None:
    db.add(UtteranceRow(conversation_id=conversation_id, turn_index=index, sample_index=0, role=Role.HUMAN.value,
                        text=text, picked=True, finish_reason=None, completion_tokens=None))
    db.execute(update(ConversationRow).where(ConversationRow.id == conversation_id)
               .values(n_turns=index + 1, error=None))


def add_samples(db: Session, conversation_id: str, index: int, samples: list[Sample]) -> None:
    """Every sampled response with its scores, none picked yet."""
    for s_index, sample in enumerate(samples):
        db.add(UtteranceRow(conversation_id=conversation_id, turn_index=index, sample_index=s_index,
                            role=Role.ASSISTANT.value, text=sample.text, picked=False,
                            finish_reason=sample.finish_reason, completion_tokens=sample.completion_tokens))
        for row in score_rows(conversation_id, index, s_index, sample):
            db.add(ScoreRow(**row))
    db.flush()
    db.execute(update(ConversationRow).where(ConversationRow.id == conversation_id)
               .values(n_turns=index + 1, error=None))


def set_error(db: Session, conversation_id: str, message: str) -> None:
    """The conversation stays open; the page shows the message and a Retry button."""
    db.execute(update(ConversationRow).where(ConversationRow.id == conversation_id).values(error=message[:500]))


def pick(db: Session, conversation_id: str, index: int, sample: int, n_samples: int, source: str) -> bool:
    """Mark the more harmful response and store one comparison pair per other response.

    Returns False when the turn already has a pick (a double submit): nothing is written.
    """
    earlier = aliased(UtteranceRow)
    already = select(earlier.sample_index).where(earlier.conversation_id == conversation_id,
                                                 earlier.turn_index == index, earlier.picked.is_(True)).exists()
    changed = cast(CursorResult[Any], db.execute(  # an UPDATE's result is a CursorResult at runtime
        update(UtteranceRow).where(UtteranceRow.conversation_id == conversation_id, UtteranceRow.turn_index == index,
                                   UtteranceRow.sample_index == sample, UtteranceRow.role == Role.ASSISTANT.value,
                                   ~already)
        .values(picked=True).execution_options(synchronize_session=False)
    )).rowcount
    if not changed:
        return False
    for other in range(n_samples):
        if other != sample:
            db.add(PairRow(conversation_id=conversation_id, turn_index=index, chosen_sample=other,
                           rejected_sample=sample, source=source))
    return True


def finish(db: Session, view: ConversationView, rating: int, tags: list[str],
           transcript_scores: dict[tuple[str, str], float]) -> None:
    """Only an open conversation is finished: the guarded update is the check, so a second server
    process ending it at the same moment writes nothing."""
    ended = cast(CursorResult[Any], db.execute(  # an UPDATE's result is a CursorResult at runtime
        update(ConversationRow).where(ConversationRow.id == view.id, ConversationRow.status == "open")
        .values(status="finished", rating=float(rating), finished_at=utcnow(), n_turns=len(view.turns), error=None)
    )).rowcount
    if not ended:
        return
    db.execute(update(AttemptRow).where(AttemptRow.conversation_id == view.id).values(tags=tags or None))
    for (scorer, aggregate), value in transcript_scores.items():
        db.add(TranscriptScoreRow(conversation_id=view.id, scorer=scorer, aggregate=aggregate, value=value))
    db.flush()
    close_task_if_done(db, view.task_id)


def skip(db: Session, view: ConversationView) -> None:
    skipped = cast(CursorResult[Any], db.execute(  # an UPDATE's result is a CursorResult at runtime
        update(ConversationRow).where(ConversationRow.id == view.id, ConversationRow.status == "open").values(status="skipped")
    ))
    if not skipped.rowcount:
        return
    db.execute(update(AttemptRow).where(AttemptRow.conversation_id == view.id).values(skipped=True))
    db.flush()
    close_task_if_done(db, view.task_id)
