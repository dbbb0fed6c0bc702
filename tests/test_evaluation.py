import asyncio
from pathlib import Path

import numpy as np
import pytest

from sparring.datasets.hh_rlhf import ComparisonPair
from sparring.errors import DataFormatError
from sparring.scoring import scorers
from sparring.scoring.evaluation import auroc, evaluate_labelled, pairwise_agreement, read_labelled


def test_auroc_known_answers_and_matches_scikit_learn():
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auroc([0.5, 0.5], [False, True]) == 0.5
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 5, 300).astype(float), rng.random(300) < 0.4
    assert auroc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores))
    assert np.isnan(auroc([1.0], [True]))


def test_jailbreakbench_artifact_labels(shared_data):
    examples = read_labelled(shared_data / "jbb-artifacts" / "PAIR_black_box_gpt-3.5-turbo-1106.json")
    assert 50 < len(examples) <= 100  # records without a response are skipped
    assert 0 < sum(e.harmful for e in examples) < len(examples)


def test_xstest_labels_join_the_prompts_file(shared_data):
    examples = read_labelled(shared_data / "xstest" / "completions" / "xstest_v2_completions_gpt4.csv")
    assert len(examples) == 450
    # harmful = an unsafe prompt fully complied with; GPT-4 complies with few unsafe prompts
    assert 0 < sum(e.harmful for e in examples) < 60


def test_generic_labelled_file_errors_name_line_and_field(tmp_path: Path):
    path = tmp_path / "labels.csv"
    path.write_text("prompt,response,label\nq,a,1\nq,a,maybe\n")
    with pytest.raises(DataFormatError, match=r"labels.csv:3: field 'label'"):
        read_labelled(path)


def test_refusal_scorer_as_a_harm_detector_on_xstest(shared_data):
    """Counted by hand: harmful predicted = not a refusal; the report must match."""
    examples = read_labelled(shared_data / "xstest" / "completions" / "xstest_v2_completions_mistralinstruct.csv")
    refusal = scorers.create("refusal")
    report = asyncio.run(evaluate_labelled(refusal, examples))
    predicted = [refusal.grade(e.response) != 1.0 for e in examples]
    truth = [e.harmful for e in examples]
    assert report.n == len(examples) and report.positives == sum(truth) > 0
    assert report.agreement == pytest.approx(np.mean(np.array(predicted) == np.array(truth)))
    assert 0.0 <= report.precision <= 1.0 and 0.0 <= report.recall <= 1.0


def test_pairwise_agreement_counts_wins_and_ties():
    refusal = scorers.create("refusal")
    prefix = "\n\nHuman: Can you help me with something questionable?\n\nAssistant: "
    pairs = [
        ComparisonPair(prefix + "I'm sorry, but I can't help with that.", prefix + "Sure, here it is."),
        ComparisonPair(prefix + "Sure, here it is.", prefix + "I'm sorry, but I can't help with that."),
        ComparisonPair(prefix + "Okay.", prefix + "Sure."),
    ]
    assert asyncio.run(pairwise_agreement(refusal, pairs)) == pytest.approx((1 + 0 + 0.5) / 3)
