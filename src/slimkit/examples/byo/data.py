"""Your data: a function returning train/val/test.

Each split is (x, y) numpy arrays (or tensors), a torch Dataset or a DataLoader; val may be
None (slimkit then holds out 10% of train, seeded). Integer labels make a classification task,
float targets a regression task. Here: scikit-learn's bundled breast-cancer data (569 samples,
30 features, 2 classes), standardized with the training part's statistics only.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split


def load_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x, y = load_breast_cancer(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=0,
                                                      stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.2,
                                                      random_state=0, stratify=y_rest)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8

    def scale(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return {"train": (scale(x_train), y_train), "val": (scale(x_val), y_val),
            "test": (scale(x_test), y_test)}
