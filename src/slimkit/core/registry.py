"""A small name -> object registry shared by tasks, models and techniques."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from slimkit.core.errors import SlimkitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to registered objects. Registering a name twice is an error.

    Args:
        kind: what the registry holds ("task", "model", ...), used in messages.
        error: the SlimkitError subclass raised for an unknown name.
    """

    def __init__(self, kind: str, error: type[SlimkitError] = SlimkitError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its argument under ``name``."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin registered for a while, e.g. by a test)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise a clear error listing the choices."""
        try:
            return self._items[name]
        except KeyError:
            raise self.error(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
