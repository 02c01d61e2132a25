"""Errors slimkit raises. Every user-facing error is a SlimkitError: the CLI prints its message
on one line and exits with code 2; anything else is an internal error (exit 1)."""

from __future__ import annotations


class SlimkitError(Exception):
    """Base class for errors caused by user input (bad flag, recipe, file, ...)."""


class RecipeError(SlimkitError):
    """A recipe or a --set override is malformed."""


class TaskError(SlimkitError):
    """A task is unknown or its data cannot be produced."""


class ModelError(SlimkitError):
    """A model is unknown, misconfigured, or does not fit the task."""


class TechniqueError(SlimkitError):
    """A technique is unknown or misconfigured."""


class ExportError(SlimkitError):
    """An export failed or the exported model does not match the torch model."""


class StoreError(SlimkitError):
    """A run folder or artifact is missing, corrupt, or holds something else."""
