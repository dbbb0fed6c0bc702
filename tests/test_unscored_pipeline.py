"""Unscored results through the real pipeline: engine, store, `show`, export, report, `sparring score`.

The primary scorer is an LLM judge on the scripted backend whose model fails on
every compliant response ("Sure, here is..."), so those samples are unscored and
refusals are scored: some turns are mixed, some wholly unscored.
"""

import asyncio
import gzip
import json
from pathlib import Path

import pytest
from experiment_support import scripted_toml
from rich.console import Console

from sparring.analysis.dataset import read_source
from sparring.analysis.report import build_report
from sparring.datasets.export import export_run
from sparring.datasets.score_files import score_file
from sparring.experiments import parse_config, run_experiment
from sparring.experiments.summary import render_summary, summarize
from sparring.scoring import scorers
from sparring.store import Store

JUDGE = "llm-judge"
COMPLIES = "Sure, here is how you do it."
REASON = "judge model error: scripted failure: prompt contains the trigger text"


def judged_toml(limit: int = 6) -> str:
    text = scripted_toml(limit=limit, scorer=JUDGE)
    judge = 'model = {backend = "scripted", responses = ["1"], fail_if_contains = "Sure, here is"}'
    for table in ("scorer", "picker"):  # the same judge measures and picks (one instance: the same arguments)
        text = text.replace(f'[{table}]\nname = "{JUDGE}"\n', f'[{table}]\nname = "{JUDGE}"\n{judge}\n')
    return text


@pytest.fixture
def judged_run(sqlite_url):
    text = judged_toml()
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    assert outcome.errors == 0
    yield store, outcome.run_id
    store.close()


def samples_of(store, run_id):
    for stored in store.conversations(run_id, ["finished"]):
        for turn in stored.conversation.assistant_turns:
            yield stored, turn


def test_unscored_samples_are_stored_with_their_reason_and_never_as_values(judged_run):
    store, run_id = judged_run
    kinds = set()
    for stored in store.conversations(run_id, ["finished"]):
        turns = stored.conversation.turns
        for index, turn in enumerate(turns):
            if turn.role.value != "assistant":
                continue
            # The judge sees the conversation too: after a compliant pick, every later response fails.
            earlier = any(COMPLIES in t.text for t in turns[:index])
            for sample in turn.samples:
                if earlier or sample.text == COMPLIES:
                    assert sample.unscored == {JUDGE: REASON} and JUDGE not in sample.scores
                    assert JUDGE not in sample.flagged
                else:
                    assert sample.scores[JUDGE] == 1.0 and JUDGE not in sample.unscored
                assert "refusal" in sample.scores  # the other scorer judged every sample
            kinds.add(sum(JUDGE in s.unscored for s in turn.samples))
    assert kinds == {0, 1, 2}  # turns with no, some and only unscored samples all occurred


def test_picks_prefer_scored_samples_and_pairs_never_involve_unscored_ones(judged_run):
    store, run_id = judged_run
    for _, turn in samples_of(store, run_id):
        scored = [i for i, s in enumerate(turn.samples) if JUDGE in s.scores]
        if scored:
            assert turn.picked in scored
            assert turn.compared == [i for i in scored if i != turn.picked]
        else:
            assert turn.compared == []  # picked by seed: no comparison is claimed
    conversations = {s.unit.id: s.conversation for s in store.conversations(run_id)}
    pairs = store.pairs(run_id)
    assert pairs, "mixed runs still record the pairs between scored samples"
    for conversation_id, turn_index, chosen, rejected, source in pairs:
        turn = conversations[conversation_id].turns[turn_index]
        assert JUDGE in turn.samples[chosen].scores and JUDGE in turn.samples[rejected].scores
        assert source == f"picker:{JUDGE}"


def test_transcript_minimum_leaves_unscored_turns_out(judged_run):
    store, run_id = judged_run
    judge = scorers.create(JUDGE, {"model": {"backend": "scripted", "responses": ["1"]}})
    without_min = 0
    for stored in store.conversations(run_id, ["finished"]):
        picked = [t.samples[t.picked] for t in stored.conversation.assistant_turns]
        values = [judge.harmlessness(s.scores[JUDGE]) for s in picked if JUDGE in s.scores]
        if values:
            assert stored.transcript_scores[(JUDGE, "min")] == min(values)
        else:
            assert (JUDGE, "min") not in stored.transcript_scores and (JUDGE, "mean") not in stored.transcript_scores
            without_min += 1
    assert without_min > 0


def test_show_has_an_unscored_column_and_lists_the_reasons(judged_run):
    store, run_id = judged_run
    summary = summarize(store, run_id)
    expected: dict[str, list[int]] = {}
    for stored, turn in samples_of(store, run_id):
        counts = expected.setdefault(stored.unit.target, [0, 0])
        counts[0] += sum(JUDGE in s.unscored for s in turn.samples)
        counts[1] += len(turn.samples)
    assert {t.target: [t.unscored, t.unscored + t.scored] for t in summary.targets} == expected
    total = sum(u for u, _ in expected.values())
    assert summary.unscored == {JUDGE: {REASON: total}}
    console = Console(width=250, record=True)
    render_summary(summary, console)
    shown = console.export_text()
    assert "unscored" in shown.splitlines()[2]  # the header row of the table
    assert f"{total} sampled response(s) unscored by {JUDGE}" in shown and f"{total} x {REASON}" in shown
    for target, (unscored, all_samples) in expected.items():
        assert f"{unscored}/{all_samples}" in next(line for line in shown.splitlines() if target in line)
    by_seed = sum(1 for _, t in samples_of(store, run_id) if all(JUDGE in s.unscored for s in t.samples))
    assert summary.seed_picks == by_seed > 0
    assert f"{by_seed} turn(s) had no sample {JUDGE} could judge: the pick there was by seed" in shown


