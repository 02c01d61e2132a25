"""What a selected model is best at (``--objective``): a measured value and its direction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from slimkit.core.runs import Candidate

ObjectiveName = Literal["latency", "size", "throughput"]


@dataclass(frozen=True)
class Objective:
    """What a selected model is best at: a measured value and its direction."""

    name: str
    direction: Literal["minimize", "maximize"]
    unit: str
    value: Callable[[Candidate], float | None]

    def key(self, c: Candidate) -> float:
        """Smaller is better; an unmeasured candidate comes last."""
        value = self.value(c)
        if value is None:
            return float("inf")
        return value if self.direction == "minimize" else -value


OBJECTIVES: dict[str, Objective] = {
    "latency": Objective("latency", "minimize", "ort p50 ms", lambda c: c.latency_ms()),
    "size": Objective("size", "minimize", "bytes",
                      lambda c: None if c.size_bytes is None else float(c.size_bytes)),
    "throughput": Objective("throughput", "maximize", "samples/s", lambda c: c.throughput()),
}
TIE_BREAK = {"latency": "size", "size": "latency", "throughput": "size"}
