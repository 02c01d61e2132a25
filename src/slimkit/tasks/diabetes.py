"""scikit-learn's bundled diabetes data: a regression task (442 patients, 10 features, the
disease progression one year later). Targets are standardized with the training part's
statistics, so ``mse`` is in units of the target's variance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

from slimkit.tasks.base import TASKS, Split, Task, TaskSpec, cached_arrays, carve_val

TEST_SEED = 0  # the test split is fixed so figures from different seeds are comparable


def _load() -> dict[str, np.ndarray]:

    x, y = load_diabetes(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=TEST_SEED)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    y_mean, y_std = y_tr.mean(), y_tr.std()

    def features(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    def targets(a: np.ndarray) -> np.ndarray:
        return ((a - y_mean) / y_std).astype(np.float32)[:, None]

    return {"x": features(x_tr), "y": targets(y_tr), "x_test": features(x_te),
            "y_test": targets(y_te)}


@TASKS.register("diabetes")
class Diabetes(TaskSpec):
    name = "diabetes"
    description = "scikit-learn's diabetes data: regression, 10 features (442 patients)"
    default_model = "mlp"
    metric = "mse"

    def load(self, seed: int, cache_dir: Path) -> Task:
        arrays = cached_arrays(cache_dir / "diabetes-v1.npz", _load)
        train, val = carve_val(arrays["x"], arrays["y"], fraction=0.15, seed=seed,
                               stratify=False)
        return Task(
            name=self.name,
            splits={"train": train, "val": val, "test": Split(arrays["x_test"], arrays["y_test"])},
            input_shape=(10,),
            num_classes=1,
            default_model=self.default_model,
            metric="mse",
            direction="minimize",
            seed=seed,
            kind="regression",
        )
