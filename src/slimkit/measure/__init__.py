"""Step 2, analyze: metrics on a split and profiles of torch and onnxruntime models.

Names are imported lazily so that the onnxruntime probe process (``onnx_probe``) does not load
torch and its peak memory is the model's own.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ProfileSettings": "slimkit.measure.timing",
    "environment": "slimkit.measure.profile",
    "evaluate": "slimkit.measure.evaluate",
    "split_metrics": "slimkit.measure.evaluate",
    "task_metrics": "slimkit.measure.metrics",
    "model_stats": "slimkit.measure.profile",
    "predict": "slimkit.measure.evaluate",
    "profile_onnx": "slimkit.measure.profile",
    "profile_torch": "slimkit.measure.profile",
    "resolve_shape": "slimkit.measure.profile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'slimkit.measure' has no attribute {name!r}")
