"""Consoles shared by progress bars and the CLI: output on stdout, progress and errors on stderr."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 100  # columns when output goes to a file or a pipe (COLUMNS overrides it)


def output_width(is_terminal: bool, environ: dict[str, str] | os._Environ[str] = os.environ
                 ) -> int | None:
    """The width tables are laid out for: the terminal's (None: rich asks it), ``COLUMNS``
    when set, else ``PIPE_WIDTH`` for a file or a pipe."""
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if is_terminal else PIPE_WIDTH


# text is never broken into lines (paths and commands stay whole); tables fit the width
console = Console(width=output_width(sys.stdout.isatty()), soft_wrap=True)
err_console = Console(stderr=True)


def print_table(table: Table) -> None:
    """Print ``table`` laid out for the console's width (its title and caption wrap too)."""
    console.print(table, soft_wrap=False)
