"""The consoles the CLI prints to: results on stdout, progress and errors on stderr."""

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 140)  # piped output keeps whole table rows
err = Console(stderr=True)
