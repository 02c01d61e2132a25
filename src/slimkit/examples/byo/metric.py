"""Your metric: ``fn(outputs, targets) -> float`` on a whole split (numpy arrays).

Recall of the malignant class (label 0 in this data set): the share of malignant tumours the
model finds. Higher is better, so the recipe says ``metric_direction: maximize``.
"""

from __future__ import annotations

import numpy as np


def malignant_recall(outputs: np.ndarray, targets: np.ndarray) -> float:
    malignant = targets == 0
    return float((outputs.argmax(axis=1)[malignant] == 0).mean())
