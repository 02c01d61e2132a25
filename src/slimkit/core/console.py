"""Consoles shared by progress bars and the CLI: output on stdout, progress and errors on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

# Wide enough for the comparison table when output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)
