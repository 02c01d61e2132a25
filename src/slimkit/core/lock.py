"""One writer per run folder: an OS file lock (``filelock``) held by every command that writes
a run, with the holder's pid beside it for the message a second writer gets. The OS releases
the lock when its process dies, so a killed run never leaves the folder locked."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from slimkit.core.atomic import remove_stale_temporaries
from slimkit.core.errors import StoreError

LOCK_FILE = ".slimkit.lock"
HOLDER_FILE = ".slimkit.writer"
LOCK_FILES = (LOCK_FILE, HOLDER_FILE)
_HELD: dict[Path, int] = {}  # folders this process holds, with its nesting depth
_LAST: list[Path] = []  # the last folder this process wrote (for the error log)


def last_written() -> Path | None:
    """The run folder this process last held the writer lock of, if any."""
    return _LAST[-1] if _LAST else None


def holder(folder: Path) -> str:
    """Who holds ``folder``'s lock, as the holder recorded it (``pid N on HOST``)."""
    try:
        data = json.loads((folder / HOLDER_FILE).read_text())
        return f"pid {int(data['pid'])} on {data['host']}, since {data['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded its pid yet"


@contextmanager
def writing(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the block (re-entrant within one process); a second
    writer gets one line naming the holder, and nothing in the folder is touched."""
    folder = Path(folder).resolve()
    if folder in _HELD:
        _HELD[folder] += 1
        try:
            yield
        finally:
            _HELD[folder] -= 1
        return
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"--out {folder} is a file; give a new or empty folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(f"{folder} is being written by another slimkit command "
                         f"({holder(folder)}); wait for it to finish or give another "
                         f"--out") from None
    (folder / HOLDER_FILE).write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": sys.argv[1:3],
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
    _HELD[folder] = 1
    _LAST[:] = [folder]
    remove_stale_temporaries(folder)  # ours now: what a killed writer left is garbage
    try:
        yield
    finally:
        del _HELD[folder]
        (folder / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()
        if created and all(p.name in LOCK_FILES for p in folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)  # a command that failed early: no trace
