"""The training stages' child process: another process, its lines forwarded, its errors typed, its death reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sparring.errors import ConfigError
from sparring.tuning.training_process import TrainingCrash, run_in_child

Log = Callable[[str], None]


def _pid_after_two_lines(first: str, log: Log) -> int:
    log(first)
    log("second")
    return os.getpid()


def _config_error(log: Log) -> None:
    raise ConfigError("adapter.partial: cannot write")


def _bug(log: Log) -> None:
    log("before the bug")
    raise KeyError("unexpected")


def _killed(log: Log) -> None:
    os._exit(9)  # as the kernel's OOM killer would leave it: no result, no error


def _said() -> tuple[list[str], Log]:
    lines: list[str] = []
    return lines, lines.append


def test_runs_in_another_process_and_forwards_its_lines_in_order() -> None:
    lines, say = _said()
    assert run_in_child(_pid_after_two_lines, "first", say=say) != os.getpid()
    assert lines == ["first", "second"]


def test_a_user_error_comes_back_as_itself() -> None:
    with pytest.raises(ConfigError, match=r"^adapter\.partial: cannot write$"):
        run_in_child(_config_error, say=lambda _: None)


def test_a_bug_comes_back_with_the_childs_traceback() -> None:
    lines, say = _said()
    with pytest.raises(TrainingCrash, match="KeyError: 'unexpected'") as caught:
        run_in_child(_bug, say=say)
    assert "in _bug" in str(caught.value) and lines == ["before the bug"]


def test_a_child_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(TrainingCrash, match="ended without a result \\(exit code 9\\)"):
        run_in_child(_killed, say=lambda _: None)


def _sleep_after_writing_pid(path: str, log: Log) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="the child's end is read from /proc (Linux)")
def test_a_killed_parent_takes_its_training_child_with_it(tmp_path: Path) -> None:
    """A SIGKILLed `improve` must not leave a child training into the folder the rerun resumes."""
    pid_file = tmp_path / "child.pid"
    code = ("import sys; sys.path[:0] = {path!r}; from test_training_process import _sleep_after_writing_pid; "
            "from sparring.tuning.training_process import run_in_child; "
            f"run_in_child(_sleep_after_writing_pid, {str(pid_file)!r}, say=print)").format(path=sys.path)
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None, "the child never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    status = Path(f"/proc/{child}/status")
    while status.is_file() and "\tZ" not in status.read_text():  # gone, or a zombie waiting to be reaped
        assert time.monotonic() < deadline, "the training child outlived its killed parent"
        time.sleep(0.05)
