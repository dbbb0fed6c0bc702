"""Every bad input a user can give the CLI: one line naming the file, record or key, a documented exit code,
nothing half-written, no traceback. The exit codes are ``sparring.cli.exit_codes``."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_support import scripted_toml
from typer.testing import CliRunner

from sparring.cli import app, exit_codes
from sparring.datasets.export import TRANSCRIPTS
from sparring.experiments import parse_config, run_experiment
from sparring.store import Store

runner = CliRunner()
PAIRS = Path(__file__).parents[1] / "src" / "sparring" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def cli(*args: str, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    if cwd is None:
        return runner.invoke(app, list(args))
    before = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, list(args))
    finally:
        os.chdir(before)


def error_line(result, code: int = exit_codes.INPUT) -> str:  # type: ignore[no-untyped-def]
    """The ``error:`` line that ends stderr (progress may come before it); no traceback, no other exit code."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = result.stderr.replace("\n", " ")  # a long line may be wrapped
    assert text.count("error: ") == 1, result.stderr
    assert "Traceback" not in result.output
    return " ".join(text[text.index("error: "):].split())


def released_file(path: Path, n: int = 2) -> Path:
    """A small file in the released format from real hh-rlhf transcripts."""
    with gzip.open(PAIRS, "rt", encoding="utf-8") as handle:
        transcripts = [json.loads(next(handle))["rejected"] for _ in range(n)]
    records = [{"transcript": t, "min_harmlessness_score_transcript": 0.0, "num_params": "1M", "model_type": "plain lm",
                "rating": 1.0, "task_description": "a task", "task_descripton_harmlessness_score": 0.0,
                "red_team_member_id": 0, "is_upworker": False, "tags": None} for t in transcripts]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(records, handle)
    return path


def finished_run(tmp_path: Path, **overrides: object) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    text = scripted_toml(limit=2, **overrides)
    store = Store(url)
    outcome = run_experiment(parse_config(text), text, store)
    store.close()
    return url, outcome.run_id


# -- files --------------------------------------------------------------------------------------------------------

def test_a_config_that_is_not_utf8_names_the_file_and_line(tmp_path: Path):
    (tmp_path / "exp.toml").write_bytes(b'name = "x"\nturns = 2\n# caf\xe9\n')
    line = error_line(cli("run", str(tmp_path / "exp.toml"), "--db", str(tmp_path / "x.db")))
    assert f"{tmp_path / 'exp.toml'}:3: not UTF-8" in line
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gzip_is_named_by_score_and_report(tmp_path: Path, damage: str):
    data = released_file(tmp_path / "good.json.gz").read_bytes()
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:20] + bytes(200) + data[220:])
    for command in (["score", str(bad), "--scorer", "refusal"], ["report", str(bad), "-o", str(tmp_path / "r.html")]):
        line = error_line(cli(*command))
        assert str(bad) in line and ("gzip" in line or "JSON" in line), line
    assert not list(tmp_path.glob("bad.scored*")) and not (tmp_path / "r.html").exists()


def test_invalid_utf8_inside_a_released_or_pairs_file(tmp_path: Path):
    released = tmp_path / "released.json"
    released.write_bytes(b'[{"transcript": "\\n\\nHuman: caf\xe9"}]')
    assert str(released) in error_line(cli("score", str(released), "--scorer", "refusal"))
    pairs = tmp_path / "pairs.jsonl"
    good = '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: go away"}\n'
    pairs.write_bytes(good.encode() * 3 + b'{"chosen": "caf\xe9"}\n')
    line = error_line(cli("score", str(pairs), "--scorer", "refusal"))
    assert f"{pairs}:4: not UTF-8" in line
    assert not (tmp_path / "pairs.scored.jsonl").exists()


def test_an_empty_or_non_array_json_file_says_what_was_expected(tmp_path: Path):
    for name, content in (("empty.json", ""), ("object.json", '{"transcript": "x"}')):
        (tmp_path / name).write_text(content)
        line = error_line(cli("score", str(tmp_path / name), "--scorer", "refusal"))
        assert f"{tmp_path / name}: a .json file must be the released format, ONE JSON array" in line
        assert "unsupported file type" not in line