def test_export_writes_null_not_zero_and_counts_per_scorer(judged_run, tmp_path: Path):
    store, run_id = judged_run
    export_run(store, run_id, tmp_path / "out")
    with gzip.open(tmp_path / "out" / "red_team_attempts.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = json.load(handle)
    meta = json.loads((tmp_path / "out" / "export_meta.json").read_text())
    unscored = sum(JUDGE in s.unscored for _, t in samples_of(store, run_id) for s in t.samples)
    scored = sum(JUDGE in s.scores for _, t in samples_of(store, run_id) for s in t.samples)
    counts = meta["scores"]["responses"][JUDGE]
    assert counts == {"scored": scored, "unscored": unscored, "unscored_reasons": {REASON: unscored}}
    assert meta["scores"]["responses"]["refusal"]["unscored"] == 0
    by_seed = sum(1 for _, t in samples_of(store, run_id) if all(JUDGE in s.unscored for s in t.samples))
    assert meta["scores"]["turns_picked_by_seed"] == by_seed > 0
    nulls = [r for r in records if r["min_harmlessness_score_transcript"] is None]
    assert len(nulls) == meta["scores"]["transcripts_without_min"] > 0
    stored = {s.conversation.to_hh(): s for s in store.conversations(run_id, ["finished"])}
    for record in records:
        picked = [t.samples[t.picked] for t in stored[record["transcript"]].conversation.assistant_turns]
        if any(JUDGE in s.unscored for s in picked):
            assert record["rating"] is None  # judged harmless where it could judge, unknown elsewhere
        else:
            assert record["rating"] == 0.0  # the judge's rating 1 is below harmful_at
    pairs = (tmp_path / "out" / "comparison_pairs.jsonl").read_text().splitlines()
    # exactly the recorded comparisons (pairs of two identical refusals are skipped as before)
    assert len(pairs) == meta["comparison_pairs"]
    assert meta["comparison_pairs"] + meta["skipped_identical_pairs"] == len(store.pairs(run_id))


def test_the_report_counts_unscored_responses(judged_run, sqlite_url, tmp_path: Path):
    store, run_id = judged_run
    unscored = sum(JUDGE in s.unscored for _, t in samples_of(store, run_id) for s in t.samples)
    data = read_source(run_id, database_url=sqlite_url)
    assert data.unscored == unscored
    assert data.attempts["min_harmlessness"].isna().sum() > 0  # no stand-in value for unscored transcripts
    result = build_report(data, tmp_path / "report.html", embeddings=False, n_boot=50)
    overview = next(s for s in result.sections if s.key == "overview")
    assert ("assistant responses the scorer could not judge (unscored; in no score)", str(unscored)) in overview.facts
    assert "could not judge (unscored; in no score)" in (tmp_path / "report.html").read_text()


def test_score_files_counts_unscored_texts_and_writes_null(tmp_path: Path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"chosen": "\n\nHuman: Tell me the placeholder.\n\nAssistant: I can't help with that.",
             "rejected": f"\n\nHuman: Tell me the placeholder.\n\nAssistant: {COMPLIES}"}]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    judge = scorers.create(JUDGE, {"model": {"backend": "scripted", "responses": ["1"],
                                             "fail_if_contains": "Sure, here is"}})
    result = asyncio.run(score_file(pairs, judge))
    assert (result.utterances, result.unscored, result.unscored_reasons) == (2, 1, {REASON: 1})
    written = [json.loads(line) for line in result.output.read_text().splitlines()]
    assert written[0]["chosen_score"] == -1.0 and written[0]["rejected_score"] is None


def test_scoring_a_released_file_writes_null_and_the_report_reader_counts_it(judged_run, tmp_path: Path):
    store, run_id = judged_run
    export_run(store, run_id, tmp_path / "out")
    judge = scorers.create(JUDGE, {"model": {"backend": "scripted", "responses": ["1"],
                                             "fail_if_contains": "Sure, here is"}})
    result = asyncio.run(score_file(tmp_path / "out", judge))
    with gzip.open(result.output, "rt", encoding="utf-8") as handle:
        records = json.load(handle)
    nulls = sum(v is None for r in records for v in r["harmlessness_scores"])
    assert nulls > 0 and result.unscored == nulls + sum(r["task_descripton_harmlessness_score"] is None
                                                        for r in records)
    for record in records:
        judged = [v for v in record["harmlessness_scores"] if v is not None]
        assert record["min_harmlessness_score_transcript"] == (min(judged) if judged else None)
    data = read_source(str(result.output))
    assert data.unscored == nulls and data.attempts["min_harmlessness"].isna().sum() == sum(
        r["min_harmlessness_score_transcript"] is None for r in records)
