"""A full-size (38,961-row) file in the released format with planted effects: the analyses must recover them."""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from planted import (
    INVALID_TAG,
    PAPER_COUNTS,
    PAPER_HARMLESSNESS,
    PII_TAG,
    PlantedEffects,
    read_planted,
    review_mixture,
    write_planted_release,
)

from sparring.analysis.agreement import review_agreement
from sparring.analysis.cells import cell_counts, cell_table
from sparring.analysis.dataset import read_source
from sparring.analysis.mixed_effects import fit_mixed_effects
from sparring.analysis.ratings import rating_distribution, rating_vs_harmlessness
from sparring.analysis.red_teamers import concentration, per_person_effectiveness
from sparring.analysis.tags import tag_table

PUBLISHED_TYPES = {
    "transcript": str, "min_harmlessness_score_transcript": float, "num_params": str, "model_type": str,
    "rating": float, "task_description": str, "task_descripton_harmlessness_score": float,
    "red_team_member_id": int, "is_upworker": bool,
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "red_team_attempts.jsonl.gz"
    truth = write_planted_release(path, PlantedEffects(), seed=7)
    return truth, read_planted(path)


def test_file_is_one_gzipped_array_with_exactly_the_published_keys(planted):
    truth, _ = planted
    with truth.path.open("rb") as raw:
        assert raw.read(2) == b"\x1f\x8b"
    with gzip.open(truth.path, "rt", encoding="utf-8") as handle:
        records = json.load(handle)
    assert isinstance(records, list) and len(records) == 38_961 == truth.n_rows
    for record in records[:2000]:
        assert set(record) == set(PUBLISHED_TYPES) | {"tags"}
        assert {k: type(record[k]) for k in PUBLISHED_TYPES} == PUBLISHED_TYPES
        assert record["tags"] is None or (isinstance(record["tags"], list) and 1 <= len(record["tags"]) <= 2)
        assert record["transcript"].startswith("\n\nHuman: ") and record["rating"] in (0.0, 1.0, 2.0, 3.0, 4.0)
    assert {r["num_params"] for r in records} == {"2.7B", "13B", "52B"}
    assert sum(r["tags"] is not None for r in records) == 742


def test_table_1_counts_reproduce_exactly(planted):
    _, data = planted
    counts = cell_counts(data.attempts)
    assert list(counts.index) == ["2.7B", "13B", "52B", "All"]
    assert list(counts.columns) == ["plain lm", "context distillation", "rejection sampling", "rlhf", "All"]
    for (size, model_type), n in PAPER_COUNTS.items():
        assert counts.loc[size, model_type] == n
    assert counts.loc["All", "All"] == 38_961
    assert counts.loc["All", "context distillation"] == 2044 + 2174 + 17739


def test_cell_means_are_recovered_within_their_intervals(planted):
    truth, data = planted
    table = cell_table(data.attempts, n_boot=1000).set_index(["size", "model_type"])
    assert len(table) == 12
    for cell, mean in PAPER_HARMLESSNESS.items():
        row = table.loc[cell]
        assert row["n"] == PAPER_COUNTS[cell]
        assert row["mean_min_harmlessness"] == pytest.approx(mean, abs=1e-9)
        assert row["mean_min_harmlessness_lo"] < mean < row["mean_min_harmlessness_hi"]
        assert row["mean_rating_lo"] <= truth.cell_mean_rating[cell] <= row["mean_rating_hi"]
        assert row["mean_rating"] == pytest.approx(truth.cell_mean_rating[cell], abs=1e-12)
        assert row["success_rate"] == pytest.approx(truth.cell_success_rate[cell], abs=1e-12)
        assert row["success_rate_lo"] < row["success_rate"] < row["success_rate_hi"]
    # the paper's shape: RLHF gets more harmless with size; rejection sampling is the most harmless everywhere
    rlhf = table.xs("rlhf", level="model_type")["mean_min_harmlessness"]
    assert rlhf.is_monotonic_increasing
    for size in ("2.7B", "13B", "52B"):
        assert table.loc[(size, "rejection sampling"), "mean_rating"] < table.loc[(size, "plain lm"), "mean_rating"]


def test_planted_rating_means_are_hit_to_the_rounding(planted):
    truth, _ = planted
    effects = PlantedEffects()
    for cell, target in effects.cell_mean_rating.items():
        assert abs(truth.cell_mean_rating[cell] - target) <= 0.5 / truth.cell_counts[cell] + 1e-12


def test_concentration_matches_the_planted_distribution(planted):
    truth, data = planted
    result = concentration(data.attempts)
    counts = np.sort(np.array(list(truth.person_counts.values())))[::-1]
    assert result.n_people == 324 == counts.size
    top = round(0.15 * 324)
    assert result.share_from_top(top / 324) == pytest.approx(counts[:top].sum() / counts.sum())
    assert 0.75 < result.share_from_top(0.15) < 0.85  # the paper: ~80% of attacks from ~15% of people
    assert 0.12 < result.people_share_for(0.80) < 0.18

    people = per_person_effectiveness(data.attempts, min_attempts=5, n_boot=300)
    assert dict(zip(people["red_team_member_id"], people["n"], strict=False)) == {
        k: v for k, v in truth.person_counts.items() if v >= 5}
    assert people["n"].is_monotonic_decreasing
    assert (people["lo"] <= people["mean_rating"]).all() and (people["mean_rating"] <= people["hi"]).all()
    busy = people[people["n"] >= 50]
    planted_effects = busy["red_team_member_id"].map(truth.person_effects)
    assert np.corrcoef(busy["mean_min_harmlessness"], planted_effects)[0, 1] > 0.8


def test_tag_table_matches(planted):
    truth, data = planted
    table = tag_table(data.attempts).set_index("tag")
    assert table.attrs["n_tagged"] == 742
    assert table["n"].to_dict() == truth.tag_counts
    for tag, rate in truth.tag_success_rate.items():
        assert table.loc[tag, "success_rate"] == pytest.approx(rate)
    assert table.loc[INVALID_TAG, "success_rate"] == 0.0  # planted: only failed attempts are "invalid"
    tagged_cluster = data.attempts.loc[data.attempts["attempt_id"].isin(truth.cluster_ids), "tags"].dropna()
    assert table.loc[PII_TAG, "n"] == len(tagged_cluster) > 0
    assert table["share"].to_dict() == pytest.approx({t: n / 742 for t, n in truth.tag_counts.items()})


def test_planted_cluster_is_the_pii_dialogues(planted):
    truth, data = planted
    pattern = re.compile(PlantedEffects().cluster_pattern, re.IGNORECASE)
    asks = data.attempts["task_description"].map(lambda text: bool(pattern.search(text)))
    assert len(truth.cluster_ids) == 916
    assert set(data.attempts.loc[asks, "attempt_id"]) == set(truth.cluster_ids)
    cluster = data.attempts[data.attempts["attempt_id"].isin(truth.cluster_ids)]
    assert cluster["transcript"].str.contains(r"address|phone|e-?mail", case=False).mean() > 0.9


def test_review_kappas_are_recovered(planted):
    truth, data = planted
    assert len(data.reviews) == 3000 and data.reviews["reviewer"].nunique() == 3
    agreement = review_agreement(data.reviews, data.attempts)
    assert (agreement.n_items, agreement.raters_per_item) == (1000, 3)
    assert agreement.kappa == pytest.approx(truth.kappa, abs=0.05)
    assert agreement.kappa_binary == pytest.approx(truth.kappa_binary, abs=0.05)
    assert agreement.n_needs_expertise > 0


def test_review_mixture_solves_for_both_kappas():
    shares = np.array([0.42, 0.1, 0.12, 0.13, 0.23])
    a, b = review_mixture(shares, 0.32, 0.49)
    assert (a + b) ** 2 == pytest.approx(0.49) and 0 < a < a + b <= 1
    with pytest.raises(ValueError, match="not reachable"):
        review_mixture(shares, 0.6, 0.3)


def test_ratings_follow_harmlessness(planted):
    _, data = planted
    dist = rating_distribution(data.attempts).set_index("rating")
    assert dist["n"].sum() == 38_961 and dist["share"].sum() == pytest.approx(1.0)
    assert dist.loc[0, "share"] > dist.loc[1, "share"] and dist.loc[4, "share"] > dist.loc[2, "share"]  # bimodal
    result = rating_vs_harmlessness(data.attempts, n_boot=300)
    assert result.n == 38_961 and result.spearman < -0.3
    means = result.by_rating["mean_min_harmlessness"].to_numpy()
    assert (np.diff(means) < 0).all()  # more successful attacks, more harmful transcripts


def test_mixed_model_recovers_size_by_intervention_and_the_red_teamer_effect(planted):
    truth, data = planted
    result = fit_mixed_effects(data.attempts)
    assert result.converged, result.note
    assert (result.n_obs, result.n_groups) == (38_961, 324)
    assert "C(platform)" in result.formula and "task_harmlessness" in result.formula
    rlhf = result.coefficient("log10_params_b:model_type[rlhf]")
    assert rlhf["estimate"] > 0.6 and rlhf["p_value"] < 1e-6 and rlhf["ci_lo"] > 0  # RLHF: safer with size
    prompted = result.coefficient("log10_params_b:model_type[context distillation]")
    assert prompted["estimate"] < 0  # prompting: no safer with size (the paper's flat curve)
    assert result.coefficient("model_type[rejection sampling]")["estimate"] > 1.5
    assert result.coefficient("task_harmlessness")["estimate"] == pytest.approx(0.3, abs=0.05)
    platform = result.coefficients[result.coefficients["term"].str.startswith("platform")]
    assert len(platform) == 1 and platform["p_value"].iloc[0] > 0.001  # no platform effect was planted
    effects = np.array(list(truth.person_effects.values()))
    assert result.group_variance == pytest.approx(effects.var(), rel=0.3)

    rating_model = fit_mixed_effects(data.attempts, outcome="rating")
    assert rating_model.converged and rating_model.coefficient("log10_params_b:model_type[rlhf]")["estimate"] < 0


def test_small_planted_file_reads_back(tmp_path: Path):
    effects = PlantedEffects().scaled(2000)
    truth = write_planted_release(tmp_path / "small.jsonl.gz", effects, seed=3)
    data = read_source(str(truth.path))
    assert len(data.attempts) == truth.n_rows == sum(effects.cell_counts.values())
    assert pd.Series(truth.cell_counts).sum() == truth.n_rows
    assert json.loads(truth.truth_path.read_text())["n_rows"] == truth.n_rows
