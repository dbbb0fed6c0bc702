"""The judge's training table: every shared source loads with its authors' labels; sampling, weights, metrics."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from sparring.datasets.harm_labels import SOURCES, LabelledRow, load_labelled
from sparring.errors import DataFormatError
from sparring.scoring.evaluation import (
    LabelledExample,
    auroc,
    balanced_threshold,
    expected_calibration_error,
    within_group_auroc,
)
from sparring.scoring.pm.pairs import cap_pairs, split_pairs
from sparring.scoring.pm.train import balanced_weights
from sparring.scoring.pm.training_data import cap_per_source

# rows with a non-empty response, and how many of them people (or JailbreakBench's judge) called harmful
EXPECTED = {
    "gptfuzz": (7700, 2239), "jailbreak-eval-manual": (300, 141), "diasafety": (11206, 5181),
    "openai-moderation": (1680, 522), "xstest": (2250, 136), "jbb-artifacts": (1637, 937),
}


@pytest.fixture(scope="module")
def rows(shared_data: Path) -> list[LabelledRow]:
    return load_labelled(shared_data)


def test_every_source_loads_with_its_labels_and_goals(rows: list[LabelledRow]) -> None:
    assert list(SOURCES) == list(EXPECTED)
    for name, (count, harmful) in EXPECTED.items():
        mine = [row.example for row in rows if row.source == name]
        assert (len(mine), sum(e.harmful for e in mine)) == (count, harmful), name
        assert all(e.response.strip() and e.group for e in mine)
    gptfuzz = [row.example for row in rows if row.source == "gptfuzz"]
    assert len({e.group for e in gptfuzz}) == 100  # one goal per GPTFuzz question
    assert all(e.prompt == "" for row in rows if row.source == "openai-moderation" for e in [row.example])


def test_a_bad_label_names_the_file_line_and_field(shared_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(shared_data / "jailbreak-eval-manual", data / "jailbreak-eval-manual")
    path = data / "jailbreak-eval-manual" / "manual_data.csv.gz"
    text = gzip.open(path, "rt", encoding="utf-8").read().replace(",True,", ",maybe,", 1)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    with pytest.raises(DataFormatError, match=r"manual_data\.csv\.gz:\d+: field 'manual_safeguard_violation_label' .* got 'maybe'"):
        load_labelled(data, ["jailbreak-eval-manual"])
    with pytest.raises(DataFormatError, match="unknown harm-label source"):
        load_labelled(data, ["nope"])
    from sparring.scoring.evaluation import read_labelled

    with pytest.raises(DataFormatError, match=r"missing\.json: file not found"):
        read_labelled(tmp_path / "missing.json")


def test_capping_is_by_content_not_file_order(rows: list[LabelledRow]) -> None:
    some = [row for row in rows if row.source in ("xstest", "jailbreak-eval-manual")]
    first = cap_per_source(some, 100)
    again = cap_per_source(list(reversed(some)), 100)
    assert {id(r) for r in first} == {id(r) for r in again}
    assert sorted(r.source for r in first).count("xstest") == 100
    assert cap_per_source(some, 100, seed=1) != first


def test_pair_cap_keeps_the_split_and_ignores_order(shared_data: Path) -> None:
    from sparring.datasets.harm_labels import load_pairs

    train, heldout = split_pairs(load_pairs(shared_data))
    capped = cap_pairs(train, 300)
    assert len(capped) == 300 and {p.line for p in capped} == {p.line for p in cap_pairs(list(reversed(train)), 300)}
    assert not {p.line for p in capped} & {p.line for p in heldout}


def test_every_source_and_class_weighs_the_same() -> None:
    sources = ["a"] * 90 + ["a"] * 10 + ["b"] * 5 + ["b"] * 15
    labels = np.array([0] * 90 + [1] * 10 + [0] * 5 + [1] * 15, dtype=float)
    weights = balanced_weights(sources, labels)
    cells = [weights[:90].sum(), weights[90:100].sum(), weights[100:105].sum(), weights[105:].sum()]
    assert np.allclose(cells, cells[0]) and weights.mean() == pytest.approx(1.0)
    one_class = balanced_weights(["c"] * 4, np.zeros(4))
    assert np.allclose(one_class, 1.0)


def test_within_goal_auroc_ignores_what_the_request_alone_says() -> None:
    groups = ["g1"] * 4 + ["g2"] * 4
    labels = [True, False, False, False, True, True, True, False]
    by_request = [1.0] * 4 + [5.0] * 4  # a judge that only reads the request: perfect-looking overall...
    assert auroc(by_request, labels) > 0.7
    assert within_group_auroc(by_request, labels, groups) == pytest.approx(0.5)  # ...and blind within a goal
    reader = [3, 1, 1, 1, 7, 7, 7, 2]
    assert within_group_auroc(reader, labels, groups) == pytest.approx(1.0)
    assert np.isnan(within_group_auroc([1, 2], [True, False], ["x", "y"]))


def test_threshold_is_the_best_balanced_cut_averaged_over_sources() -> None:
    harm = np.array([0.1, 0.2, 0.9, 1.0, 5.0, 6.0, 7.0, 8.0])
    labels = np.array([False, False, True, True, False, False, True, True])
    cut = balanced_threshold(harm, labels, ["a"] * 4 + ["b"] * 4)
    flagged = harm > cut
    assert cut == pytest.approx(3.0) or (flagged == labels).mean() >= 0.75
    assert balanced_threshold(harm[:4], labels[:4], ["a"] * 4) == pytest.approx(0.55)


def test_calibration_table_and_error() -> None:
    probabilities = [0.05] * 10 + [0.95] * 10
    labels = [False] * 10 + [True] * 9 + [False]
    error, table = expected_calibration_error(probabilities, labels)
    assert [row["n"] for row in table] == [10, 10]
    assert error == pytest.approx((0.05 * 10 + 0.05 * 10) / 20)


def test_labelled_examples_keep_a_goal_for_grouping(shared_data: Path) -> None:
    from sparring.scoring.evaluation import read_labelled

    examples = read_labelled(sorted((shared_data / "jbb-artifacts").glob("*.json"))[0])
    assert all(isinstance(e, LabelledExample) and e.group for e in examples)
    assert len({e.group for e in examples}) > 50
