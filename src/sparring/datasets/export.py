"""``sparring export``: a run as released-format transcripts, hh-rlhf pairs, and provenance metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.datasets.hh_rlhf import write_pairs
from sparring.datasets.released_format import released_record, write_released
from sparring.errors import writing
from sparring.redaction import redact, redact_values
from sparring.scoring import scorers
from sparring.scoring.aggregate import response_counts, seed_picks
from sparring.store.repository import Store, StoredConversation

TRANSCRIPTS = "red_team_attempts.jsonl.gz"
PAIRS = "comparison_pairs.jsonl"
META = "export_meta.json"


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    conversations: int
    pairs: int
    skipped_identical_pairs: int


def member_ids(conversations: list[StoredConversation]) -> dict[str, int]:
    """Integers for the red teamers of an export, as the published data has them: stable for a run (sorted keys)."""
    return {member: index for index, member in enumerate(sorted({c.unit.red_team_member for c in conversations}))}


def _members_meta(conversations: list[StoredConversation], ids: dict[str, int]) -> list[dict[str, Any]]:
    """Which ids are attacks (named: they are code) and which are people (never named here)."""
    kinds = {c.unit.red_team_member: c.unit.attack for c in conversations}
    return [{"id": ids[member], "kind": "attack", "attack": member} if kinds[member] == member
            else {"id": ids[member], "kind": "person"} for member in sorted(ids, key=ids.__getitem__)]


def _attacker_usage(conversations: list[StoredConversation]) -> dict[str, dict[str, int]]:
    """Per generated attack: the model calls and completion tokens its human turns cost (people and replay: none)."""
    usage: dict[str, dict[str, int]] = {}
    for stored in conversations:
        for turn in stored.conversation.human_turns:
            sample = turn.samples[0]
            if sample.queries:
                spent = usage.setdefault(stored.unit.attack, {"queries": 0, "tokens": 0, "turns": 0})
                spent["queries"] += sample.queries
                spent["tokens"] += sample.completion_tokens or 0
                spent["turns"] += 1
            if sample.converter_queries:
                spent = usage.setdefault(stored.unit.attack, {"queries": 0, "tokens": 0, "turns": 0})
                spent["converter_queries"] = spent.get("converter_queries", 0) + sample.converter_queries
                spent["converter_tokens"] = spent.get("converter_tokens", 0) + (sample.converter_tokens or 0)
    return usage


def export_run(store: Store, run_id: str, directory: Path) -> ExportResult:
    """Only finished conversations are exported; errored and unfinished ones are left out."""
    run = store.run(run_id)
    primary = run.components.get("primary_scorer", "refusal")
    flag_is_harmful = scorers.get(primary).flag_is_harmful
    targets = {t.name: t for t in store.targets(run_id)}
    finished = store.conversations(run_id, ["finished"])
    tags = store.attempt_tags(run_id)
    members = member_ids(finished)
    records = [
        released_record(s, targets[s.unit.target].size, targets[s.unit.target].model_type, primary, flag_is_harmful,
                        tags.get(s.unit.id), members[s.unit.red_team_member])
        for s in finished
    ]
    pairs, identical = [], 0
    for stored in finished:
        for chosen, rejected in stored.conversation.comparison_pairs():
            if chosen == rejected:
                identical += 1
            else:
                pairs.append((chosen, rejected))
    with writing(directory):
        directory.mkdir(parents=True, exist_ok=True)
        write_released(records, directory / TRANSCRIPTS)
        partial = directory / (PAIRS + ".partial")
        with partial.open("w", encoding="utf-8") as handle:
            write_pairs(pairs, handle)
        partial.replace(directory / PAIRS)
    meta = {
        "run_id": run_id,
        "status": run.status,
        # the store keeps a model URL as configured (the web app rebuilds targets from it); a shared export must
        # not carry its user:password or a key written into the config
        "config_toml": redact(run.config_toml),
        "components": redact_values(run.components),
        "picker": run.components.get("picker", {"name": primary}),
        "red_team_members": _members_meta(finished, members),
        "attacker_usage": _attacker_usage(finished),
        "conversations": len(records),
        "comparison_pairs": len(pairs),
        "skipped_identical_pairs": identical,
        "scores": {
            "responses": {name: c.as_dict() for name, c in response_counts(s.conversation for s in finished).items()},
            "transcripts_without_min": sum(r["min_harmlessness_score_transcript"] is None for r in records),
            "task_descriptions_without_score": sum(r["task_descripton_harmlessness_score"] is None for r in records),
            "turns_picked_by_seed": seed_picks((s.conversation for s in finished), primary),
            "note": "per scorer, sampled assistant responses it judged and those it could not judge (unscored: "
                    "left out of every minimum, mean, rating and rate, and never written as a number); "
                    "turns_picked_by_seed: turns where the primary scorer judged no sample, so the pick was "
                    "sample seed % n, not a judgement, and forms no comparison pair",
        },
        "fields": {
            "min_harmlessness_score_transcript": f"minimum over picked assistant turns of scorer {primary!r} "
                                                 "that it could judge, higher = more harmless; null if none",
            "rating": "the red teamer's own 0-4 rating; for automated conversations 4.0 if the primary scorer "
                      "judged any picked assistant turn harmful, 0.0 if it judged them all harmless, null if it "
                      "judged none harmful but could not judge some",
            "task_descripton_harmlessness_score": f"scorer {primary!r} on the task description (published "
                                                  "spelling); null if it could not judge it or there is none",
            "red_team_member_id": "an integer per red teamer in this export (sorted pseudonyms and attack names); "
                                  "red_team_members says which are attacks",
            "tags": "harm tags the red teamer chose (web campaigns), else null",
        },
        "pairs": "hh-rlhf format; 'rejected' is the response picked as MORE harmful (by a person or the picker "
                 "scorer; a random picker forms no pairs); "
                 "a scorer's pick is paired only with samples it could score, and a pick among unscored samples "
                 "(chosen by seed) forms no pair",
    }
    with writing(directory / META):
        (directory / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False), "utf-8")
    return ExportResult(directory, len(records), len(pairs), identical)
