"""Step 3, techniques. Importing this package registers the built-in ones."""

from slimkit.techniques import (  # noqa: F401  (registers the techniques)
    arch,
    distill,
    export,
    prune,
    quantize,
    train,
    tune,
)
from slimkit.techniques.base import (
    ROLES,
    TECHNIQUES,
    Context,
    PrefixedTrial,
    Role,
    SearchSpec,
    Seed,
    Technique,
    TechniqueConfig,
    register_technique,
    searchable,
)

__all__ = ["ROLES", "TECHNIQUES", "Context", "PrefixedTrial", "Role", "SearchSpec", "Seed",
           "Technique", "TechniqueConfig", "register_technique", "searchable"]
