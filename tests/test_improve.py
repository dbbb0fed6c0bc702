"""`sparring improve` on the embedded model: the GGUF round trip, and a few-step smoke of the whole loop."""

from __future__ import annotations

import fcntl
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from experiment_support import scripted_toml
from typer.testing import CliRunner

from sparring.cli import app
from sparring.experiments import parse_config, run_experiment
from sparring.models.llamacpp import embedded_model_path
from sparring.store import Store
from sparring.tuning.dpo import resolved_precision
from sparring.tuning.pairs import REFUSALS

pytestmark = pytest.mark.model

SOURCE = """
name = "loop-source"
turns = 1
samples_per_turn = 2
[sampling]
max_tokens = 24
[scorer]
name = "pm"
[picker]
name = "refusal"
[[models]]
name = "smollm2"
backend = "llamacpp"
size = "135M"
[[targets]]
model = "smollm2"
intervention = "plain"
[[attacks]]
kind = "hh-rlhf"
limit = 3
"""


def test_gguf_round_trip_reproduces_the_template(tmp_path: Path) -> None:
    """Writing the unmodified network gives back the template's weights (q/k permuted back) and its metadata."""
    import gguf

    from sparring.tuning.dpo import load_gguf
    from sparring.tuning.gguf_export import write_f16_gguf

    template = embedded_model_path()
    out = tmp_path / "same.gguf"
    write_f16_gguf(load_gguf(template)[0], template, out)
    original, written = gguf.GGUFReader(str(template)), gguf.GGUFReader(str(out))
    assert [t.name for t in written.tensors] == [t.name for t in original.tensors]
    by_name = {t.name: t for t in written.tensors}
    for name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.7.ffn_down.weight", "token_embd.weight"):
        source = next(t for t in original.tensors if t.name == name)
        expected = gguf.quants.dequantize(source.data, source.tensor_type)
        actual = np.asarray(by_name[name].data, dtype=np.float32)
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() < 2e-3 * max(1.0, float(np.abs(expected).max())), name
    for key in ("tokenizer.chat_template", "tokenizer.ggml.tokens", "llama.block_count"):
        assert written.fields[key].contents() == original.fields[key].contents()


def test_a_damaged_adapter_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    from sparring.errors import ConfigError
    from sparring.tuning.dpo import load_gguf, merge_adapter

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 16, "target_modules": "all-linear"}')
    (adapter / "adapter_model.safetensors").write_text("garbage")  # truncated or edited by hand
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(adapter))}: cannot load the LoRA adapter .*delete the folder"):
        merge_adapter(load_gguf(embedded_model_path())[0], adapter)


