"""Atomic file writes: write a temporary file next to the target, fsync, then rename.

The file gets the mode a plain ``open`` would (0666 less the umask), not mkstemp's 0600, so run
folders can be shared. A write killed midway leaves a ``.NAME.*.tmp`` file, which
``remove_stale_temporaries`` deletes when the next writer takes the folder's lock."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # read once: setting the umask to read it is not thread-safe


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files that killed writes left under ``folder`` (call it only while
    holding the folder's writer lock); returns how many were removed."""
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed onto ``path``.
    On failure the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically produce ``path`` with ``writer(tmp_path)``."""
    with atomic_path(path) as tmp:
        writer(tmp)