def test_an_empty_gzip_is_an_error_not_zero_records(tmp_path: Path):
    (tmp_path / "empty.jsonl.gz").write_bytes(b"")
    line = error_line(cli("score", str(tmp_path / "empty.jsonl.gz"), "--scorer", "refusal"))
    assert "no comparison pairs (the file is empty)" in line
    with gzip.open(tmp_path / "empty-array.json.gz", "wt") as handle:
        handle.write("[]")
    assert "no transcripts" in error_line(cli("score", str(tmp_path / "empty-array.json.gz"), "--scorer", "refusal"))


def test_an_output_that_cannot_be_written_is_named_and_nothing_is_left(tmp_path: Path):
    # Tests run as root, so permissions do not stop a write; a path through a file fails the same way.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    source = released_file(tmp_path / "in.json.gz")
    line = error_line(cli("score", str(source), "--scorer", "refusal", "-o", str(blocker / "out.json.gz")))
    assert f"{blocker}/out.json.gz" in line and "cannot write" in line
    url, run_id = finished_run(tmp_path)
    assert "cannot write" in error_line(cli("export", run_id, "--db", url, "-o", str(blocker / "export")))
    assert "cannot write" in error_line(cli("report", str(source), "--no-map", "-o", str(blocker / "r.html")))


# -- configs and components ------------------------------------------------------------------------------------------

def test_a_non_gguf_model_file_names_the_config_key(tmp_path: Path):
    (tmp_path / "weights.gguf").write_text("not a model")
    config = scripted_toml(limit=1).replace('backend = "scripted"', 'backend = "llamacpp"\npath = "weights.gguf"')
    (tmp_path / "exp.toml").write_text(config)
    line = error_line(cli("run", str(tmp_path / "exp.toml"), "--db", str(tmp_path / "x.db")))
    assert f"models[0].path: {tmp_path / 'weights.gguf'} is not a GGUF model file" in line


def test_a_missing_attack_file_names_the_config_key(tmp_path: Path):
    config = scripted_toml(limit=1).replace('kind = "hh-rlhf"', 'kind = "hh-rlhf"\npath = "missing.jsonl"')
    (tmp_path / "exp.toml").write_text(config)
    line = error_line(cli("run", str(tmp_path / "exp.toml"), "--db", str(tmp_path / "x.db")))
    assert f"attacks[0].path: file not found: {tmp_path / 'missing.jsonl'}" in line


