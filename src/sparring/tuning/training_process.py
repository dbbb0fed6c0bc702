"""The training stages of ``sparring improve`` run in a child process, so the process that generates never loads torch.

llama.cpp and the CPU build of torch both run on OpenMP (libgomp). After the
filter PM and DPO trained in the same process, the held-out evaluation that
followed ran at 30 conversations a minute; the same evaluation resumed in a
fresh process ran at 66 (``benchmarks/bench_generation_beside_torch.py``
measures the two side by side). Training in a child keeps torch's threads,
its libgomp and its memory (12 GB after DPO) out of the generating process,
and the child's memory goes back when it ends.

The child is started fresh (``spawn``), its progress lines are forwarded to
``say``, and it dies with its parent (Linux): a killed ``improve`` leaves no
orphan training into the folder a rerun resumes.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from sparring.errors import SparringError

T = TypeVar("T")
Say = Callable[[str], None]

_SAY, _RESULT, _ERROR, _CRASH = "say", "result", "error", "crash"
_PR_SET_PDEATHSIG = 1


class TrainingCrash(RuntimeError):
    """The child failed in a way no user can act on; the message holds its traceback for the log."""


def run_in_child(function: Callable[..., T], *args: Any, say: Say) -> T:
    """``function(*args, log)`` in a fresh process: its ``log`` lines go to ``say``, its result or error returns.

    ``function`` and ``args`` must pickle (a module-level function, plain data).
    A :class:`SparringError` raised in the child is raised here as it was; any
    other error becomes a :class:`TrainingCrash` carrying the child's traceback.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, os.getpid(), function, args), name="sparring-training", daemon=True)
    child.start()
    sender.close()  # the child holds the only sending end: its death ends the pipe
    try:
        while True:
            try:
                kind, value = receiver.recv()
            except EOFError:
                child.join()
                raise TrainingCrash(f"the training process ended without a result (exit code {child.exitcode})") from None
            if kind == _SAY:
                say(value)
            elif kind == _RESULT:
                return value  # type: ignore[no-any-return]
            elif kind == _ERROR:
                raise value
            else:
                raise TrainingCrash(f"the training process failed:\n{value}")
    finally:
        receiver.close()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()


def _child_main(sender: Connection, parent: int, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the kernel was asked
        return
    try:
        result = function(*args, lambda line: sender.send((_SAY, line)))
    except KeyboardInterrupt:
        return  # the parent got the same Ctrl-C and stops the command
    except SparringError as error:
        sender.send((_ERROR, error))
    except BaseException:  # noqa: BLE001  (anything else is the parent's internal error, with this traceback)
        sender.send((_CRASH, traceback.format_exc()))
    else:
        sender.send((_RESULT, result))
    finally:
        sender.close()


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
