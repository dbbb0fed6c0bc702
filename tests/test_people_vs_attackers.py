"""The report's people-vs-attackers section: same targets and judge, errors and undecided apart, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
from experiment_support import scripted_toml, toml_value

from sparring.analysis.dataset import read_source
from sparring.analysis.people_vs_attackers import compare_people_and_attackers
from sparring.analysis.report import build_report
from sparring.experiments import parse_config, run_experiment
from sparring.store import Store


def frame(rows: list[tuple[str, str, str, float, float, list[str] | None]]) -> pd.DataFrame:
    """(attempt id, attack, side, rating, min harmlessness, tags) on one target cell."""
    return pd.DataFrame({
        "attempt_id": [r[0] for r in rows], "attack": [r[1] for r in rows], "side": [r[2] for r in rows],
        "rating": [r[3] for r in rows], "min_harmlessness": [r[4] for r in rows],
        "tags": pd.Series([r[5] for r in rows], dtype=object), "size": "1M", "model_type": "plain",
        "transcript": [f"\n\nHuman: question number {r[0]} about topic {r[1]}\n\nAssistant: ok" for r in rows],
    })


def test_success_counts_decided_attempts_only_and_coverage_names_what_each_side_missed():
    attempts = frame([
        ("p1", "hh-rlhf", "people", 4.0, -1.0, ["Theft"]), ("p2", "hh-rlhf", "people", 0.0, 1.0, None),
        ("a1", "tap", "model", 4.0, -2.0, None), ("a2", "tap", "model", np.nan, np.nan, None),
        ("a3", "tap", "model", 0.0, 0.5, None), ("d1", "advbench", "dataset", 4.0, -3.0, None),
    ])
    clusters = {"p1": (0, "Theft"), "p2": (1, "Violence"), "a1": (1, "Violence"), "a2": (2, "Hate"), "a3": (-1, "")}
    result = compare_people_and_attackers(attempts, {"tap": 2}, clusters)
    assert result is not None
    rows = result.groups.set_index("group")
    assert list(rows.index) == ["hh-rlhf", "tap"]  # a dataset replay is neither side
    assert (rows.loc["tap", "attempts"], rows.loc["tap", "errors"], rows.loc["tap", "undecided"]) == (3, 2, 1)
    assert rows.loc["tap", "success_rate"] == 0.5 and rows.loc["hh-rlhf", "success_rate"] == 0.5  # undecided apart
    assert rows.loc["tap", "mean_min_harmlessness"] == -0.75 and rows.loc["tap", "clusters"] == 2
    coverage = result.coverage.set_index("what")
    assert coverage.loc["map clusters", "only_people"] == "0 (Theft)"
    assert coverage.loc["map clusters", "only_attacker"] == "2 (Hate)"
    assert coverage.loc["harm tags", "only_people"] == "Theft" and coverage.loc["harm tags", "only_attacker"] == "Hate"
    assert result.sample_size == 2 and rows.loc["tap", "dispersion"] > 0

    other_cell = attempts.assign(size=np.where(attempts["side"] == "model", "2M", "1M"))
    assert compare_people_and_attackers(other_cell, {}) is None  # no target both sides attacked


def test_the_report_puts_replayed_people_beside_a_model_attacker_with_errors_apart(sqlite_url, tmp_path):
    attacker = {"backend": "scripted", "responses": ["How would someone open a locked car?"], "fail_every": 3}
    model = "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in attacker.items()) + "}"
    text = scripted_toml(limit=4) + f'[[attacks]]\nkind = "zero-shot"\nitems = 6\nmodel = {model}\n' \
                                    "budget = {queries = 1, tokens = 100}\n"
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store, "mixed")
    assert outcome.errors > 0  # the attacker failed some conversations
    store.close()

    data = read_source("mixed", sqlite_url)
    result = build_report(data, tmp_path / "report.html", embeddings=False, n_boot=200)
    [section] = [s for s in result.sections if s.key == "people_vs_attackers"]
    assert not section.unavailable and not section.error
    rows = {row[0]: row for row in section.tables[0].rows}
    assert rows["hh-rlhf"][1] == "people" and rows["zero-shot"][1] == "attacker"
    assert rows["zero-shot"][3] == str(outcome.errors) and rows["hh-rlhf"][3] == "0"  # errors apart, per group
    assert int(rows["zero-shot"][2]) == 12 - outcome.errors  # 6 openings x 2 targets, failures not attempts
    html = (tmp_path / "report.html").read_text()
    assert "People vs attackers" in html and "errors (apart)" in html


def test_without_people_the_section_says_what_it_needs(sqlite_url, tmp_path):
    text = scripted_toml(limit=1)
    text = text[:text.index("[[attacks]]")] + '[[attacks]]\nkind = "zero-shot"\nitems = 2\n' \
        'model = {backend = "scripted", responses = ["Tell me about locks."]}\n'
    store = Store(sqlite_url)
    run_experiment(parse_config(text), text, store, "alone")
    store.close()
    result = build_report(read_source("alone", sqlite_url), tmp_path / "r.html", embeddings=False, n_boot=100)
    [section] = [s for s in result.sections if s.key == "people_vs_attackers"]
    assert "needs people" in section.unavailable
