"""MNIST-1D (Greydanus & Steinbach), generated offline by the ``mnist1d`` package's generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimkit.tasks.base import TASKS, Split, Task, TaskSpec, cached_arrays, carve_val


def _generate() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset  # ~1 s to import: only to generate

    state = np.random.get_state()  # the generator seeds numpy's global state; put it back
    try:
        data = make_dataset(get_dataset_args())  # the benchmark's own args: 4000/1000, seed 42
    finally:
        np.random.set_state(state)
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


@TASKS.register("mnist1d")
class Mnist1d(TaskSpec):
    name = "mnist1d"
    description = "MNIST-1D: 40-long 1-D signals, 10 classes (4000 train / 1000 test)"
    default_model = "cnn1d"

    def load(self, seed: int, cache_dir: Path) -> Task:
        arrays = cached_arrays(cache_dir / "mnist1d-v1.npz", _generate)
        x = arrays["x"][:, None, :]
        train, val = carve_val(x, arrays["y"], fraction=0.1, seed=seed)
        test = Split(arrays["x_test"][:, None, :], arrays["y_test"])
        return Task(
            name=self.name,
            splits={"train": train, "val": val, "test": test},
            input_shape=(1, 40),
            num_classes=10,
            default_model=self.default_model,
            seed=seed,
        )