def test_more_samples_than_rejection_sampling_draws_is_a_config_error(tmp_path: Path):
    (tmp_path / "exp.toml").write_text(scripted_toml(limit=1, samples_per_turn=5))  # the RS target has k = 4
    line = error_line(cli("run", str(tmp_path / "exp.toml"), "--db", str(tmp_path / "x.db")))
    assert "exp.toml: targets[1].k: keeps 5 samples per turn (samples_per_turn = 5) but draws only k = 4" in line
    assert not (tmp_path / "x.db").exists()


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "dialogues.jsonl.gz").write_bytes(PAIRS.read_bytes())
    config = scripted_toml(limit=1).replace('kind = "hh-rlhf"', 'kind = "hh-rlhf"\npath = "dialogues.jsonl.gz"')
    config = f'database = "runs.db"\n{config}'
    (folder / "exp.toml").write_text(config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("run", "../experiments/exp.toml", cwd=elsewhere)
    assert result.exit_code == 0, result.output
    assert (folder / "runs.db").is_file() and not (elsewhere / "runs.db").exists()


def test_a_target_can_be_labelled_with_each_of_the_papers_model_types(tmp_path: Path):
    text = scripted_toml(limit=1).replace('intervention = "plain"', 'intervention = "none"\nmodel_type = "rlhf"')
    url = f"sqlite:///{tmp_path / 'x.db'}"
    store = Store(url)
    outcome = run_experiment(parse_config(text), text, store)
    store.close()
    assert cli("export", outcome.run_id, "--db", url, "-o", str(tmp_path / "out")).exit_code == 0
    with gzip.open(tmp_path / "out" / TRANSCRIPTS, "rt") as handle:
        assert {r["model_type"] for r in json.load(handle)} == {"rlhf", "rejection sampling"}
    for model_type in ("plain lm", "context distillation", "rejection sampling", "rlhf"):
        parse_config(text.replace('model_type = "rlhf"', f'model_type = "{model_type}"'))
    (tmp_path / "bad.toml").write_text(text.replace('model_type = "rlhf"', 'model_type = "rhlf"'))
    line = error_line(cli("run", str(tmp_path / "bad.toml"), "--db", url))
    assert "targets.0.model_type: unknown model_type 'rhlf'" in line.replace("[0]", ".0")


# -- databases --------------------------------------------------------------------------------------------------------

def test_a_mistyped_database_is_never_created_by_commands_that_only_read(tmp_path: Path):
    missing = tmp_path / "typo.db"
    for command in (["show"], ["runs"], ["export", "some-run"], ["report", "some-run"]):
        line = error_line(cli(*command, "--db", str(missing)))
        assert "no database file at" in line or "no database at" in line, line
    assert not missing.exists()
    (tmp_path / "notes.db").write_text("plain text, not a database")
    assert "is unusable: file is not a database" in error_line(cli("runs", "--db", str(tmp_path / "notes.db")))
    assert "unknown kind of database 'foo'" in error_line(cli("runs", "--db", "foo://x"))


def test_commands_that_only_read_do_not_upgrade_an_old_schema(tmp_path: Path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from sparring.store.database import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    line = error_line(cli("show", "--db", url))
    assert "schema 0003" in line and "sparring db upgrade" in line
    with engine.connect() as connection:
        assert connection.execute(text("select version_num from alembic_version")).scalar() == "0003"
    assert cli("db", "upgrade", "--db", url).exit_code == 0
    assert "no runs in this database" in error_line(cli("show", "--db", url))


# -- runs ------------------------------------------------------------------------------------------------------------

def test_a_run_whose_conversations_all_fail_exits_4(tmp_path: Path):
    config = scripted_toml(limit=1).replace(
        'backend = "scripted"', 'backend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmax_retries = 0')
    (tmp_path / "exp.toml").write_text(config)
    result = cli("run", str(tmp_path / "exp.toml"), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == exit_codes.RUN_FAILED, result.output
    assert "2 of 2 conversations failed" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_a_crash_mid_run_marks_the_run_failed_and_show_says_how_to_resume(tmp_path: Path, monkeypatch):
    from sparring.experiments.engine import Engine
    from sparring.experiments.summary import summarize

    real = Engine._run_unit
    calls = 0

    async def broken(self, *args):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:  # one conversation hits a bug while the others are running
            raise RuntimeError("a bug")
        return await real(self, *args)

    monkeypatch.setattr(Engine, "_run_unit", broken)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    text = scripted_toml(limit=4, concurrency=8, model_delay_s=0.05)
    store = Store(url)
    with pytest.raises(RuntimeError):
        run_experiment(parse_config(text), text, store, "crashed")
    assert summarize(store, "crashed").status == "failed"
    statuses = {c.status for c in store.conversations("crashed")}
    assert statuses <= {"open", "finished"}  # the others were stopped, not left half-written or marked failed
    store.close()
    shown = cli("show", "--db", url)  # no run id: the latest run
    assert shown.exit_code == 0
    assert "run crashed is failed: stopped by an error" in " ".join(shown.output.split())
    monkeypatch.undo()  # the bug fixed: the same command resumes and finishes
    store = Store(url)
    assert run_experiment(parse_config(text), text, store, "crashed").finished == 8
    assert summarize(store, "crashed").status == "finished"
    store.close()


def test_an_internal_error_is_one_line_exit_70_and_the_traceback_goes_to_a_log(tmp_path: Path):
    code = ("import sparring.cli.experiments as r\n"
            "def boom(*a, **k):\n    raise ZeroDivisionError('boom')\n"
            "r.open_for_reading = boom\n"
            "from sparring.cli import main; main()")
    env = {**os.environ, "SPARRING_LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run([sys.executable, "-c", code, "runs"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == exit_codes.INTERNAL
    assert result.stderr.strip().splitlines() == [f"internal error (a bug in sparring); the traceback is in "
                                                  f"{tmp_path / 'logs' / 'crash.log'}"]
    assert "ZeroDivisionError: boom" in (tmp_path / "logs" / "crash.log").read_text()


# -- newcomer experience -----------------------------------------------------------------------------------------------

def test_version_components_and_the_latest_run(tmp_path: Path):
    from importlib.metadata import version

    assert cli("--version").stdout.strip() == f"sparring {version('sparring')}"
    listed = cli("components", "--json")
    assert listed.exit_code == 0
    components = json.loads(listed.stdout)
    rs = next(c for c in components["interventions"] if c["name"] == "rejection-sampling")
    assert {"name": "k", "type": "int", "required": False, "default": 16, "help": "samples drawn per turn"} in rs["arguments"]
    assert {c["name"] for c in components["scorers"]} >= {"pm", "refusal", "guard", "llm-judge", "composite"}
    assert "k (int, default 16)" in cli("components", "interventions").stdout
    assert cli("components", "nope").exit_code == exit_codes.USAGE
    url, run_id = finished_run(tmp_path)
    shown = cli("show", "--db", url)
    assert shown.exit_code == 0 and f"run {run_id} (finished)" in shown.stdout


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path):
    (tmp_path / "exp.toml").write_text(scripted_toml(limit=3))
    env = {**os.environ, "SPARRING_PROGRESS_SECONDS": "0"}
    result = subprocess.run([sys.executable, "-c", "from sparring.cli import main; main()", "run", "exp.toml",
                             "--db", str(tmp_path / "x.db")], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "conversations," in line]
    assert len(lines) >= 6 and lines[-1].startswith("run scripted-") and "6/6 conversations" in lines[-1]
    assert "/min, ETA" in lines[-1]


def test_the_default_picker_is_random_and_a_scorer_picker_is_reported(tmp_path: Path):
    url, run_id = finished_run(tmp_path, picker="random")
    store = Store(url)
    assert store.pairs(run_id) == []  # a pick by seed is no judgement: no comparison pairs
    assert parse_config(scripted_toml().replace('[picker]\nname = "refusal"\n', "")).picker.name == "random"
    store.close()
    assert "picker: random" in cli("show", run_id, "--db", url).stdout
    other = tmp_path / "scorer-picks"
    other.mkdir()
    url, run_id = finished_run(other)  # scripted_toml declares the scorer as the picker
    assert "the minimum is biased downward" in " ".join(cli("show", run_id, "--db", url).stdout.split())


def test_report_reads_an_export_directory_and_warns_when_scorers_differ(tmp_path: Path):
    url, run_id = finished_run(tmp_path)
    assert cli("export", run_id, "--db", url, "-o", str(tmp_path / "out")).exit_code == 0
    result = cli("report", str(tmp_path / "out"), "--no-map", "-o", str(tmp_path / "r.html"),
                 "--compare", run_id, "--db", url)
    assert result.exit_code == 0, result.output
    assert "the scorer behind" in " ".join(result.stderr.split())  # the released file does not record its scorer
    html = (tmp_path / "r.html").read_text()
    assert "1,331.000" not in html and "['" not in html


@pytest.mark.parametrize(("args", "says"), [
    (["--pool-layers", "0"], "pool_layers 1-6"),
    (["--upper-layers", "1"], "pool_layers > 1 needs a frozen encoder"),
])
def test_an_impossible_judge_recipe_is_a_usage_error(args: list[str], says: str):
    """`pm cv` checks the recipe before loading any data: a usage error naming the option, no traceback."""
    result = cli("pm", "cv", *args)
    assert result.exit_code == exit_codes.USAGE, result.output
    assert says in " ".join(result.output.split()) and "Traceback" not in result.output


def test_ctrl_c_in_a_command_says_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    """Typer turns a KeyboardInterrupt into a silent Exit(130); the user still gets the line, with its code."""
    from sparring import cli as cli_module
    from sparring.tuning import improve as improve_module

    def stopped(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(improve_module, "improve", stopped)
    monkeypatch.setattr(sys, "argv", ["sparring", "improve", "some-run", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                                      "-o", str(tmp_path / "out")])
    assert cli_module._invoke() == exit_codes.INTERRUPTED == 130
    assert capfd.readouterr().err.strip().splitlines()[-1] == "interrupted"
