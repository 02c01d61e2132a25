"""Step 3, techniques. Importing this package registers the built-in ones."""

from slimkit.techniques import distill, export, prune, quantize, train, tune  # noqa: F401  (registers the techniques)
from slimkit.techniques.base import (
    TECHNIQUES,
    Context,
    Technique,
    TechniqueConfig,
    register_technique,
)

__all__ = ["TECHNIQUES", "Context", "Technique", "TechniqueConfig", "register_technique"]
