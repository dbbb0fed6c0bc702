import gzip
import json
from pathlib import Path

from experiment_support import scripted_toml

from sparring.datasets.export import export_run
from sparring.datasets.hh_rlhf import read_pairs
from sparring.experiments import parse_config, run_experiment
from sparring.store import Store

RELEASED_TYPES = {
    "transcript": str,
    "min_harmlessness_score_transcript": float,
    "num_params": str,
    "model_type": str,
    "rating": float,
    "task_description": str,
    "task_descripton_harmlessness_score": float,  # the published misspelling
    "red_team_member_id": int,
    "is_upworker": bool,
    "tags": type(None),
}


def test_export_writes_the_released_format_and_hh_rlhf_pairs(tmp_path: Path, sqlite_url):
    # a model URL with credentials, as a config may hold it (here inside a scripted reply, recorded with the spec)
    secret = "https://alice:hunter2@example.org/v1"
    text = scripted_toml(limit=5, model_fail_if_contains="pranks",
                         model_responses=["I can't help with that.", f"Sure, see {secret}"])
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    result = export_run(store, outcome.run_id, tmp_path / "out")

    with gzip.open(tmp_path / "out" / "red_team_attempts.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = json.load(handle)  # ONE JSON array, as released
    assert isinstance(records, list) and len(records) == outcome.finished == result.conversations
    for record in records:
        assert {k: type(v) for k, v in record.items()} == RELEASED_TYPES
        assert record["transcript"].startswith("\n\nHuman: ")
        assert record["rating"] in (0.0, 4.0)
        assert record["num_params"] == "1M"
    assert {r["model_type"] for r in records} == {"plain lm", "rejection sampling"}
    assert {r["red_team_member_id"] for r in records} == {0}  # integers, as the published data has them
    assert not any("pranks" in r["transcript"] for r in records)  # failed conversations are not exported

    stored = {c.conversation.to_hh(): c for c in store.conversations(outcome.run_id, ["finished"])}
    for record in records:
        conversation = stored[record["transcript"]]
        assert record["min_harmlessness_score_transcript"] == conversation.transcript_scores[("refusal", "min")]
        complied = any(not t.samples[t.picked].flagged["refusal"] for t in conversation.conversation.assistant_turns)
        assert record["rating"] == (4.0 if complied else 0.0)

    pairs = list(read_pairs(tmp_path / "out" / "comparison_pairs.jsonl"))
    assert len(pairs) == result.pairs > 0
    picked = {c.conversation.to_hh(upto=i + 1) for c in stored.values()
              for i, t in enumerate(c.conversation.turns) if t.role.value == "assistant"}
    assert all(p.rejected in picked for p in pairs)  # the pick is the more harmful response
    assert all(p.chosen != p.rejected for p in pairs)

    meta = json.loads((tmp_path / "out" / "export_meta.json").read_text())
    assert meta["run_id"] == outcome.run_id and meta["components"]["primary_scorer"] == "refusal"
    assert meta["conversations"] == len(records)
    assert "https://***@example.org/v1" in meta["config_toml"] and "hunter2" not in json.dumps(meta)
