"""The main job: `sparring run` with no config runs the built-in grid on the embedded model."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model


def sparring(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_DATA_HOME": str(env_home)}
    env.pop("SPARRING_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-c", "from sparring.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=1500, env=env, cwd=env_home)


def test_default_run_completes_on_the_embedded_model_and_shows_the_table(tmp_path: Path):
    ran = sparring("run", env_home=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (tmp_path / "sparring" / "sparring.db").is_file()  # the documented default location
    for target in ("smollm2-135m/plain", "smollm2-135m/prompted", "smollm2-135m/rejection-sampling"):
        assert target in ran.stdout
    assert "16/16" in ran.stdout and "(finished)" in ran.stdout  # 12 replayed dialogues + 4 generated openings
    table = " ".join(ran.stdout.split())
    assert "per attack" in table and "zero-shot" in table and "hh-rlhf" in table
    run_id = ran.stdout.split("run ", 1)[1].split(" ", 1)[0]

    shown = sparring("show", run_id, env_home=tmp_path)
    assert shown.returncode == 0 and "rejection sampling" in shown.stdout

    exported = sparring("export", run_id, "-o", "out", env_home=tmp_path)
    assert exported.returncode == 0, exported.stderr
    with gzip.open(tmp_path / "out" / "red_team_attempts.jsonl.gz", "rt") as handle:
        records = json.load(handle)
    assert len(records) == 48
    assert {r["model_type"] for r in records} == {"plain lm", "context distillation", "rejection sampling"}
    assert all(r["num_params"] == "135M" for r in records)

    again = sparring("run", env_home=tmp_path)  # the same command again: already finished, nothing redone
    assert again.returncode == 0 and "16/16" in again.stdout
