"""Readers: the released file as published, hh-rlhf pairs, JailbreakBench artifacts, runs and campaigns."""

import gzip
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from experiment_support import scripted_toml
from planted import PlantedEffects, write_planted_release
from sqlalchemy import insert, update

from sparring.analysis.agreement import review_agreement
from sparring.analysis.dataset import ATTEMPT_COLUMNS, REVIEW_COLUMNS, read_source
from sparring.datasets.export import export_run
from sparring.errors import ConfigError, DataFormatError
from sparring.experiments import parse_config, run_experiment
from sparring.store import Store
from sparring.store.campaign_schema import AttemptRow, CampaignRow, ReviewRow, TaskRow, UserRow
from sparring.store.schema import ConversationRow


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """A small file in the exact released format (real hh-rlhf transcripts, planted numbers)."""
    path = tmp_path_factory.mktemp("released") / "red_team_attempts.jsonl.gz"
    write_planted_release(path, PlantedEffects().scaled(600), seed=1)
    return path


def load(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def write_array(records: list[dict], path: Path, compress: bool = True) -> Path:
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            json.dump(records, handle)
    else:
        path.write_text(json.dumps(records), "utf-8")
    return path


def test_released_file_is_read_field_by_field(released: Path):
    records = load(released)
    data = read_source(str(released))
    attempts = data.attempts
    assert data.kind == "released" and list(attempts.columns) == ATTEMPT_COLUMNS and len(attempts) == len(records)
    for index in (0, 17, len(records) - 1):
        record, row = records[index], attempts.iloc[index]
        assert row["attempt_id"] == str(index)
        assert row["transcript"] == record["transcript"]
        assert row["min_harmlessness"] == record["min_harmlessness_score_transcript"]
        assert row["task_harmlessness"] == record["task_descripton_harmlessness_score"]  # the published misspelling
        assert row["size"] == record["num_params"]
        assert row["params"] == {"2.7B": 2.7e9, "13B": 13e9, "52B": 52e9}[record["num_params"]]
        assert row["rating"] == record["rating"] and isinstance(row["rating"], float)
        assert row["red_team_member_id"] == str(record["red_team_member_id"])
        assert row["platform"] == ("upwork" if record["is_upworker"] else "mturk")
        assert row["tags"] == record["tags"]
        assert row["source"] == str(released)
    tagged = [i for i, r in enumerate(records) if r["tags"] is not None]
    assert 0 < len(tagged) < len(records)
    assert attempts["tags"].notna().sum() == len(tagged)
    assert all(attempts["tags"].iloc[i] is None for i in range(len(records)) if i not in set(tagged))
    # the released format has no reviews; the planted ones beside the file are for the tests' own reader
    assert list(data.reviews.columns) == REVIEW_COLUMNS and data.reviews.empty


def test_released_array_is_recognised_whatever_the_name(released: Path, tmp_path: Path):
    records = load(released)[:20]
    plain = write_array(records, tmp_path / "attempts.json", compress=False)
    misnamed = write_array(records, tmp_path / "attempts.jsonl", compress=True)  # gzipped, name says nothing
    for path in (plain, misnamed):
        data = read_source(str(path))
        assert data.kind == "released" and len(data.attempts) == 20
        assert data.attempts["transcript"].tolist() == [r["transcript"] for r in records]
        assert data.reviews.empty and list(data.reviews.columns) == REVIEW_COLUMNS


@pytest.mark.parametrize(("index", "field", "value"), [
    (7, "rating", "4"),  # a string where the release has a float
    (3, "tags", "Theft"),  # tags are a list or null
    (11, "is_upworker", 1),
])
def test_malformed_record_names_record_and_field(released: Path, tmp_path: Path, index, field, value):
    records = load(released)
    records[index][field] = value
    path = write_array(records, tmp_path / "bad.jsonl.gz")
    with pytest.raises(DataFormatError, match=rf"record {index}: field '{field}'"):
        read_source(str(path))


def test_correctly_spelled_key_is_a_missing_field(released: Path, tmp_path: Path):
    records = load(released)
    records[5]["task_description_harmlessness_score"] = records[5].pop("task_descripton_harmlessness_score")
    path = write_array(records, tmp_path / "respelled.jsonl.gz")
    with pytest.raises(DataFormatError, match=r"record 5: missing field 'task_descripton_harmlessness_score'"):
        read_source(str(path))


def test_hh_rlhf_pairs_are_attempts(shared_data: Path):
    path = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    data = read_source(str(path))
    assert data.kind == "hh-rlhf" and len(data.attempts) == len(rows) == 2312
    assert data.attempts["transcript"].tolist() == [r["rejected"] for r in rows]  # the more harmful pick
    assert data.attempts["attempt_id"].iloc[0] == "line-1"
    assert data.attempts["rating"].isna().all() and data.attempts["params"].isna().all()
    assert any("rejected" in note for note in data.notes)


def test_jailbreakbench_artifacts(shared_data: Path):
    folder = shared_data / "jbb-artifacts"
    files = sorted(folder.glob("*.json"))
    if not files:
        pytest.skip("no JailbreakBench artifacts")
    expected = []
    for file in files:
        artifact = json.loads(file.read_text("utf-8"))
        for record in artifact["jailbreaks"]:
            if record["prompt"]:
                expected.append((artifact["parameters"]["method"], artifact["parameters"]["model"],
                                 record["jailbroken"] is True or record["jailbroken"] == "True", record["goal"]))
    data = read_source(str(folder))
    attempts = data.attempts
    assert data.kind == "jbb" and len(attempts) == len(expected)
    assert attempts["red_team_member_id"].tolist() == [e[0] for e in expected]
    assert attempts["model_type"].tolist() == [e[1] for e in expected]
    assert attempts["rating"].tolist() == [4.0 if e[2] else 0.0 for e in expected]
    assert attempts["task_description"].tolist() == [e[3] for e in expected]
    assert (attempts["platform"] == "automated").all()
    assert attempts["transcript"].str.startswith("\n\nHuman: ").all()
    assert attempts["transcript"].str.contains("\n\nAssistant: ").all()
    vicuna = attempts[attempts["model_type"] == "vicuna-13b-v1.5"]
    assert (vicuna["size"] == "13B").all() and (vicuna["params"] == 13e9).all()
    assert (attempts.loc[attempts["model_type"].str.startswith("gpt"), "size"] == "").all()
    assert any("jailbroken" in note for note in data.notes)

    single = read_source(str(files[0]))
    assert len(single.attempts) == sum(1 for e in expected if e[0] == single.attempts["red_team_member_id"].iloc[0]
                                       and e[1] == single.attempts["model_type"].iloc[0])


def test_run_is_read_through_the_export_code(tmp_path: Path, sqlite_url: str):
    text = scripted_toml(limit=4)
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    export_run(store, outcome.run_id, tmp_path / "out")
    exported = {r["transcript"]: r for r in load(tmp_path / "out" / "red_team_attempts.jsonl.gz")}
    store.close()

    data = read_source(outcome.run_id, database_url=sqlite_url)
    attempts = data.attempts
    assert data.kind == "run" and data.name == f"run {outcome.run_id}" and len(attempts) == outcome.finished
    assert (attempts["platform"] == "automated").all() and (attempts["params"] == 1e6).all()
    for _, row in attempts.iterrows():
        record = exported[row["transcript"]]
        assert row["rating"] == record["rating"] and row["model_type"] == record["model_type"]
        assert row["min_harmlessness"] == record["min_harmlessness_score_transcript"]
        assert row["red_team_member_id"] == str(record["red_team_member_id"]) == "0"
    assert any("4.0 when the primary scorer" in note for note in data.notes)


def test_campaign_brings_tags_ratings_and_reviews(sqlite_url: str):
    text = scripted_toml(limit=3)
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    conversations = [c.unit.id for c in store.conversations(outcome.run_id, ["finished"])]
    assert len(conversations) == 6
    at = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(UserRow), [
            {"id": i, "username": f"user{i}", "password_hash": "-", "role": role, "pseudonym": f"pseudo-{i}",
             "active": True, "created_at": at}
            for i, role in ((1, "red_teamer"), (2, "red_teamer"), (3, "reviewer"), (4, "reviewer"))])
        conn.execute(insert(CampaignRow).values(id="spring", run_id=outcome.run_id, name="Spring", instructions="",
                                                content_warning="", topics=[], status="open", created_at=at))
        conn.execute(insert(TaskRow), [{"id": 1, "campaign_id": "spring", "user_id": 1, "status": "finished",
                                        "created_at": at},
                                       {"id": 2, "campaign_id": "spring", "user_id": 2, "status": "open",
                                        "created_at": at}])
        owners = [1, 1, 1, 2, 2, 2]
        tags = [["Theft"], None, ["Weapons", "Theft"], None, ["Theft"], None]
        conn.execute(insert(AttemptRow), [
            {"conversation_id": cid, "task_id": owner, "user_id": owner, "position": i, "tags": tag,
             "skipped": i == 5, "started_at": at}
            for i, (cid, owner, tag) in enumerate(zip(conversations, owners, tags, strict=False))])
        for cid, rating in zip(conversations[:4], (4.0, 0.0, 3.0, 1.0), strict=False):  # conversation 4 has no own rating
            conn.execute(update(ConversationRow).where(ConversationRow.id == cid).values(rating=rating))
        conn.execute(insert(ReviewRow), [
            {"conversation_id": cid, "reviewer_id": reviewer, "status": status, "rating": rating, "tags": None,
             "needs_expertise": expertise, "created_at": at}
            for cid, reviewer, status, rating, expertise in [
                (conversations[0], 3, "done", 4.0, False), (conversations[0], 4, "done", 3.0, True),
                (conversations[1], 3, "done", 0.0, False), (conversations[1], 4, "done", 0.0, False),
                (conversations[2], 3, "done", 1.0, False), (conversations[2], 4, "assigned", None, False)]])
    store.close()

    data = read_source("spring", database_url=sqlite_url)
    attempts = data.attempts.set_index("attempt_id")
    assert data.kind == "campaign" and data.name == "campaign spring"
    assert list(attempts.index) == conversations[:5]  # the skipped attempt is left out
    assert (attempts["platform"] == "web").all()
    assert attempts["red_team_member_id"].tolist() == ["pseudo-1"] * 3 + ["pseudo-2"] * 2
    assert attempts["tags"].tolist() == tags[:5]
    assert attempts["rating"].iloc[:4].tolist() == [4.0, 0.0, 3.0, 1.0]
    assert math.isnan(attempts["rating"].iloc[4])  # no own rating: unknown, not a scorer's 0/4

    reviews = data.reviews
    assert list(reviews.columns) == REVIEW_COLUMNS and len(reviews) == 5  # the assigned review is not done
    assert set(reviews["reviewer"]) == {"pseudo-3", "pseudo-4"}
    first = reviews[reviews["attempt_id"] == conversations[0]]
    assert sorted(first["rating"]) == [3.0, 4.0] and first["needs_expertise"].sum() == 1
    agreement = review_agreement(reviews, data.attempts)
    assert (agreement.n_items, agreement.raters_per_item, agreement.n_needs_expertise) == (2, 2, 1)
    assert agreement.kappa_binary == pytest.approx(1.0)

    # show's per-attack success: a person's own rating where there is one (3-4 succeeds), else the judge's flag
    from sparring.datasets.released_format import automated_rating
    from sparring.experiments.summary import summarize

    store = Store(sqlite_url)
    [attack] = summarize(store, outcome.run_id).attacks
    unrated = [c for c in store.conversations(outcome.run_id, ["finished"]) if c.rating is None]
    store.close()
    expected = [1.0, 0.0, 1.0, 0.0] + [float(automated_rating(c, "refusal", False) == 4.0) for c in unrated]
    assert sorted(attack.judged) == sorted(expected)


def test_unknown_source_is_a_clear_error(tmp_path: Path, sqlite_url: str):
    with pytest.raises(ConfigError, match="no database"):
        read_source("no-such-run", database_url=f"sqlite:///{tmp_path / 'absent.db'}")
    Store(sqlite_url).close()
    with pytest.raises(ConfigError, match="not a file, a run or a campaign"):
        read_source("no-such-run", database_url=sqlite_url)
    stray = tmp_path / "notes.txt"
    stray.write_text("hello", "utf-8")
    with pytest.raises(DataFormatError, match="not a recognised red-team source"):
        read_source(str(stray))
