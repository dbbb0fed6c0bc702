"""What a release is made of: records in the released format, their comparison pairs, and how they were collected.

Any source ``sparring report`` reads can be released (``analysis.dataset.read_source``):
a released-format file, hh-rlhf pairs, JailbreakBench artifacts, a run or a campaign
(a campaign's run id counts as the campaign). Each attempt becomes one released
record; its pairs stay attached to it, so one scrub mapping covers both. For
campaigns the collection facts come from the campaign row and well-being surveys
(aggregates only), and every account name and store pseudonym is collected so the
scrubber can remove them wherever a person typed them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.analysis.dataset import RedTeamData, read_source
from sparring.errors import ConfigError

WELLBEING_MIN_PEOPLE = 5  # survey means are published only when at least this many people answered


@dataclass(frozen=True)
class Wellbeing:
    surveys: int
    people: int
    means: dict[str, float] | None  # mean per feeling of each person's mean; None below WELLBEING_MIN_PEOPLE


@dataclass(frozen=True)
class CampaignFacts:
    """How a campaign collected its data: what the datasheet's collection-process section reports."""

    name: str
    instructions: str
    content_warning: str
    topics: list[str]
    conversations_per_task: int
    responses_per_turn: int
    suggested_turns: int
    break_minutes: int
    survey_every_tasks: int
    max_tokens: int
    status: str
    tasks: dict[str, int]
    skipped_conversations: int
    reviews_done: int
    wellbeing: Wellbeing


@dataclass(frozen=True)
class RunFacts:
    status: str
    primary_scorer: str
    targets: list[tuple[str, str]]  # (size, model type); backend specs (URLs, keys) are never published


@dataclass
class ReleaseSource:
    data: RedTeamData
    records: list[dict[str, Any]]  # released format; red_team_member_id still the raw id
    pairs: list[tuple[int | None, str, str]]  # (record index or None, chosen, rejected)
    campaign: CampaignFacts | None = None
    run: RunFacts | None = None
    identifiers: list[str] = field(default_factory=list)  # account names and store pseudonyms: never published

    @property
    def automated(self) -> bool:
        """The 'red teamers' are attacks, not people (runs and JailbreakBench artifacts)."""
        return self.data.kind in ("run", "jbb")


def load_source(source: str, database_url: str | None) -> ReleaseSource:
    path = Path(source).expanduser()
    if path.exists():
        data = read_source(source, database_url)
        return _file_source(path, data)
    from sparring.store import resolve_database_url

    url = resolve_database_url(database_url)
    source = _campaign_of_run(source, url) or source
    data = read_source(source, url)
    return _store_source(source, data, url)


def released_records(data: RedTeamData) -> list[dict[str, Any]]:
    """The attempts table back in the released format (NaN -> null, platform -> is_upworker)."""
    records = []
    for row in data.attempts.itertuples(index=False):
        tags = row.tags
        records.append({
            "transcript": row.transcript,
            "min_harmlessness_score_transcript": _number(row.min_harmlessness),
            "num_params": row.size,
            "model_type": row.model_type,
            "rating": _number(row.rating),
            "task_description": row.task_description,
            "task_descripton_harmlessness_score": _number(row.task_harmlessness),
            "red_team_member_id": row.red_team_member_id,
            "is_upworker": row.platform == "upwork",
            "tags": [str(t) for t in tags] if isinstance(tags, (list, tuple)) and tags else None,
        })
    return records


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _file_source(path: Path, data: RedTeamData) -> ReleaseSource:
    records = released_records(data)
    pairs: list[tuple[int | None, str, str]] = []
    if data.kind == "hh-rlhf":
        from sparring.datasets.hh_rlhf import read_pairs

        pairs = [(index, p.chosen, p.rejected) for index, p in enumerate(read_pairs(path))]
    return ReleaseSource(data, records, pairs)


def _campaign_of_run(run_id: str, url: str) -> str | None:
    from sqlalchemy import select

    from sparring.store.campaign_schema import CampaignRow

    store = _open(url, run_id)
    try:
        with store.engine.connect() as conn:
            if conn.execute(select(CampaignRow.id).where(CampaignRow.id == run_id)).first():
                return None
            row = conn.execute(select(CampaignRow.id).where(CampaignRow.run_id == run_id)).first()
        return None if row is None else str(row.id)
    finally:
        store.close()


def _open(url: str, source: str) -> Any:
    """The store, read-only: a release creates and upgrades nothing."""
    from sqlalchemy.engine import make_url

    from sparring.store.opening import open_store

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).expanduser().is_file():
        raise ConfigError(f"{source!r} is not a file, and there is no database at {parsed.database} to look it "
                          "up as a run or campaign id (pass --db)")
    return open_store(url, writable=False)


