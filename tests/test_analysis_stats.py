"""The statistics on small tables whose answers are worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from sparring.analysis.agreement import fleiss_kappa, review_agreement
from sparring.analysis.cells import cell_counts, cell_table
from sparring.analysis.compare import compare_sources, distinct_2
from sparring.analysis.dataset import (
    ATTEMPT_COLUMNS,
    RedTeamData,
    parse_params,
    reviews_frame,
)
from sparring.analysis.embedding_map import human_turns
from sparring.analysis.mixed_effects import fit_mixed_effects
from sparring.analysis.ratings import rating_distribution, rating_vs_harmlessness
from sparring.analysis.red_teamers import concentration, per_person_effectiveness
from sparring.analysis.tags import tag_table, wilson_interval

# Fleiss (1971) as worked in most textbooks and on Wikipedia: 10 items, 14 raters, 5 categories.
# By hand: P_bar = 0.378, P_e = 0.213, kappa = (0.378 - 0.213) / (1 - 0.213) = 0.210.
FLEISS_EXAMPLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def attempts(**columns) -> pd.DataFrame:
    """An attempts table with defaults for the columns a test does not care about."""
    n = len(next(iter(columns.values())))
    base = {
        "attempt_id": [str(i) for i in range(n)], "transcript": ["\n\nHuman: hi\n\nAssistant: hello"] * n,
        "min_harmlessness": np.full(n, np.nan), "size": [""] * n, "params": np.full(n, np.nan),
        "model_type": [""] * n, "rating": np.full(n, np.nan), "task_description": [""] * n,
        "task_harmlessness": np.full(n, np.nan), "red_team_member_id": ["p"] * n, "platform": ["web"] * n,
        "tags": [None] * n, "source": ["test"] * n,
    }
    base.update(columns)
    if "size" in columns and "params" not in columns:
        base["params"] = [parse_params(s) for s in columns["size"]]
    frame = pd.DataFrame(base)[ATTEMPT_COLUMNS]
    frame["tags"] = pd.Series(base["tags"], dtype=object)
    return frame


def test_fleiss_kappa_matches_the_textbook_example_and_statsmodels():
    from statsmodels.stats.inter_rater import fleiss_kappa as reference

    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.2099, abs=5e-4)
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(reference(FLEISS_EXAMPLE), abs=1e-12)
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == 1.0  # perfect agreement
    assert math.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))  # one category only: chance agreement is 1
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[2, 1], [1, 1]]))


def test_review_agreement_uses_the_first_k_ratings_of_items_with_at_least_k():
    rows = []
    ratings = {"a": [0, 0, 1, 4], "b": [4, 4, 3], "c": [2, 3, 4], "d": [1, 0], "e": [0, 0, 0]}
    for item, values in ratings.items():
        rows += [{"attempt_id": item, "reviewer": f"r{i}", "rating": float(v), "tags": None,
                  "needs_expertise": item == "b" and i == 0} for i, v in enumerate(values)]
    agreement = review_agreement(reviews_frame(rows))
    # counts 4,3,3,2,3 -> k = 3; item d (2 ratings) left out; item a uses 0, 0, 1
    counts = np.array([[2, 1, 0, 0, 0], [0, 0, 0, 1, 2], [0, 0, 1, 1, 1], [3, 0, 0, 0, 0]])
    assert (agreement.n_items, agreement.raters_per_item) == (4, 3)
    assert agreement.kappa == pytest.approx(fleiss_kappa(counts))
    binary = np.column_stack([counts[:, :3].sum(1), counts[:, 3:].sum(1)])
    assert agreement.kappa_binary == pytest.approx(fleiss_kappa(binary))
    assert agreement.n_needs_expertise == 1
    assert "at least 3" in agreement.note and "reviewers only" in agreement.note

    only = attempts(attempt_id=["b", "c"], rating=[0.0, 0.0])  # restricting to some attempts; their ratings are not raters
    restricted = review_agreement(reviews_frame(rows), only)
    assert restricted.n_items == 2 and restricted.raters_per_item == 3
    assert restricted.kappa == pytest.approx(fleiss_kappa(counts[1:3]))


def test_concentration_curve_and_its_inverse():
    frame = attempts(red_team_member_id=["x"] * 6 + ["y"] * 3 + ["z"])
    result = concentration(frame)
    assert result.n_people == 3
    assert result.curve["attack_share"].tolist() == pytest.approx([0, 0.6, 0.9, 1.0])
    assert result.share_from_top(1 / 3) == pytest.approx(0.6)
    assert result.share_from_top(1 / 6) == pytest.approx(0.3)  # linear between people
    assert result.people_share_for(0.6) == pytest.approx(1 / 3)
    assert result.people_share_for(0.75) == pytest.approx(0.5)  # halfway through the second person
    assert result.people_share_for(1.0) == pytest.approx(1.0)


def test_per_person_effectiveness():
    frame = attempts(red_team_member_id=["x"] * 6 + ["y"] * 5 + ["z"] * 2,
                     rating=[4.0] * 6 + [0, 1, 2, 3, 4] + [4.0, 4.0],
                     min_harmlessness=[-1.0] * 6 + [1.0] * 5 + [0.0, 0.0])
    table = per_person_effectiveness(frame, min_attempts=5, n_boot=500)
    assert table["red_team_member_id"].tolist() == ["x", "y"]  # z has too few attempts
    x, y = table.iloc[0], table.iloc[1]
    assert (x["n"], x["mean_rating"], x["lo"], x["hi"], x["success_rate"]) == (6, 4.0, 4.0, 4.0, 1.0)
    assert y["mean_rating"] == 2.0 and y["lo"] < 2.0 < y["hi"] and y["success_rate"] == pytest.approx(0.4)
    assert y["mean_min_harmlessness"] == 1.0


def test_cell_table_orders_cells_and_ignores_missing_values():
    frame = attempts(size=["13B", "13B", "2.7B", "2.7B", "2.7B", "13B"],
                     model_type=["rlhf", "rlhf", "other", "plain lm", "plain lm", "plain lm"],
                     rating=[4.0, np.nan, 1.0, 3.0, 1.0, 0.0],
                     min_harmlessness=[1.0, 3.0, np.nan, -1.0, 0.0, 2.0])
    table = cell_table(frame, n_boot=200)
    assert list(zip(table["size"], table["model_type"], strict=False)) == [
        ("2.7B", "plain lm"), ("2.7B", "other"), ("13B", "plain lm"), ("13B", "rlhf")]
    rlhf = table.iloc[3]
    assert (rlhf["n"], rlhf["mean_rating"], rlhf["success_rate"], rlhf["mean_min_harmlessness"]) == (2, 4.0, 1.0, 2.0)
    plain = table.iloc[0]
    assert (plain["mean_rating"], plain["success_rate"], plain["mean_min_harmlessness"]) == (2.0, 0.5, -0.5)
    assert plain["mean_rating_lo"] <= 2.0 <= plain["mean_rating_hi"]
    other = table.iloc[1]
    assert math.isnan(other["mean_min_harmlessness"]) and math.isnan(other["mean_min_harmlessness_lo"])

    counts = cell_counts(frame)
    assert list(counts.index) == ["2.7B", "13B", "All"]
    assert list(counts.columns) == ["plain lm", "rlhf", "other", "All"]
    assert counts.loc["2.7B", "plain lm"] == 2 and counts.loc["13B", "other"] == 0
    assert counts.loc["All", "All"] == 6 and counts.loc["13B", "All"] == 3


def test_parse_params():
    assert parse_params("2.7B") == 2.7e9 and parse_params("13B") == 13e9 and parse_params("52b") == 52e9
    assert parse_params("135M") == 1.35e8 and parse_params("1M") == 1e6
    assert math.isnan(parse_params("")) and math.isnan(parse_params("large"))


def test_rating_distribution_and_rating_vs_harmlessness():
    frame = attempts(rating=[0.0, 0.0, 4.0, 3.0, np.nan, 1.2],
                     min_harmlessness=[2.0, 1.0, -2.0, -1.0, 0.0, np.nan])
    dist = rating_distribution(frame)
    assert dist["rating"].tolist() == [0, 1, 2, 3, 4]
    assert dist["n"].tolist() == [2, 1, 0, 1, 1]
    assert dist["share"].tolist() == pytest.approx([0.4, 0.2, 0, 0.2, 0.2])

    result = rating_vs_harmlessness(frame, n_boot=200)
    assert result.n == 4
    assert -1.0 < result.spearman < -0.9  # tied ratings keep it off -1
    assert result.pearson < -0.9
    by = result.by_rating.set_index("rating")
    assert by.loc[0, "n"] == 2 and by.loc[0, "mean_min_harmlessness"] == 1.5 and by.loc[2, "n"] == 0


def test_tag_table():
    frame = attempts(tags=[["Theft"], ["Theft", "Weapons"], ["Weapons", "Weapons"], [], None, None],
                     rating=[4.0, 0.0, 3.0, 1.0, 4.0, 4.0])
    table = tag_table(frame).set_index("tag")
    assert table.attrs["n_tagged"] == 4  # the empty list counts as tagged; None does not
    assert table.loc["Theft", "n"] == 2 and table.loc["Weapons", "n"] == 2  # a repeated tag counts once
    assert table.loc["Theft", "share"] == 0.5
    assert table.loc["Weapons", "mean_rating"] == 1.5 and table.loc["Weapons", "success_rate"] == 0.5

    from statsmodels.stats.proportion import proportion_confint

    low, high = wilson_interval(np.array([1, 0]), np.array([2, 3]))
    expected = proportion_confint(np.array([1, 0]), np.array([2, 3]), method="wilson")
    assert low == pytest.approx(expected[0]) and high == pytest.approx(expected[1])


def test_compare_sources():
    varied = ["\n\nHuman: how do birds fly so far\n\nAssistant: ok\n\nHuman: and fish swim deep\n\nAssistant: ok",
              "\n\nHuman: tell me about green tea leaves\n\nAssistant: ok",
              "\n\nHuman: why is the sky blue today\n\nAssistant: ok"]
    same = ["\n\nHuman: tell me a joke\n\nAssistant: no"] * 3
    a = RedTeamData("a", "run", attempts(transcript=varied, rating=[0.0] * 3, min_harmlessness=[1.0, 2.0, 3.0],
                                         tags=[["Theft"], None, ["Weapons"]]))
    b = RedTeamData("b", "run", attempts(transcript=same, rating=[4.0] * 3, min_harmlessness=[-1.0] * 3,
                                         tags=[["Theft"], ["Theft"], None]))
    result = compare_sources(a, b, n_boot=300)
    diffs = result.differences.set_index("metric")
    assert diffs.loc["mean_rating", "difference"] == 4.0
    assert (diffs.loc["mean_rating", "lo"], diffs.loc["mean_rating", "hi"]) == (4.0, 4.0)
    assert diffs.loc["success_rate", "difference"] == 1.0
    assert diffs.loc["mean_min_harmlessness", "difference"] == -3.0
    assert diffs.loc["mean_min_harmlessness", "lo"] < -3.0 < diffs.loc["mean_min_harmlessness", "hi"]
    assert result.sources["name"].tolist() == ["a", "b"] and result.sources["n"].tolist() == [3, 3]

    mix = result.tag_mix.set_index("tag")
    assert mix.loc["Theft"].tolist() == [0.5, 1.0] and mix.loc["Weapons"].tolist() == [0.5, 0.0]

    diversity = result.diversity.set_index("name")
    assert diversity.loc["a", "distinct_2"] == 1.0  # every bigram differs
    assert diversity.loc["b", "distinct_2"] == pytest.approx(3 / 9)  # 3 bigrams repeated 3 times
    assert diversity.loc["a", "mean_human_turns"] == pytest.approx(4 / 3)
    assert diversity.loc["a", "dispersion"] > 0.3 and diversity.loc["b", "dispersion"] == pytest.approx(0, abs=1e-5)
    assert human_turns(varied[0]) == ["how do birds fly so far", "and fish swim deep"]
    assert distinct_2(["a b a b"]) == pytest.approx(2 / 3)


def test_mixed_model_degrades_gracefully():
    rng = np.random.default_rng(0)
    n = 60
    frame = attempts(size=rng.choice(["2.7B", "52B"], n).tolist(), model_type=rng.choice(["plain lm", "rlhf"], n).tolist(),
                     min_harmlessness=rng.normal(size=n), task_harmlessness=rng.normal(size=n))
    one_person = fit_mixed_effects(frame)  # every attempt by one red teamer (e.g. an automated attack)
    assert "ordinary least squares" in one_person.note and "platform dropped" in one_person.note
    assert math.isnan(one_person.group_variance) and one_person.n_obs == n
    assert "log10_params_b:model_type[rlhf]" in set(one_person.coefficients["term"])

    tiny = fit_mixed_effects(frame.head(3))
    assert tiny.coefficients.empty and "not fitted" in tiny.note

    no_scores = fit_mixed_effects(frame.assign(min_harmlessness=np.nan))
    assert no_scores.n_obs == 0 and "not fitted" in no_scores.note
