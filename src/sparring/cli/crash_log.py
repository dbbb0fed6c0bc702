"""Where an unexpected exception's traceback goes: a log file, never the terminal (it may hold model output)."""

from __future__ import annotations

import os
import traceback
from datetime import UTC, datetime
from pathlib import Path

from sparring.redaction import redact


def crash_log_path() -> Path:
    """``$SPARRING_LOG_DIR/crash.log``, else ``$XDG_STATE_HOME/sparring/crash.log`` (``~/.local/state``)."""
    base = os.environ.get("SPARRING_LOG_DIR") or Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "sparring"
    return Path(base) / "crash.log"


def write_crash_log() -> Path | str:
    """Append the current exception's traceback; returns the file, or a note when even that fails."""
    path = crash_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()} pid {os.getpid()}\n{redact(traceback.format_exc())}\n")
    except OSError:
        return f"(no log: {path} is not writable)"
    return path
