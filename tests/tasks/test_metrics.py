"""The metrics and losses of each task kind, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimkit.measure.parity import output_fidelity
from slimkit.tasks.metrics import kind_metrics, mean_cosine, topk_agreement, training_loss


def test_classification_accuracy_and_macro_f1() -> None:
    outputs = np.array([[2, 0], [0, 1], [3, 1], [0, 5]], np.float32)  # predicts 0, 1, 0, 1
    got = kind_metrics(outputs, np.array([0, 1, 1, 1]), "classification")
    assert got["accuracy"] == 0.75
    # class 0: tp 1, fp 1, fn 0 -> 2/3; class 1: tp 2, fp 0, fn 1 -> 4/5
    assert got["f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_regression_mse_and_mae() -> None:
    got = kind_metrics(np.array([[1.0], [3.0]], np.float32), np.array([[0.0], [1.0]], np.float32),
                       "regression")
    assert (got["mse"], got["mae"], got["loss"]) == (2.5, 1.5, 2.5)


def test_cosine_and_top10_agreement() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((40, 16)).astype(np.float32)
    assert mean_cosine(emb, 3 * emb) == pytest.approx(1.0)
    assert mean_cosine(emb, -emb) == pytest.approx(-1.0)
    assert topk_agreement(emb, 2 * emb) == 1.0  # the same neighbours
    assert topk_agreement(rng.standard_normal((40, 16)), emb) < 0.5  # unrelated neighbours
    got = kind_metrics(emb, emb, "embedding")
    assert got["cosine"] == pytest.approx(1.0) and got["top10"] == 1.0
    assert got["loss"] == pytest.approx(0.0, abs=1e-6)


def test_losses_by_kind() -> None:
    assert isinstance(training_loss("classification"), torch.nn.CrossEntropyLoss)
    assert isinstance(training_loss("regression"), torch.nn.MSELoss)
    x = torch.randn(4, 8)
    assert training_loss("embedding")(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert training_loss("embedding")(x, -x).item() > 2.0


def test_output_fidelity_by_kind() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    close = ref + 0.01
    assert output_fidelity(close, ref, "classification")["agreement"] == 1.0
    assert output_fidelity(close, ref, "embedding")["cosine"] > 0.99
    assert output_fidelity(close, ref, "regression")["relative_mae"] == pytest.approx(0.02)
