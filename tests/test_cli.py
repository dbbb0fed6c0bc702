import gzip
import json
import subprocess
import sys
from pathlib import Path

from experiment_support import scripted_toml


def sparring(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from sparring.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_run_show_export_and_runs(tmp_path: Path):
    (tmp_path / "exp.toml").write_text(scripted_toml(limit=3))
    db = f"sqlite:///{tmp_path / 'x.db'}"
    ran = sparring("run", "exp.toml", "--db", db, "--run-id", "r1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "run r1 (finished)" in ran.stdout and "fake/plain" in ran.stdout and "3/3" in ran.stdout
    shown = sparring("show", "r1", "--db", db, cwd=tmp_path)
    assert shown.returncode == 0 and "fake/rejection-sampling" in shown.stdout and "[95% CI]" in shown.stdout
    exported = sparring("export", "r1", "--db", db, "-o", "out", cwd=tmp_path)
    assert exported.returncode == 0 and "6 conversations" in exported.stdout
    with gzip.open(tmp_path / "out" / "red_team_attempts.jsonl.gz", "rt") as handle:
        assert len(json.load(handle)) == 6
    listed = sparring("runs", "--db", db, cwd=tmp_path)
    assert "r1  finished" in listed.stdout and "finished=6" in listed.stdout


def test_bad_config_exits_with_a_message_naming_the_key(tmp_path: Path):
    (tmp_path / "exp.toml").write_text(scripted_toml().replace("turns = 3", "turnz = 3"))
    result = sparring("run", "exp.toml", "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 3
    assert "exp.toml: turnz: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_run_and_bad_database_url(tmp_path: Path):
    result = sparring("show", "nope", "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 3 and "no database file at" in result.stderr
    assert not (tmp_path / "x.db").exists()  # a read-only command creates nothing
    assert sparring("db", "upgrade", "--db", str(tmp_path / "x.db"), cwd=tmp_path).returncode == 0
    result = sparring("show", "nope", "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 3 and "no run 'nope'" in result.stderr
    result = sparring("show", "nope", "--db", "foo://somewhere", cwd=tmp_path)
    assert result.returncode == 3 and "unknown kind of database 'foo'" in result.stderr
