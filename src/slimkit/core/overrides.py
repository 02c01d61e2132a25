"""``--set key=value`` overrides: parse the value like YAML, then route it by its dotted key."""

from __future__ import annotations

from typing import Any

import yaml

from slimkit.core.errors import RecipeError


def parse_value(text: str) -> Any:
    """YAML scalar parsing, plus numbers YAML 1.1 leaves as strings (``1e-5``)."""
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_set(items: list[str]) -> list[tuple[list[str], Any]]:
    """``["train.lr=0.01"]`` -> ``[(["train", "lr"], 0.01)]``; malformed items raise RecipeError."""
    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise RecipeError(f"--set {item!r}: expected key=value, e.g. train.lr=0.01")
        parsed.append((parts, parse_value(raw)))
    return parsed


BASELINE_SECTIONS = ("model", "train", "profile")


def split_baseline_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """Route ``model.*``, ``train.*`` and ``profile.*`` overrides into one dict per section."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in BASELINE_SECTIONS}
    for parts, value in parse_set(items):
        if parts[0] not in sections or len(parts) != 2:
            raise RecipeError(f"--set {'.'.join(parts)}: expected model.<param>, train.<param> "
                              f"or profile.<param> (see `slimkit models`, "
                              f"`slimkit baseline --help`)")
        sections[parts[0]][parts[1]] = value
    return sections
