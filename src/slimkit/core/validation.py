"""Turn pydantic validation errors into one clear line that names the field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from slimkit.core.errors import SlimkitError

M = TypeVar("M", bound=BaseModel)


_PLAIN = re.compile(r"^[A-Za-z0-9_\-]+$")


def _join(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _PLAIN.match(str(part)):
            path += f"[{str(part)!r}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def describe(err: ValidationError, schema: type[BaseModel], prefix: str = "") -> str:
    """One line for the first error in ``err``, e.g. ``train.lr: must be > 0, got -1``."""
    first = err.errors()[0]
    path = _join(prefix, first["loc"])
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(schema.model_fields)) if len(first["loc"]) == 1 else ""
        hint = f"; allowed: {allowed}" if allowed else ""
        return f"{path}: unknown parameter{hint}"
    msg = first["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    if first["type"] == "missing":
        return f"{path}: {msg}"
    return f"{path}: {msg}, got {first.get('input')!r}"


def validate(schema: type[M], data: dict[str, Any], prefix: str = "",
             error: type[SlimkitError] = SlimkitError) -> M:
    """Validate ``data`` against ``schema``; raise ``error`` with one clear line if it fails."""
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise error(describe(err, schema, prefix)) from None
