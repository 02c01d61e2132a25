"""slimkit: make PyTorch models faster, smaller and more accurate, and prove it.

The public Python API. Names are imported lazily, so ``import slimkit`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "baseline": "slimkit.pipeline.baseline",
    "run_recipe": "slimkit.pipeline.engine",
    "optimize": "slimkit.pipeline.optimize",
    "load_recipe": "slimkit.recipe",
    "Recipe": "slimkit.recipe",
    "load_run": "slimkit.api",
    "export": "slimkit.api",
    "explain": "slimkit.api",
    "profile": "slimkit.api",
    "Run": "slimkit.pipeline.run",
    "Candidate": "slimkit.pipeline.run",
    "TrainConfig": "slimkit.training.config",
    "ProfileSettings": "slimkit.measure.timing",
    "SlimkitError": "slimkit.errors",
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
    from slimkit.api import explain, export, load_run, profile
    from slimkit.errors import SlimkitError
    from slimkit.measure.timing import ProfileSettings
    from slimkit.pipeline.baseline import baseline
    from slimkit.pipeline.engine import run_recipe
    from slimkit.pipeline.optimize import optimize
    from slimkit.pipeline.run import Candidate, Run
    from slimkit.recipe import Recipe, load_recipe
    from slimkit.training.config import TrainConfig


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'slimkit' has no attribute {name!r}")
