"""The report's people-vs-attackers section: same targets and judge, errors and undecided apart, coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from experiment_support import scripted_toml, toml_value
from release_support import hh_dialogues
from test_web_support import DISTINCT, campaign_toml, end, make_web, pick, send, start_conversation

from sparring.analysis import people_vs_attackers
from sparring.analysis.dataset import read_source
from sparring.analysis.embedding_map import AttackMap, Cluster, human_turns
from sparring.analysis.people_vs_attackers import compare_people_and_attackers, pool
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
        ("p1", "hh-rlhf", "people", 4.0, -1.0, ["Theft"]), ("p2", "hh-rlhf", "people", 0.0, 1.0, ["Weapons"]),
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
    # a person's own tag ("Weapons", on no cluster) is not coverage: no attacker tags its attempts
    assert rows.loc["hh-rlhf", "harm_tags"] == 2 and result.mapped == 5

    unmapped = compare_people_and_attackers(attempts, {})
    assert unmapped is not None and unmapped.coverage.empty and np.isnan(unmapped.groups["harm_tags"]).all()

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


def test_pooled_sources_keep_a_shared_group_name_apart_by_source():
    first = frame([("p1", "people", "people", 4.0, -1.0, None), ("a1", "zero-shot", "model", 0.0, 1.0, None)])
    second = frame([("p2", "people", "people", 0.0, 1.0, None), ("b1", "refine", "model", 4.0, -1.0, None)])
    attempts, errors = pool([("campaign c", first, {"people": 1}), ("run r", second, {"refine": 2, "people": 3})])
    assert list(attempts["attack"]) == ["people (campaign c)", "zero-shot", "people (run r)", "refine"]
    assert list(attempts["source"]) == ["campaign c", "campaign c", "run r", "run r"]
    assert errors == {"people (campaign c)": 1, "people (run r)": 3, "refine": 2}


def run_campaign(sqlite_url: str, shared_data: Path) -> str:
    """A web campaign on two scripted targets: two people, six conversations each, opening with real hh-rlhf
    red-team requests; every third attempt tagged. Returns the campaign id."""
    web = make_web(sqlite_url)
    openings = [human_turns(row["chosen"])[0] for row in hh_dialogues(shared_data, 12)]
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, conversations_per_task=6)
    for person in range(2):
        red = web.login(f"red{person}", "red_teamer")
        for i in range(6):
            number = person * 6 + i
            conversation = start_conversation(red, campaign, f"attempt {number}")
            assert send(red, conversation, openings[number]).status_code == 303
            assert pick(red, conversation, number % 2).status_code == 303
            assert end(red, conversation, number % 5, ["Theft"] if number % 3 == 0 else []).status_code == 303
    for client in web.clients:
        client.close()
    web.ctx.store.close()
    return campaign


CLUSTERS = ["Theft", "Weapons", "Fraud & deception"]


def map_by_group(attempts: pd.DataFrame, embeddings: np.ndarray, seed: int = 0) -> AttackMap:
    """A stand-in for UMAP + HDBSCAN with known clusters: people in 0 (their first attempt in 1), zero-shot in 1,
    refine in 2. What it is given is kept, to check that both sources' attempts reached the one map."""
    map_by_group.given = attempts  # type: ignore[attr-defined]
    assert embeddings.shape == (len(attempts), 384)
    groups = {"people": 0, "zero-shot": 1, "refine": 2}
    labels = np.array([groups[g] for g in attempts["attack"]])
    labels[np.flatnonzero(labels == 0)[0]] = 1
    clusters = [Cluster(i, int((labels == i).sum()), np.nan, np.nan, np.nan, [], [], tag, 0.5, 2.0, "embedding", False)
                for i, tag in enumerate(CLUSTERS)]
    return AttackMap(np.zeros((len(attempts), 2)), labels, clusters, len(attempts), 10)


def test_a_campaign_compared_with_a_run_puts_both_sources_on_one_map(sqlite_url, shared_data, tmp_path, monkeypatch):
    campaign = run_campaign(sqlite_url, shared_data)
    goals = shared_data / "jbb" / "harmful-behaviors.csv"
    model = f'{{backend = "scripted", responses = {toml_value(list(pd.read_csv(goals)["Goal"][20:40]))}}}'
    text = ('name = "attackers"\nturns = 2\nsamples_per_turn = 2\n' + campaign_toml(DISTINCT)  # the same targets
            + f'[[attacks]]\nkind = "zero-shot"\nitems = 12\nmodel = {model}\n'
            + f'[[attacks]]\nkind = "refine"\npath = "{goals}"\ncolumn = "Goal"\nid_column = "Index"\nlimit = 12\n'
            + f"model = {model}\n")
    store = Store(sqlite_url)
    assert run_experiment(parse_config(text), text, store, "attackers").errors == 0
    store.close()

    monkeypatch.setattr(people_vs_attackers, "attack_map", map_by_group)
    people, run = read_source(campaign, sqlite_url), read_source("attackers", sqlite_url)
    result = build_report(people, tmp_path / "report.html", compare_with=run, n_boot=200)
    [section] = [s for s in result.sections if s.key == "people_vs_attackers"]
    assert not section.unavailable and not section.error
    given = map_by_group.given  # type: ignore[attr-defined]
    assert set(given["source"]) == {f"campaign {campaign}", "run attackers"} and len(given) == 60
    table = section.tables[0]
    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    assert {name: (row["side"], row["source"], row["attempts"], row["map clusters"]) for name, row in rows.items()} == {
        "people": ("people", f"campaign {campaign}", "12", "2"), "zero-shot": ("attacker", "run attackers", "24", "1"),
        "refine": ("attacker", "run attackers", "24", "1")}
    facts = dict(section.facts)
    assert facts["map clusters"] == ("from one map of both sources' compared attempts (3 clusters); 60 of the 60 "
                                     "compared attempts are on it")
    coverage = {(row[0], row[1]): (row[2], row[3]) for row in section.tables[1].rows}
    assert coverage == {
        ("zero-shot", "map clusters"): ("0 (Theft)", "none"), ("zero-shot", "harm tags"): ("Theft", "none"),
        ("refine", "map clusters"): ("0 (Theft), 1 (Weapons)", "2 (Fraud & deception)"),
        ("refine", "harm tags"): ("Theft, Weapons", "Fraud & deception")}
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "reached by the attacker only" in html and f"campaign {campaign}" in html