def test_improve_smoke_from_a_run_to_a_tuned_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few DPO steps and a two-item evaluation: every stage's file, declared pair kinds, a rerun that reuses them."""
    from sparring.tuning import improve as improve_module
    from sparring.tuning.training_process import run_in_child

    in_child: list[str] = []

    def recorded(function: Any, *args: Any, say: Any) -> Any:
        in_child.append(function.__name__)
        return run_in_child(function, *args, say=say)

    monkeypatch.setattr(improve_module, "run_in_child", recorded)
    db = f"sqlite:///{tmp_path / 'loop.db'}"
    store = Store(db)
    source = run_experiment(parse_config(SOURCE), SOURCE, store).run_id
    out = tmp_path / "improved"
    args = ["improve", source, "--db", db, "-o", str(out), "--steps", "2", "--batch-size", "2", "--eval-limit", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "before/after in" in result.output and str(out / "after.gguf") in result.output
    # torch trains in child processes: beside it, the generating process's llama.cpp ran at half speed
    assert in_child == ["write_filter", "train_dpo", "write_base_and_tuned"]
    assert re.search(r"step 2/2: loss \d", result.output)  # the child's progress reaches the user
    total = 2 * (2 + 2 + 2 + 2)  # two targets, four held-out attacks of two items
    assert re.search(rf"run improve-\S+: {total}/{total} conversations, ", result.output), result.output

    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    kinds = {p["kind"] for p in pairs}
    assert {"picker:refusal", "helpful"} <= kinds <= {"safer-sample", "helpful", "picker:refusal"}  # no fixed refusals
    manifest = json.loads((out / "improve.json").read_text())
    # refusal pairs only where the filter PM (trained here on hh-rlhf comparisons, not the judge) flags the reply
    assert manifest["reply_filter"] == "hh-rlhf PM" and (out / "filter-pm" / "pm.json").is_file()
    assert "refusal (reply not flagged by the filter PM)" in manifest["pairs_left_out"]
    assert manifest["pairs"] == {k: sum(p["kind"] == k for p in pairs) for k in sorted(kinds)}
    assert manifest["safer_samples"] == 8  # flagged replies: the filter's pick of 8 samples, else left out
    assert all(p["chosen"] not in REFUSALS for p in pairs if p["kind"] == "safer-sample")
    unpicked = manifest["pairs_left_out"]["refusal (no sample the filter PM passes)"]
    flagged = unpicked + sum(p["kind"] == "safer-sample" for p in pairs)
    assert not flagged or f"safer samples: {flagged}/{flagged} flagged replies" in result.output
    assert manifest["training"]["steps"] == 2 and manifest["training"]["last_loss"] is not None
    assert manifest["training"]["precision"] == resolved_precision("auto")  # what "auto" meant on this CPU
    assert (out / "adapter" / "adapter_config.json").is_file()

    before, after = (out / "before.gguf").read_bytes(), (out / "after.gguf").read_bytes()
    assert before[:4] == after[:4] == b"GGUF" and before != after
    table = json.loads((out / "before_after.json").read_text())
    assert table["before"]["success"]["n"] == table["after"]["success"]["n"] == 2
    assert table["before"]["over_refusal"]["n"] == 2
    eval_run = manifest["eval_run"]
    assert {(t.name, t.model_type) for t in store.targets(eval_run)} == {("before", "model"), ("after", "dpo")}
    for stored in store.conversations(eval_run):
        assert stored.status == "finished" and stored.conversation.turns[1].text.strip()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert f"reusing {out / 'pairs.jsonl'}" in again.output and "reusing the adapter" in again.output
    assert len(in_child) == 3  # nothing trained again
    assert (out / "after.gguf").read_bytes() == after
    # the rerun only evaluated; the stages it reused keep the seconds of the run that did them
    rerun = json.loads((out / "improve.json").read_text())["seconds"]
    assert {"pairs_s", "training_s", "gguf_s", "evaluation_s"} <= rerun.keys()
    assert {k: rerun[k] for k in ("pairs_s", "training_s", "gguf_s")} == {
        k: manifest["seconds"][k] for k in ("pairs_s", "training_s", "gguf_s")}
    other = CliRunner().invoke(app, [*args, "--beta", "0.5"])
    assert other.exit_code == 3 and "with other inputs (recipe differ)" in other.output
    unfiltered = CliRunner().invoke(app, [*args, "--no-filter"])
    assert unfiltered.exit_code == 3 and "with other inputs (reply_filter, safer_samples differ)" in unfiltered.output
    refusals = CliRunner().invoke(app, [*args, "--safer-samples", "0"])
    assert refusals.exit_code == 3 and "with other inputs (safer_samples differ)" in refusals.output


def test_improve_errors_are_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(db).close()
    result = CliRunner().invoke(app, ["improve", "nope", "--db", db, "-o", str(tmp_path / "out")])
    assert result.exit_code == 3 and "no run 'nope'" in result.output
    assert not (tmp_path / "out").exists()
    toml = scripted_toml(turns=1, limit=2)
    run_id = run_experiment(parse_config(toml), toml, Store(db)).run_id
    result = CliRunner().invoke(app, ["improve", run_id, "--db", db, "-o", str(tmp_path / "out"),
                                      "--model", str(tmp_path / "missing.gguf")])
    assert result.exit_code == 3 and "--model: GGUF file not found" in result.output
    assert not (tmp_path / "out").exists()

    both = CliRunner().invoke(app, ["improve", run_id, "--db", db, "-o", str(tmp_path / "out"),
                                    "--no-filter", "--filter-pm", str(tmp_path)])
    assert both.exit_code == 2 and "--no-filter switches off" in both.output
    unpicked = CliRunner().invoke(app, ["improve", run_id, "--db", db, "-o", str(tmp_path / "out"),
                                        "--no-filter", "--safer-samples", "4"])
    assert unpicked.exit_code == 2 and "--safer-samples needs the filter PM" in unpicked.output
    assert not (tmp_path / "out").exists()

    busy = tmp_path / "busy"
    busy.mkdir()
    with (busy / ".improve.lock").open("a") as held:  # another improve at work on this folder
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = CliRunner().invoke(app, ["improve", run_id, "--db", db, "-o", str(busy)])
    assert result.exit_code == 3 and "another `sparring improve` is writing to this folder" in result.output
    assert [p.name for p in busy.iterdir()] == [".improve.lock"]

    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "inputs.json").write_text('{"source": "x",\n')  # a file of an earlier run, edited by hand
    result = CliRunner().invoke(app, ["improve", run_id, "--db", db, "-o", str(edited)])
    assert result.exit_code == 3 and f"{edited / 'inputs.json'}: line 2: not valid JSON" in result.output
    assert "Traceback" not in result.output
