"""DPO training's arithmetic: bf16 autocast where the CPU has it natively, fp32 elsewhere, and the record of which."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from sparring.cli.improve import Precision
from sparring.tuning.dpo import DpoRecipe, native_bf16, resolved_precision

FLAGS = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma {extra}\nbugs\t\t: spectre_v1\n"


@pytest.mark.parametrize(("extra", "native"), [("avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True),
                                               ("avx512f avx512bw", False), ("", False)])
def test_native_bf16_reads_the_cpu_flags(tmp_path: Path, extra: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(FLAGS.format(extra=extra))
    assert native_bf16(cpuinfo) is native


def test_an_unreadable_cpuinfo_means_fp32(tmp_path: Path) -> None:
    assert native_bf16(tmp_path / "missing") is False


def test_auto_resolves_by_the_cpu_and_an_explicit_choice_is_kept() -> None:
    assert resolved_precision("auto") == ("bf16" if native_bf16() else "fp32")
    assert resolved_precision("fp32") == "fp32" and resolved_precision("bf16") == "bf16"


def test_the_cli_offers_exactly_the_recipe_choices() -> None:
    assert {p.value for p in Precision} == set(get_args(DpoRecipe.model_fields["precision"].annotation))
    assert DpoRecipe().precision == "auto"


@pytest.mark.model
def test_bf16_trains_near_fp32_and_is_recorded(tmp_path: Path) -> None:
    """One step each way on the same pairs: bf16 really changes the arithmetic, and only slightly."""
    from sparring.attacks import attacks
    from sparring.models.base import Message
    from sparring.models.llamacpp import embedded_model_path
    from sparring.tuning.dpo import train_dpo
    from sparring.tuning.pairs import REFUSALS, PreferencePair

    items = attacks.create("hh-rlhf", {"limit": 2, "min_turns": 2}).items()
    pairs = [PreferencePair((Message("user", item.human_turns[0]),), REFUSALS[0], item.human_turns[1], "refusal",
                            f"hh#{i}") for i, item in enumerate(items)]
    losses = {}
    for precision in ("fp32", "bf16"):
        lines: list[str] = []
        result = train_dpo(pairs, embedded_model_path(), tmp_path / precision,
                           DpoRecipe(steps=1, batch_size=2, precision=precision), lines.append)
        assert result.precision == precision
        assert any(line.startswith("reference log-probabilities") and line.endswith(f"({precision})") for line in lines)
        assert json.loads((tmp_path / precision / "training.json").read_text())["precision"] == precision
        assert result.first_loss is not None
        losses[precision] = result.first_loss
    assert losses["bf16"] != losses["fp32"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * abs(losses["fp32"]) + 0.05
