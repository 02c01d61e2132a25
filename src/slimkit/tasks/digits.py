"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from slimkit.tasks.base import TASKS, Split, Task, TaskSpec, cached_arrays, carve_val

TEST_SEED = 0  # the test split is fixed so figures from different seeds are comparable


def _load() -> dict[str, np.ndarray]:
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, random_state=TEST_SEED, stratify=y
    )
    return {"x": x_tr, "y": y_tr, "x_test": x_te, "y_test": y_te}


@TASKS.register("digits")
class Digits(TaskSpec):
    name = "digits"
    description = "scikit-learn's 8x8 digits: 1797 grayscale images, 10 classes"
    default_model = "cnn2d"

    def load(self, seed: int, cache_dir: Path) -> Task:
        arrays = cached_arrays(cache_dir / "digits-v1.npz", _load)
        train, val = carve_val(arrays["x"], arrays["y"], fraction=0.1, seed=seed)
        return Task(
            name=self.name,
            splits={"train": train, "val": val, "test": Split(arrays["x_test"], arrays["y_test"])},
            input_shape=(1, 8, 8),
            num_classes=10,
            default_model=self.default_model,
            seed=seed,
        )
