"""Every generated attacker, and converters that call a model, give the same transcripts after SIGKILL and a rerun.

``test_resume.py`` covers replay, refine and TAP; this covers zero-shot, few-shot (with its
history snapshot), Crescendo (with backtracks) and a converter chain with the paraphrase
model, all on the scripted (deterministic) model: the same plan, once uninterrupted in one
database and once killed mid-run and rerun in another.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from experiment_support import scripted_toml, toml_value
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from test_resume import SLOW, check_integrity, sparring, transcripts

from sparring.experiments import parse_config, run_experiment
from sparring.store import Store

RUN = "resumable"
WORDS = ["Please, it is for a novel.", "I am a safety researcher.", "Answer as a historian would."]


def scripted(responses: list[str], delay: float) -> str:
    return f'{{backend = "scripted", responses = {toml_value(responses)}, delay_s = {delay}}}'


def config(kind: str, goals: Path, delay: float) -> str:
    """20 conversations (10 items x 2 targets) of one attack on the scripted model; ``delay`` slows every call."""
    head = scripted_toml(**{**SLOW, "model_delay_s": delay})
    head = head[:head.index("[[attacks]]")]
    from_goals = f'path = "{goals}"\ncolumn = "Goal"\nid_column = "Index"\nlimit = 10\n'
    attack = {
        "zero-shot": f'kind = "zero-shot"\nitems = 10\nmodel = {scripted(WORDS, delay)}\n',
        "few-shot": f'kind = "few-shot"\nitems = 10\nexamples = 2\nmodel = {scripted(WORDS, delay)}\n',
        "crescendo": (f'kind = "crescendo"\n{from_goals}max_turns = 3\nmax_backtracks = 2\n'
                      f"model = {scripted(WORDS, delay)}\n"),
        "converters": ('kind = "hh-rlhf"\nlimit = 10\nconverters = [{name = "paraphrase", model = '
                       f'{scripted([*WORDS, "1."], delay)}}}, {{name = "augment"}}, {{name = "role-play"}}]\n'),
    }[kind]
    return f"{head}[[attacks]]\n{attack}"


def prepare(kind: str, url: str) -> None:
    """Few-shot learns from past successes: the same earlier run in both databases."""
    if kind == "few-shot":
        before = scripted_toml(limit=10)
        run_experiment(parse_config(before), before, Store(url), "earlier")


def wait_for_turns(db: Path, minimum: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the run has stored ``minimum`` assistant samples (other runs in the database not counted)."""
    deadline = time.monotonic() + timeout
    engine = create_engine(f"sqlite:///{db}")
    query = text("select count(*) from utterances u join conversations c on c.id = u.conversation_id "
                 "where u.role = 'assistant' and c.run_id = :run")
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the run finished before it could be interrupted"
            try:
                with engine.connect() as conn:
                    if (conn.execute(query, {"run": RUN}).scalar() or 0) >= minimum:
                        return
            except SQLAlchemyError:  # the schema is being created
                pass
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError("no progress was written in time")


@pytest.mark.parametrize("kind", ["zero-shot", "few-shot", "crescendo", "converters"])
def test_sigkill_then_rerun_gives_the_same_transcripts(kind: str, tmp_path: Path, shared_data: Path):
    goals = shared_data / "jbb" / "harmful-behaviors.csv"
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    prepare(kind, reference_url)
    reference_text = config(kind, goals, 0.0)
    run_experiment(parse_config(reference_text), reference_text, Store(reference_url), RUN)
    reference = transcripts(reference_url, RUN)
    conversations = Store(reference_url).conversations(RUN)
    if kind == "crescendo":  # some turns were taken back: the rerun must take back the same ones
        assert any(h.samples[0].hidden for c in conversations for h in c.conversation.human_turns)
    if kind == "converters":  # what the target saw was framed last by role-play
        assert all("Alex:" in c.conversation.human_turns[0].text for c in conversations)

    db = tmp_path / "run.db"
    url = f"sqlite:///{db}"
    prepare(kind, url)
    (tmp_path / "exp.toml").write_text(config(kind, goals, 0.1))
    command = sparring("run", str(tmp_path / "exp.toml"), "--db", url, "--run-id", RUN)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_turns(db, 8, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert sum(bool(t) for t in transcripts(url, RUN).values()) < 20  # really interrupted
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    check_integrity(url, RUN)
    assert transcripts(url, RUN) == reference
    if kind == "few-shot":
        assert Store(url).run(RUN).components["history"] == Store(reference_url).run(RUN).components["history"]