def _store_source(source: str, data: RedTeamData, url: str) -> ReleaseSource:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from sparring.store.campaign_schema import CampaignRow, UserRow

    store = _open(url, source)
    try:
        with Session(store.engine) as db:
            campaign = db.scalar(select(CampaignRow).where(CampaignRow.id == source))
            if campaign is not None:
                db.expunge(campaign)
            users = db.execute(select(UserRow.username, UserRow.pseudonym)).all()
        run_id = campaign.run_id if campaign is not None else source
        run = store.run(run_id)
        targets = sorted({(t.size, t.model_type) for t in store.targets(run_id)})
        index = {attempt: i for i, attempt in enumerate(data.attempts["attempt_id"])}
        pairs: list[tuple[int | None, str, str]] = []
        members: dict[int, str] = {}  # the store's own id: a person's pseudonym, or the attack's name
        for stored in store.conversations(run_id, ["finished"]):
            position = index.get(stored.unit.id)
            if position is None:
                continue  # skipped by the red teamer: not released
            members[position] = stored.unit.red_team_member
            pairs.extend((position, chosen, rejected) for chosen, rejected in stored.conversation.comparison_pairs()
                         if chosen != rejected)
        facts = _campaign_facts(store, campaign) if campaign is not None else None
    finally:
        store.close()
    pairs.sort(key=lambda p: p[0] if p[0] is not None else -1)
    identifiers = [name for row in users for name in (row.username, row.pseudonym)]
    run_facts = RunFacts(run.status, str(run.components.get("primary_scorer", "refusal")),
                         [(size, kind) for size, kind in targets])
    records = released_records(data)
    for position, member in members.items():
        records[position]["red_team_member_id"] = member
    return ReleaseSource(data, records, pairs, facts, run_facts, identifiers)


def _campaign_facts(store: Any, campaign: Any) -> CampaignFacts:
    from sqlalchemy import func, select

    from sparring.store.campaign_schema import AttemptRow, ReviewRow, TaskRow, WellbeingSurveyRow
    from sparring.store.schema import ConversationRow

    with store.engine.connect() as conn:
        tasks = dict(conn.execute(select(TaskRow.status, func.count()).where(TaskRow.campaign_id == campaign.id)
                                  .group_by(TaskRow.status)).all())
        skipped = conn.execute(select(func.count()).select_from(AttemptRow)
                               .join(TaskRow, TaskRow.id == AttemptRow.task_id)
                               .where(TaskRow.campaign_id == campaign.id, AttemptRow.skipped)).scalar_one()
        reviews = conn.execute(select(func.count()).select_from(ReviewRow)
                               .join(ConversationRow, ConversationRow.id == ReviewRow.conversation_id)
                               .where(ConversationRow.run_id == campaign.run_id, ReviewRow.status == "done")
                               ).scalar_one()
        surveys = conn.execute(select(WellbeingSurveyRow.user_id, WellbeingSurveyRow.answers)
                               .where(WellbeingSurveyRow.campaign_id == campaign.id)).all()
    return CampaignFacts(
        name=campaign.name, instructions=campaign.instructions, content_warning=campaign.content_warning,
        topics=[str(t) for t in campaign.topics or []], conversations_per_task=campaign.conversations_per_task,
        responses_per_turn=campaign.responses_per_turn, suggested_turns=campaign.suggested_turns,
        break_minutes=campaign.break_minutes, survey_every_tasks=campaign.survey_every_tasks,
        max_tokens=campaign.max_tokens, status=campaign.status, tasks={str(k): int(v) for k, v in tasks.items()},
        skipped_conversations=int(skipped), reviews_done=int(reviews), wellbeing=_wellbeing(surveys))


def _wellbeing(surveys: list[Any]) -> Wellbeing:
    """Each person's mean per feeling counts once; skipped surveys (empty answers) are not answers."""
    per_person: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    answered = 0
    for user_id, answers in surveys:
        if not answers:
            continue
        answered += 1
        for feeling, value in answers.items():
            per_person[user_id][feeling].append(float(value))
    people = len(per_person)
    if people < WELLBEING_MIN_PEOPLE:
        return Wellbeing(answered, people, None)
    feelings = sorted({f for person in per_person.values() for f in person})
    means = {}
    for feeling in feelings:
        values = [sum(v) / len(v) for person in per_person.values() if (v := person.get(feeling))]
        means[feeling] = sum(values) / len(values)
    return Wellbeing(answered, people, means)
