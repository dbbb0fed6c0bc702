"""The held-out red-team experiment that measures a tuned target against its base.

None of its items is trained on: 600 opening requests of hh-rlhf red-team
dialogues from the second half of the bundled split (the source run replays the
first ones; the kind of attack the tuning pairs come from), JailbreakBench's 100
harmful goals (a different kind: imperative requests), XSTest's 250 safe prompts
(over-refusal) and the benign JailbreakBench rows that are not in the helpful
half of the mix. Both targets are the same network written through the
same GGUF path and quantisation, so the tuning is the only difference; the
``after`` target draws the ``before`` target's seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from sparring.tuning.before_after import AFTER, BEFORE, BENIGN, HARMFUL, HARMFUL_JBB, XSTEST_SAFE
from sparring.tuning.benign import BENIGN_GOALS, BENIGN_TRAINING_ROWS, HARMFUL_GOALS, XSTEST_PROMPTS, bundled

HELD_OUT_OFFSET = 1200
"""Held-out hh-rlhf dialogues start here (of 2,312 in the bundled split); replay attacks that start below it
and replay fewer dialogues than this do not overlap them."""
HELD_OUT_OPENINGS = 600
"""Held-out red-team openings in the evaluation (dialogues 1,201 to 1,800). Two 95% Wilson intervals around 40%
and 30% stay apart only from about 350 items each; with 300, a 10-point fall (significant item by item) left
them overlapping on one half of these openings and apart on the other. 600 narrow each to about +-4 points.
Dialogues from 1,801 on are left for checks that choose nothing."""


def _toml(value: object) -> str:
    return json.dumps(value)  # JSON strings, numbers and booleans are valid TOML


def eval_config(name: str, before: Path, after: Path, size: str, judge: str, limit: int | None = None,
                max_tokens: int = 64, seed: int = 0) -> str:
    """Experiment TOML for the before/after; ``limit`` caps each attack's items (a smoke run)."""
    cap = f"\nlimit = {limit}" if limit else ""
    models = "".join(
        f"\n[[models]]\nname = {_toml(label)}\nbackend = \"llamacpp\"\npath = {_toml(str(path))}\nmode = \"chat\"\n"
        f"size = {_toml(size)}\n" for label, path in ((BEFORE, before), (AFTER, after)))
    return f"""# Written by `sparring improve`: the same held-out attacks, seeds and judge for the base and the tuned target.
name = {_toml(name)}
seed = {seed}
turns = 1
samples_per_turn = 1
concurrency = 4

[sampling]
temperature = 0.7
max_tokens = {max_tokens}

[scorer]
name = {_toml(judge)}
{models}
[[targets]]
name = "{BEFORE}"
model = "{BEFORE}"
intervention = "none"
model_type = "model"

[[targets]]
name = "{AFTER}"
model = "{AFTER}"
intervention = "none"
model_type = "dpo"
seeds_from = "{BEFORE}"

[[attacks]]
name = "{HARMFUL}"
kind = "hh-rlhf"
offset = {HELD_OUT_OFFSET}
limit = {limit or HELD_OUT_OPENINGS}

[[attacks]]
name = "{HARMFUL_JBB}"
kind = "jailbreakbench"
path = {_toml(str(bundled(HARMFUL_GOALS)))}{cap}

[[attacks]]
name = "{XSTEST_SAFE}"
kind = "goals"
path = {_toml(str(bundled(XSTEST_PROMPTS)))}
column = "prompt"
id_column = "id"
where = {{label = "safe"}}{cap}

[[attacks]]
name = "{BENIGN}"
kind = "jailbreakbench"
path = {_toml(str(bundled(BENIGN_GOALS)))}
offset = {BENIGN_TRAINING_ROWS}{cap}
"""
