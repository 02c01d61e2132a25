from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimkit.core.errors import TaskError
from slimkit.tasks import TASKS, load_task
from slimkit.tasks.metrics import DIRECTIONS, KIND_METRICS

# minilm-embed computes 5,200 reference embeddings: its 192-sentence twin runs the same code
CONTRACT = [n for n in TASKS.names() if n != "minilm-embed"]


@pytest.mark.parametrize("name", CONTRACT)
def test_every_task_has_disjoint_seeded_splits(name: str, cache_dir: Path) -> None:
    task = load_task(name, seed=0, cache_dir=cache_dir)
    assert set(task.splits) == {"train", "val", "test"}
    for split in task.splits.values():
        assert split.x.dtype == np.dtype(task.input_dtype)
        assert split.x.shape[1:] == task.input_shape
        if task.kind == "classification":
            assert split.y.dtype == np.int64
            assert set(np.unique(split.y)) <= set(range(task.num_classes))
        else:
            assert split.y.dtype == np.float32 and split.y.shape[1:] == (task.num_classes,)
    # val is carved out of train: no sample appears in both
    train = {row.tobytes() for row in task.train.x}
    assert not any(row.tobytes() in train for row in task.val.x)
    assert task.default_model and task.metric in KIND_METRICS[task.kind]
    assert task.direction == DIRECTIONS[task.metric] and task.metric == TASKS.get(name).metric
    again = load_task(name, seed=0, cache_dir=cache_dir)
    np.testing.assert_array_equal(again.val.x, task.val.x)
    other = load_task(name, seed=1, cache_dir=cache_dir)
    assert not np.array_equal(other.val.y, task.val.y)
    np.testing.assert_array_equal(other.test.x, task.test.x)  # test split never moves


def test_mnist1d_matches_the_benchmark(cache_dir: Path) -> None:
    task = load_task("mnist1d", cache_dir=cache_dir)
    assert len(task.train) + len(task.val) == 4000
    assert len(task.test) == 1000
    assert task.input_shape == (1, 40) and task.num_classes == 10
    assert (cache_dir / "mnist1d-v1.npz").is_file()


def test_digits_uses_all_images(cache_dir: Path) -> None:
    task = load_task("digits", cache_dir=cache_dir)
    assert sum(len(s) for s in task.splits.values()) == 1797
    assert task.input_shape == (1, 8, 8)
    assert task.train.x.min() >= 0.0 and task.train.x.max() <= 1.0


def test_corrupt_cache_is_regenerated(tmp_path: Path) -> None:
    load_task("digits", cache_dir=tmp_path)
    (tmp_path / "digits-v1.npz").write_bytes(b"not an npz")
    task = load_task("digits", cache_dir=tmp_path)
    assert len(task.test) == 360


def test_generation_leaves_numpy_global_state_alone(tmp_path: Path) -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    load_task("mnist1d", cache_dir=tmp_path)  # generates: the generator seeds numpy itself
    assert np.random.random() == expected


def test_unknown_task_names_the_choices() -> None:
    with pytest.raises(TaskError, match="unknown task 'nope'; choose one of: diabetes, digits"):
        load_task("nope")
