"""Shared fixtures: a private data cache, fast profile settings, tiny tasks and a tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimkit.measure.timing import ProfileSettings
from slimkit.tasks import Split, Task

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


KINDS = ("classification", "regression", "embedding")
TINY_SHAPE = (2, 16)  # channels-first signals: every technique applies, arch included


def tiny_task(kind: str, n: int = 96, seed: int = 0) -> Task:
    """A small learnable task of ``kind`` on (2, 16) signals: 3 classes, 2 regression targets
    or 8-d unit embeddings, all a fixed function of the inputs."""
    rng = np.random.default_rng(seed)
    outputs = {"classification": 3, "regression": 2, "embedding": 8}[kind]
    w = rng.standard_normal((int(np.prod(TINY_SHAPE)), outputs)).astype(np.float32)

    def split(m: int) -> Split:
        x = rng.standard_normal((m, *TINY_SHAPE)).astype(np.float32)
        z = x.reshape(m, -1) @ w / 4
        if kind == "classification":
            return Split(x, z.argmax(1).astype(np.int64))
        if kind == "embedding":
            z = z / np.linalg.norm(z, axis=1, keepdims=True)
        return Split(x, z.astype(np.float32))

    metric, direction = {"classification": ("accuracy", "maximize"),
                         "regression": ("mse", "minimize"),
                         "embedding": ("cosine", "maximize")}[kind]
    return Task(name=f"tiny-{kind}", splits={"train": split(n), "val": split(n // 3),
                                             "test": split(n // 3)},
                input_shape=TINY_SHAPE, num_classes=outputs, default_model="cnn1d",
                metric=metric, direction=direction, seed=seed, kind=kind)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """A finished mnist1d run with a tiny cnn1d, shared by read-only tests."""
    import slimkit

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return slimkit.baseline(
        "mnist1d", "cnn1d", {"width": 8, "depth": 2}, {"epochs": 2}, out=out,
        cache_dir=cache_dir, progress=False, profile=ProfileSettings(**FAST_PROFILE),
    )
