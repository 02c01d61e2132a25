"""Durations as people write them: ``90s``, ``15m``, ``1h30m``, or a number of seconds."""

from __future__ import annotations

import re

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"\s*(?:{_NUMBER}h)?\s*(?:{_NUMBER}m)?\s*(?:{_NUMBER}s?)?\s*")


def parse_duration(text: str | float | None) -> float | None:
    """``"15m"``, ``"90s"``, ``"1h"``, ``"1h30m"`` or seconds -> seconds (None stays None)."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    parts = _DURATION.fullmatch(text)
    if not parts or not any(parts.groups()):
        raise ValueError(f"expected a duration like 90s, 15m or 1h, got {text!r}")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s
