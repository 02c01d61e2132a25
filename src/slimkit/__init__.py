"""slimkit: make PyTorch models faster, smaller and more accurate, and prove it.

The public Python API (``slimkit.api``). Names are imported on first use, so ``import slimkit``
stays cheap: torch and onnxruntime load in seconds, and the onnxruntime probe process must not
load torch at all.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("slimkit")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0+unknown"

_EXPORTS = {
    "baseline": "slimkit.api",
    "run_recipe": "slimkit.api",
    "optimize": "slimkit.api",
    "load_run": "slimkit.api",
    "export": "slimkit.api",
    "explain": "slimkit.api",
    "profile": "slimkit.api",
    "load_recipe": "slimkit.pipeline.recipe",
    "Recipe": "slimkit.pipeline.recipe",
    "Run": "slimkit.core.runs",
    "Candidate": "slimkit.core.runs",
    "TrainConfig": "slimkit.training.config",
    "ProfileSettings": "slimkit.measure.timing",
    "SlimkitError": "slimkit.core.errors",
}

__all__ = [
    "Candidate",
    "ProfileSettings",
    "Recipe",
    "Run",
    "SlimkitError",
    "TrainConfig",
    "__version__",
    "baseline",
    "explain",
    "export",
    "load_recipe",
    "load_run",
    "optimize",
    "profile",
    "run_recipe",
]

if TYPE_CHECKING:
    from slimkit.api import baseline, explain, export, load_run, optimize, profile, run_recipe
    from slimkit.core.errors import SlimkitError
    from slimkit.core.runs import Candidate, Run
    from slimkit.measure.timing import ProfileSettings
    from slimkit.pipeline.recipe import Recipe, load_recipe
    from slimkit.training.config import TrainConfig


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'slimkit' has no attribute {name!r}")
