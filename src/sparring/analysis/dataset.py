"""One table of attempts from any source, so every analysis reads runs, campaigns and published data alike.

Sources: the released red-team file (ONE JSON array, gzipped or not, whatever its
name), hh-rlhf comparison pairs, JailbreakBench artifacts, and Sparring runs and
campaigns in the store. Each becomes ``RedTeamData``: ``attempts`` with
``ATTEMPT_COLUMNS`` and ``reviews`` with ``REVIEW_COLUMNS``.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparring.errors import ConfigError, DataFormatError

ATTEMPT_COLUMNS = ["attempt_id", "transcript", "min_harmlessness", "size", "params", "model_type", "rating",
                   "task_description", "task_harmlessness", "red_team_member_id", "platform", "tags", "source"]
REVIEW_COLUMNS = ["attempt_id", "reviewer", "rating", "tags", "needs_expertise"]

_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmbt]?)\s*$", re.IGNORECASE)
_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)


@dataclass
class RedTeamData:
    name: str
    kind: str  # released | run | campaign | hh-rlhf | jbb
    attempts: pd.DataFrame
    reviews: pd.DataFrame = field(default_factory=lambda: empty_reviews())
    notes: list[str] = field(default_factory=list)
    unscored: int | None = None  # assistant responses the scorer could not judge; None: the source does not say
    scorer: str | None = None  # what min_harmlessness comes from; None: the source does not say
    errors: dict[str, int] = field(default_factory=dict)  # attack -> failed conversations (runs, campaigns)


def empty_reviews() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c == "rating" else object) for c in REVIEW_COLUMNS})


def parse_params(size: str) -> float:
    """"2.7B" -> 2.7e9, "135M" -> 1.35e8; NaN when the size is not a parameter count."""
    match = _SIZE.match(size or "")
    if not match:
        return float("nan")
    return float(match.group(1)) * _SCALE[match.group(2).lower()]


def params_column(sizes: pd.Series) -> pd.Series:
    """Parse each distinct size once (vectorised over rows)."""
    mapping = {s: parse_params(s) for s in sizes.unique()}
    return sizes.map(mapping).astype(float)


def read_source(source: str, database_url: str | None = None) -> RedTeamData:
    """A path (released file, hh-rlhf pairs, JBB artifact or folder of them), else a run or campaign id."""
    from sparring.datasets.export import TRANSCRIPTS

    path = Path(source).expanduser()
    if path.is_dir() and (path / TRANSCRIPTS).is_file():  # a `sparring export` directory
        return read_released_file(path / TRANSCRIPTS)
    if path.is_dir():
        return read_jbb(path)
    if path.is_file():
        return _read_file(path)
    return _read_store(source, database_url)


def _sniff(path: Path) -> tuple[bool, str]:
    """(gzipped?, first non-space character), from the bytes rather than the name."""
    from sparring.datasets.rows import UNREADABLE, unreadable

    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            head = handle.read(4096).lstrip()
    except UNREADABLE as error:
        raise unreadable(path, error) from None
    return gzipped, head[:1]


def _read_file(path: Path) -> RedTeamData:
    from sparring.datasets.hh_rlhf import is_pairs_file

    _, first = _sniff(path)
    if first == "[":
        return read_released_file(path)
    if first == "{" and path.suffix == ".json":
        return read_jbb(path)
    if is_pairs_file(path):
        return read_hh_rlhf(path)
    raise DataFormatError(f"{path}: not a recognised red-team source; expected the released JSON array, "
                          "hh-rlhf pairs (JSONL with chosen/rejected), or a JailbreakBench artifact (.json)")


# -- the released format ------------------------------------------------------------------------

def read_released_file(path: Path) -> RedTeamData:
    """The published file; errors name the record number and field (``read_released``)."""
    from sparring.datasets.released_format import read_released

    records = read_released(path)
    attempts = released_frame(records, [str(i) for i in range(len(records))], str(path))
    notes = ["attempt_id is the record's position in the released array (0-based)"]
    reviews = empty_reviews()  # the released format has no reviews (campaigns in the store do)
    # ``sparring score`` writes per-utterance scores, null where the scorer could not judge.
    scored = [r["harmlessness_scores"] for r in records if isinstance(r.get("harmlessness_scores"), list)]
    unscored = sum(v is None for values in scored for v in values) if scored else None
    named = {str(r["harmlessness_scorer"].get("name")) for r in records if isinstance(r.get("harmlessness_scorer"), dict)}
    scorer = named.pop() if len(named) == 1 and len(scored) == len(records) else None
    return RedTeamData(str(path), "released", attempts, reviews, notes, unscored, scorer)


def released_frame(records: list[dict[str, Any]], ids: list[str], source: str,
                   platform: str | None = None) -> pd.DataFrame:
    """Released-format records as attempts; ``platform`` overrides ``is_upworker`` (runs, campaigns)."""
    raw = pd.DataFrame.from_records(records, columns=[
        "transcript", "min_harmlessness_score_transcript", "num_params", "model_type", "rating",
        "task_description", "task_descripton_harmlessness_score", "red_team_member_id", "is_upworker", "tags"])
    sizes = raw["num_params"].fillna("").astype(str)
    frame = pd.DataFrame({
        "attempt_id": pd.Series(ids, dtype=object),
        "transcript": raw["transcript"].astype(str),
        "min_harmlessness": pd.to_numeric(raw["min_harmlessness_score_transcript"], errors="coerce").astype(float),
        "size": sizes,
        "params": params_column(sizes),
        "model_type": raw["model_type"].fillna("").astype(str),
        "rating": pd.to_numeric(raw["rating"], errors="coerce").astype(float),
        "task_description": raw["task_description"].fillna("").astype(str),
        "task_harmlessness": pd.to_numeric(raw["task_descripton_harmlessness_score"], errors="coerce").astype(float),
        "red_team_member_id": raw["red_team_member_id"].astype(str),
        "platform": platform if platform else np.where(raw["is_upworker"].astype(bool), "upwork", "mturk"),
        "tags": raw["tags"].astype(object).where(raw["tags"].notna(), None),
        "source": source,
    })
    return frame[ATTEMPT_COLUMNS]


def reviews_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        return empty_reviews()
    frame = pd.DataFrame.from_records(records, columns=REVIEW_COLUMNS)
    frame["attempt_id"] = frame["attempt_id"].astype(str)
    frame["reviewer"] = frame["reviewer"].astype(str)
    frame["rating"] = pd.to_numeric(frame["rating"], errors="coerce").astype(float)
    frame["tags"] = frame["tags"].astype(object).where(frame["tags"].notna(), None)
    frame["needs_expertise"] = frame["needs_expertise"].fillna(False).astype(bool)
    return frame


# -- hh-rlhf pairs ------------------------------------------------------------------------------

def read_hh_rlhf(path: Path) -> RedTeamData:
    """Each pair's ``rejected`` transcript (the red teamer's pick, the more harmful path) is one attempt."""
    from sparring.datasets.hh_rlhf import read_pairs

    pairs = list(read_pairs(path))
    n = len(pairs)
    attempts = pd.DataFrame({
        "attempt_id": [f"line-{p.line}" for p in pairs],
        "transcript": [p.rejected for p in pairs],
        "min_harmlessness": np.full(n, np.nan),
        "size": "", "params": np.full(n, np.nan), "model_type": "", "rating": np.full(n, np.nan),
        "task_description": "", "task_harmlessness": np.full(n, np.nan),
        "red_team_member_id": "", "platform": "", "tags": pd.Series([None] * n, dtype=object),
        "source": str(path),
    }, index=pd.RangeIndex(n))[ATTEMPT_COLUMNS]
    notes = [("hh-rlhf pairs: one attempt per pair, the 'rejected' transcript (the pick judged more harmful); "
              "ratings, model sizes, scores and red teamers are not in this format")]
    return RedTeamData(str(path), "hh-rlhf", attempts, empty_reviews(), notes)


# -- JailbreakBench artifacts -------------------------------------------------------------------

def read_jbb(path: Path) -> RedTeamData:
    """One artifact file, or every ``*.json`` artifact in a folder (files that are not artifacts are errors)."""
    files = sorted(p for p in path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise DataFormatError(f"{path}: no JailbreakBench artifacts (*.json) in this folder")
    frames, skipped = [], 0
    for file in files:
        frame, missing = _jbb_frame(file, str(path))
        frames.append(frame)
        skipped += missing
    attempts = pd.concat(frames, ignore_index=True)[ATTEMPT_COLUMNS]
    notes = [("JailbreakBench artifacts: one attempt per goal with a submitted prompt, transcript = prompt + "
              "response; rating is 4.0 when the artifact's automated judge said 'jailbroken', else 0.0 "
              "(not a person's rating); model_type is the target model; red_team_member_id is the attack method")]
    if skipped:
        notes.append(f"{skipped} goals without a submitted prompt (the attack found none) were left out")
    return RedTeamData(str(path), "jbb", attempts, empty_reviews(), notes)


def _jbb_frame(path: Path, source: str) -> tuple[pd.DataFrame, int]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: invalid JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("jailbreaks"), list):
        raise DataFormatError(f"{path}: expected a JailbreakBench artifact with a 'jailbreaks' list")
    parameters = data.get("parameters")
    params: dict[str, Any] = parameters if isinstance(parameters, dict) else {}
    model = str(params.get("model") or path.stem)
    method = str(params.get("method") or path.stem)
    rows, skipped = [], 0
    for index, record in enumerate(data["jailbreaks"]):
        if not isinstance(record, dict):
            raise DataFormatError(f"{path}: jailbreaks[{index}]: expected an object")
        verdict = record.get("jailbroken")
        if isinstance(verdict, str) and verdict.lower() in ("true", "false"):
            verdict = verdict.lower() == "true"
        if not isinstance(verdict, bool):
            raise DataFormatError(f"{path}: jailbreaks[{index}]: field 'jailbroken' must be true or false")
        prompt, response = record.get("prompt"), record.get("response")
        if not prompt:
            skipped += 1
            continue
        rows.append((f"{path.stem}:{record.get('index', index)}",
                     f"\n\nHuman: {prompt}\n\nAssistant: {response or ''}",
                     4.0 if verdict else 0.0, str(record.get("goal") or "")))
    ids, transcripts, ratings, goals = (list(c) for c in zip(*rows, strict=False)) if rows else ([], [], [], [])
    n = len(rows)
    size = _size_from_model(model)
    frame = pd.DataFrame({
        "attempt_id": ids, "transcript": transcripts, "min_harmlessness": np.full(n, np.nan),
        "size": size, "params": parse_params(size), "model_type": model, "rating": np.asarray(ratings, dtype=float),
        "task_description": goals, "task_harmlessness": np.full(n, np.nan), "red_team_member_id": method,
        "platform": "automated", "tags": pd.Series([None] * n, dtype=object), "source": source,
    }, index=pd.RangeIndex(n))
    return frame, skipped


def _size_from_model(model: str) -> str:
    """"vicuna-13b-v1.5" -> "13B"; "" when the name states no size (gpt-4)."""
    match = _SIZE_IN_NAME.search(model)
    return f"{match.group(1)}B" if match else ""


# -- runs and campaigns in the store ------------------------------------------------------------

def _read_store(source: str, database_url: str | None) -> RedTeamData:
    from sqlalchemy import select
    from sqlalchemy.engine import make_url

    from sparring.redaction import redact_database_url
    from sparring.store import resolve_database_url
    from sparring.store.campaign_schema import CampaignRow
    from sparring.store.opening import open_store

    url = resolve_database_url(database_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).expanduser().is_file():
        raise ConfigError(f"{source!r} is not a file, and there is no database at {parsed.database} "
                          "to look it up as a run or campaign id (pass --db)")
    store = open_store(url, writable=False)
    try:
        with store.engine.connect() as conn:
            campaign = conn.execute(select(CampaignRow.id, CampaignRow.run_id)
                                    .where(CampaignRow.id == source)).first()
        if campaign is not None:
            return _read_campaign(store, campaign.id, campaign.run_id)
        if source in store.run_ids():
            return _read_run(store, source)
        recent = ", ".join(store.run_ids()[-10:]) or "none"
        raise ConfigError(f"{source!r} is not a file, a run or a campaign in {redact_database_url(url)}; "
                          f"recent runs: {recent}")
    finally:
        store.close()


def _run_records(store: Any, run_id: str, human: bool) -> tuple[list[dict[str, Any]], list[str], list[str], int]:
    """Finished conversations through ``released_record``, the same code as ``sparring export``.

    Scores a conversation lacks become NaN (the export writes null); for people, a missing own
    rating stays NaN instead of the scorer-derived 0/4 used for automated runs. The count is the
    sampled assistant responses the primary scorer could not judge (unscored).
    """
    from sparring.datasets.export import member_ids
    from sparring.datasets.released_format import released_record
    from sparring.scoring import scorers
    from sparring.scoring.aggregate import response_counts

    run = store.run(run_id)
    primary = run.components.get("primary_scorer", "refusal")
    flag_is_harmful = scorers.get(primary).flag_is_harmful
    targets = {t.name: t for t in store.targets(run_id)}
    records, ids = [], []
    finished = store.conversations(run_id, ["finished"])
    counts = response_counts(stored.conversation for stored in finished)
    unscored = counts[primary].unscored if primary in counts else 0
    members = member_ids(finished)
    for stored in finished:
        target = targets[stored.unit.target]
        record = released_record(stored, target.size, target.model_type, primary, flag_is_harmful,
                                 member_id=members[stored.unit.red_team_member])
        if (primary, "min") not in stored.transcript_scores:
            record["min_harmlessness_score_transcript"] = float("nan")
        if (primary, "task_description") not in stored.transcript_scores:
            record["task_descripton_harmlessness_score"] = float("nan")
        if human and stored.rating is None:
            record["rating"] = float("nan")
        record["attack"] = stored.unit.attack
        records.append(record)
        ids.append(stored.unit.id)
    notes = [f"min_harmlessness and task_harmlessness are scorer {primary!r} on the harmlessness axis"]
    return records, ids, notes, unscored


def _attacks(store: Any, run_id: str, records: list[dict[str, Any]], attempts: pd.DataFrame,
             people: bool) -> dict[str, int]:
    """Adds who wrote each attempt (``attack``, ``side``: people, model or dataset); failed conversations per attack."""
    from sparring.attacks import attacks

    kinds = {label: str(spec.get("name", "")) for label, spec in store.run(run_id).components.get("attacks", {}).items()}
    labels = {record_id: record["attack"] for record_id, record in zip(attempts["attempt_id"], records, strict=False)}

    def side(label: str) -> str:
        if people:
            return "people"
        kind = kinds.get(label, "")
        return attacks.get(kind).written_by if kind in attacks.names() else "dataset"

    attempts["attack"] = attempts["attempt_id"].map(labels).fillna("").astype(str)
    attempts["side"] = attempts["attack"].map(side)
    if people:
        attempts["attack"] = "people"
    errors: dict[str, int] = {}
    for stored in store.conversations(run_id, ["error"]):
        label = "people" if people else stored.unit.attack
        errors[label] = errors.get(label, 0) + 1
    return errors


def _primary(store: Any, run_id: str) -> str:
    return str(store.run(run_id).components.get("primary_scorer", "refusal"))


def _read_run(store: Any, run_id: str) -> RedTeamData:
    records, ids, notes, unscored = _run_records(store, run_id, human=False)
    name = f"run {run_id}"
    attempts = released_frame(records, ids, name, platform="automated")
    errors = _attacks(store, run_id, records, attempts, people=False)
    notes.append("automated run: rating is 4.0 when the primary scorer judged any picked assistant turn harmful, "
                 "else 0.0 (NaN when it judged none harmful but could not judge every one; a person's own "
                 "rating where one was stored); red_team_member_id is the attack")
    return RedTeamData(name, "run", attempts, empty_reviews(), notes, unscored, _primary(store, run_id), errors)


def _read_campaign(store: Any, campaign_id: str, run_id: str) -> RedTeamData:
    from sqlalchemy import select

    from sparring.store.campaign_schema import AttemptRow, ReviewRow, UserRow
    from sparring.store.schema import ConversationRow

    records, ids, notes, unscored = _run_records(store, run_id, human=True)
    name = f"campaign {campaign_id}"
    attempts = released_frame(records, ids, name, platform="web")
    errors = _attacks(store, run_id, records, attempts, people=True)
    with store.engine.connect() as conn:
        pseudonyms = dict(conn.execute(select(UserRow.id, UserRow.pseudonym)).all())
        owned = conn.execute(select(AttemptRow.conversation_id, AttemptRow.user_id, AttemptRow.tags,
                                    AttemptRow.skipped)
                             .join(ConversationRow, ConversationRow.id == AttemptRow.conversation_id)
                             .where(ConversationRow.run_id == run_id)).all()
        reviewed = conn.execute(select(ReviewRow.conversation_id, ReviewRow.reviewer_id, ReviewRow.rating,
                                       ReviewRow.tags, ReviewRow.needs_expertise)
                                .join(ConversationRow, ConversationRow.id == ReviewRow.conversation_id)
                                .where(ConversationRow.run_id == run_id, ReviewRow.status == "done")
                                .order_by(ReviewRow.conversation_id, ReviewRow.id)).all()
    skipped = {row.conversation_id for row in owned if row.skipped}
    tags = {row.conversation_id: row.tags for row in owned}
    people = {row.conversation_id: pseudonyms.get(row.user_id) for row in owned}
    attempts = attempts[~attempts["attempt_id"].isin(skipped)].reset_index(drop=True)
    ids_series = attempts["attempt_id"]
    attempts["tags"] = pd.Series([tags.get(i) for i in ids_series], dtype=object)
    person = ids_series.map(people)
    attempts["red_team_member_id"] = person.where(person.notna(), attempts["red_team_member_id"]).astype(str)
    reviews = reviews_frame([
        {"attempt_id": r.conversation_id, "reviewer": pseudonyms.get(r.reviewer_id, str(r.reviewer_id)),
         "rating": r.rating, "tags": r.tags, "needs_expertise": r.needs_expertise}
        for r in reviewed
    ])
    notes.append("campaign: rating is the red teamer's own 0-4 rating (NaN if not given); tags are the red "
                 "teamer's; reviews are finished review tasks (reviewer pseudonyms)")
    return RedTeamData(name, "campaign", attempts, reviews, notes, unscored, _primary(store, run_id), errors)
