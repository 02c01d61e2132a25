"""Shared fixtures: a private data cache, fast profile settings, tiny tasks and a tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimkit.measure.timing import ProfileSettings
from slimkit.tasks.base import Split, Task

FAST_PROFILE = {"warmup": 1, "min_runs": 5, "min_seconds": 0.0, "throughput_batch": 16}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _private_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(cache_dir))


@pytest.fixture
def fast_profile() -> ProfileSettings:
    return ProfileSettings(**FAST_PROFILE)


def make_task(n: int = 400, features: int = 8, classes: int = 2, seed: int = 0,
              noise: float = 0.5, random_labels: bool = False) -> Task:
    """A small linearly separable (plus noise) classification task."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((features, classes))

    def split(m: int) -> Split:
        x = rng.standard_normal((m, features)).astype(np.float32)
        y = (x @ w + noise * rng.standard_normal((m, classes))).argmax(1)
        if random_labels:
            y = rng.integers(0, classes, m)
        return Split(x, y.astype(np.int64))

    return Task(name="toy", splits={"train": split(n), "val": split(n // 4),
                                    "test": split(n // 4)},
                input_shape=(features,), num_classes=classes, default_model="mlp", seed=seed)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """A finished mnist1d run with a tiny cnn1d, shared by read-only tests."""
    import slimkit

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return slimkit.baseline(
        "mnist1d", "cnn1d", {"width": 8, "depth": 2}, {"epochs": 2}, out=out,
        cache_dir=cache_dir, progress=False, profile=ProfileSettings(**FAST_PROFILE),
    )
