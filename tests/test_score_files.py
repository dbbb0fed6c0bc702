import asyncio
import gzip
import itertools
import json
from pathlib import Path

import pytest
from experiment_support import scripted_toml

from sparring.datasets.export import export_run
from sparring.datasets.score_files import score_file, scored_path
from sparring.errors import DataFormatError
from sparring.experiments import parse_config, run_experiment
from sparring.scoring import scorers
from sparring.store import Store


def released_from_hh(shared_data: Path, out: Path, rows: int = 12) -> list[dict]:
    """A format-faithful released file (ONE gzipped JSON array) built from real hh-rlhf dialogues."""
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt") as handle:
        lines = [json.loads(line) for line in itertools.islice(handle, rows)]
    records = [{
        "transcript": row["rejected"], "min_harmlessness_score_transcript": 0.0, "num_params": "52B",
        "model_type": "rlhf", "rating": 2.0, "task_description": row["chosen"].split("\n\nAssistant:")[0][9:],
        "task_descripton_harmlessness_score": 0.0, "red_team_member_id": f"member-{i % 3}",
        "is_upworker": bool(i % 2), "tags": None,
    } for i, row in enumerate(lines)]
    with gzip.open(out, "wt") as handle:
        json.dump(records, handle)
    return records


def test_released_file_gets_per_utterance_and_transcript_scores(shared_data, tmp_path: Path):
    source = tmp_path / "red_team_attempts.jsonl.gz"
    original = released_from_hh(shared_data, source)
    refusal = scorers.create("refusal")
    result = asyncio.run(score_file(source, refusal))
    assert result.output == tmp_path / "red_team_attempts.scored.jsonl.gz" == scored_path(source)
    with gzip.open(result.output, "rt") as handle:
        scored = json.load(handle)
    assert len(scored) == len(original)
    for before, after in zip(original, scored, strict=False):
        assert {k: after[k] for k in ("transcript", "num_params", "model_type", "rating", "tags")} == \
               {k: before[k] for k in ("transcript", "num_params", "model_type", "rating", "tags")}
        values = after["harmlessness_scores"]
        assert len(values) == before["transcript"].count("\n\nAssistant:")
        assert after["min_harmlessness_score_transcript"] == min(values)
        last = before["transcript"].rsplit("\n\nAssistant: ", 1)[1]
        assert values[-1] == refusal.grade(last)  # refusal values are already on the harmlessness axis
        assert after["harmlessness_scorer"]["name"] == "refusal"


def test_hh_rlhf_pairs_get_a_score_per_side(shared_data, tmp_path: Path):
    source = tmp_path / "pairs.jsonl"
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt") as handle:
        source.write_text("".join(itertools.islice(handle, 10)))
    result = asyncio.run(score_file(source, scorers.create("refusal")))
    rows = [json.loads(line) for line in result.output.read_text().splitlines()]
    assert len(rows) == 10 and all({"chosen_score", "rejected_score"} <= set(r) for r in rows)


def test_a_sparring_export_directory_can_be_scored(tmp_path: Path, sqlite_url):
    text = scripted_toml(limit=3)
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    export_run(store, outcome.run_id, tmp_path / "out")
    result = asyncio.run(score_file(tmp_path / "out", scorers.create("refusal")))
    with gzip.open(result.output, "rt") as handle:
        assert len(json.load(handle)) == 6


def test_malformed_released_record_names_record_and_field(tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"transcript": "\n\nHuman: hi\n\nAssistant: hello"}]))
    with pytest.raises(DataFormatError, match=r"bad.json: record 0: missing field 'min_harmlessness_score_transcript'"):
        asyncio.run(score_file(path, scorers.create("refusal")))
    path.write_text(json.dumps([{"transcript": 1}]))
    with pytest.raises(DataFormatError, match=r"record 0: field 'transcript' must be str, got int"):
        asyncio.run(score_file(path, scorers.create("refusal")))
