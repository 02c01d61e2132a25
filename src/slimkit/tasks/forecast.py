"""``forecast``: a sequence regression task generated offline, so "sequential data" is not
only classification. Each sample is a window of a seeded noisy signal (three sinusoids of
random frequency, amplitude and phase, plus white noise); the model reads
``HISTORY`` steps and predicts the next ``HORIZON`` noisy values. Every sample comes from its own
signal, so test signals are never seen in training; the data set is fixed (its own seed), the
run's seed only carves val out of train. ``mse`` is in units of the signals' variance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimkit.tasks.base import TASKS, Split, Task, TaskSpec, cached_arrays, carve_val

HISTORY, HORIZON = 64, 8
TRAIN, TEST = 4000, 1000
NOISE = 0.1  # white noise, in units of a sinusoid's amplitude
FREQUENCIES = (0.02, 0.12)  # cycles per step: 8 to 50 steps per period
DATA_SEED = 7


def signals(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` noisy multi-frequency signals of ``HISTORY + HORIZON`` steps, (count, steps)."""
    steps = np.arange(HISTORY + HORIZON, dtype=np.float64)
    freq = rng.uniform(*FREQUENCIES, size=(count, 3, 1))
    amp = rng.uniform(0.3, 1.0, size=(count, 3, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(count, 3, 1))
    waves = (amp * np.sin(2 * np.pi * freq * steps + phase)).sum(axis=1)
    return waves + rng.normal(0, NOISE, size=waves.shape)


def _generate() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED)
    train, test = signals(TRAIN, rng), signals(TEST, rng)
    scale = float(train.std())

    def split(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        series = (series / scale).astype(np.float32)
        return series[:, None, :HISTORY], np.ascontiguousarray(series[:, HISTORY:])

    x, y = split(train)
    x_test, y_test = split(test)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}


@TASKS.register("forecast")
class Forecast(TaskSpec):
    name = "forecast"
    description = (f"seeded noisy multi-frequency signals: {HISTORY} steps in, the next "
                   f"{HORIZON} out (regression, {TRAIN} train / {TEST} test)")
    default_model = "cnn1d"
    metric = "mse"

    def load(self, seed: int, cache_dir: Path) -> Task:
        arrays = cached_arrays(cache_dir / "forecast-v2.npz", _generate)
        train, val = carve_val(arrays["x"], arrays["y"], fraction=0.1, seed=seed,
                               stratify=False)
        return Task(
            name=self.name,
            splits={"train": train, "val": val, "test": Split(arrays["x_test"], arrays["y_test"])},
            input_shape=(1, HISTORY),
            num_classes=HORIZON,
            default_model=self.default_model,
            metric="mse",
            direction="minimize",
            seed=seed,
            kind="regression",
        )
