"""Progress of a run: a bar on a terminal, otherwise one plain line every few seconds (CI, logs, nohup)."""

from __future__ import annotations

import os
import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def line_interval() -> float:
    """Seconds between plain progress lines: ``$SPARRING_PROGRESS_SECONDS``, default 5."""
    try:
        return max(0.0, float(os.environ.get("SPARRING_PROGRESS_SECONDS", "5")))
    except ValueError:
        return 5.0


class RunProgress:
    """Counts finished conversations; draws a bar on a terminal, prints ``done/total, rate, ETA`` lines elsewhere."""

    def __init__(self, console: Console, interval: float | None = None) -> None:
        self.console = console
        self.interval = line_interval() if interval is None else interval
        self.done = 0
        self.total: int | None = None
        self.name = "run"
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._start = time.monotonic()
        self._base = 0  # conversations already finished when this session started (a resume)
        self._last_line = 0.0
        self._first = True

    def __enter__(self) -> RunProgress:
        if self.console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)
            self._bar.__enter__()
            self._task = self._bar.add_task("conversations", total=None)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, error, trace)
        elif self.total is not None and self.done > self._base:
            self._line()

    def planned(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self._start = time.monotonic()
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total, description=f"run {escape(name)}")

    def advance(self, count: int) -> None:
        if self._first:  # the engine's first report is what a resume finds already finished
            self._first, self._base = False, count
        self.done += count
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, count)
        elif time.monotonic() - self._last_line >= self.interval:
            self._line()

    def _line(self) -> None:
        self._last_line = time.monotonic()
        elapsed = max(self._last_line - self._start, 1e-9)
        fresh = self.done - self._base
        rate = fresh / elapsed
        total = self.total or 0
        left = max(total - self.done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 else "unknown"
        self.console.print(f"run {escape(self.name)}: {self.done}/{total} conversations, "
                           f"{rate * 60:.1f}/min, ETA {eta}", soft_wrap=True, highlight=False)
