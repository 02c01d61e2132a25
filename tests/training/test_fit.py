"""Each trainer option changes training the way it should."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.core.errors import RecipeError
from slimkit.core.validation import validate
from slimkit.measure.evaluate import evaluate
from slimkit.models import build_model
from slimkit.training import TrainConfig, fit

from ..conftest import make_task


def _train(task=None, model_args=None, seed=0, **train):
    task = task or make_task()
    torch.manual_seed(seed)
    model = build_model("mlp", {"width": 32, "depth": 1, **(model_args or {})},
                        task.input_shape, task.num_classes)
    config = TrainConfig(**{"epochs": 10, "patience": None, "weight_decay": 0.0,
                            "restore_best": False, **train})
    result = fit(model, task, config, seed=seed, progress=False)
    return model, result, task


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters()
                      if n.endswith("weight")])


def test_training_learns_and_records_history() -> None:
    model, result, task = _train()
    assert len(result.history) == 10
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert evaluate(model, task.test, task)["accuracy"] > 0.85


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimizer_reduces_the_loss(optimizer: str) -> None:
    _, result, _ = _train(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.01)
    assert result.history[-1]["train_loss"] < 0.7 * result.history[0]["train_loss"]


def test_same_seed_is_bit_identical_and_another_seed_differs() -> None:
    a, _, _ = _train(seed=3)
    b, _, _ = _train(seed=3)
    c, _, _ = _train(seed=4)
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.equal(_weights(a), _weights(c))


def test_l1_drives_weights_toward_zero() -> None:
    plain, _, _ = _train(epochs=30)
    sparse, _, _ = _train(epochs=30, l1=2e-2)
    w_plain, w_sparse = _weights(plain).abs(), _weights(sparse).abs()
    assert w_sparse.sum() < 0.5 * w_plain.sum()
    assert (w_sparse < 1e-2).float().mean() > 2 * (w_plain < 1e-2).float().mean()


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_weight_decay_shrinks_the_weight_norm(optimizer: str) -> None:
    lr = 0.05 if optimizer == "sgd" else 0.01
    plain, _, _ = _train(epochs=30, optimizer=optimizer, lr=lr)
    decay = 2.0 if optimizer == "adamw" else 0.5  # adamw decays by lr * weight_decay per step
    decayed, _, _ = _train(epochs=30, optimizer=optimizer, lr=lr, weight_decay=decay)
    assert _weights(decayed).norm() < 0.8 * _weights(plain).norm()


def test_dropout_is_stochastic_in_training_only() -> None:
    model, _, task = _train(model_args={"dropout": 0.5}, epochs=2)
    x = torch.from_numpy(task.val.x)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    no_drop, _, _ = _train(epochs=2)
    assert not torch.equal(_weights(model), _weights(no_drop))


def test_label_smoothing_softens_predictions() -> None:
    clean = make_task(noise=0.0)
    sharp, _, task = _train(task=clean, epochs=30)
    smooth, _, _ = _train(task=clean, epochs=30, label_smoothing=0.3)
    x = torch.from_numpy(task.val.x)
    with torch.no_grad():
        p_sharp = sharp(x).softmax(1).max(1).values.mean()
        p_smooth = smooth(x).softmax(1).max(1).values.mean()
    assert p_smooth < p_sharp - 0.05


def test_early_stopping_stops_and_restores_the_best_epoch() -> None:
    noisy = make_task(random_labels=True)  # nothing to learn: val stops improving quickly
    model, result, task = _train(task=noisy, epochs=200, patience=3, lr=0.05, restore_best=True)
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 3 < 200
    assert evaluate(model, task.val, task)["accuracy"] == result.best_val
    last = result.history[-1]["val_accuracy"]
    assert result.best_val >= last


def test_without_restore_the_last_epoch_is_kept() -> None:
    noisy = make_task(random_labels=True)
    model, result, task = _train(task=noisy, epochs=8, lr=0.05)
    assert evaluate(model, task.val, task)["accuracy"] == result.history[-1]["val_accuracy"]


def test_schedules_shape_the_learning_rate() -> None:
    _, cosine, _ = _train(epochs=10, schedule="cosine", lr=0.01)
    assert cosine.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert cosine.history[4]["lr"] == pytest.approx(0.01 * (1 + torch.cos(torch.tensor(
        torch.pi * 5 / 10))).item() / 2)
    _, step, _ = _train(epochs=6, schedule="step", step_size=3, gamma=0.1, lr=0.01)
    assert [round(r["lr"], 8) for r in step.history] == [0.01, 0.01, 0.001, 0.001, 0.001, 1e-4]
    _, none, _ = _train(epochs=3, schedule="none", lr=0.01)
    assert {r["lr"] for r in none.history} == {0.01}


def test_on_epoch_callback_can_stop_training() -> None:
    seen = []

    class Stop(Exception):
        pass

    def callback(epoch: int, record: dict) -> None:
        seen.append(epoch)
        if epoch == 2:
            raise Stop

    task = make_task()
    model = build_model("mlp", {}, task.input_shape, 2)
    with pytest.raises(Stop):
        fit(model, task, TrainConfig(epochs=5), progress=False, on_epoch=callback)
    assert seen == [1, 2]


@pytest.mark.parametrize(("params", "message"), [
    ({"lr": -1}, r"train\.lr: input should be greater than 0, got -1"),
    ({"optimizer": "lion"}, r"train\.optimizer: input should be 'adam', 'adamw' or 'sgd'"),
    ({"epochs": "many"}, r"train\.epochs: input should be a valid integer"),
    ({"label_smoothing": 1.0}, r"train\.label_smoothing: input should be less than 1"),
    ({"l2": 0.1}, r"train\.l2: unknown parameter; allowed: batch_size, epochs"),
])
def test_bad_train_config_names_the_field(params: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        validate(TrainConfig, params, prefix="train", error=RecipeError)


def test_token_batches_are_bucketed_by_length_and_cover_every_row() -> None:
    from slimkit.training.fit import _batches

    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 128, (1000,), generator=gen)
    order = torch.randperm(1000, generator=gen)
    batches = _batches(order, lengths, 32, gen)
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))  # every row, once
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    plain = sum(len(b) * int(lengths[b].max()) for b in _batches(order, None, 32, gen))
    assert padded < 0.7 * plain  # far fewer padded tokens than random batches
    few = order[:200]
    small = _batches(few, lengths, 32, gen)  # one window: not bucketed
    assert [b.tolist() for b in small] == [few[i:i + 32].tolist() for i in range(0, 200, 32)]


def test_bf16_is_chosen_for_transformers_on_cpus_with_native_bf16() -> None:
    from slimkit.training.fit import training_precision

    assert training_precision("auto", True, ["avx2", "avx512_bf16"]) == "bf16"
    assert training_precision("auto", True, ["avx2", "amx_bf16"]) == "bf16"
    assert training_precision("auto", True, ["avx2", "avx512_vnni"]) == "fp32"
    assert training_precision("auto", False, ["amx_bf16"]) == "fp32"  # not a transformer
    assert training_precision("bf16", False, []) == "bf16"  # asked for


def test_bf16_training_learns_and_keeps_fp32_weights() -> None:
    task, results = make_task(noise=0.0), {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model("mlp", {"width": 16, "depth": 1}, (8,), 2)
        results[precision] = fit(model, task, TrainConfig(epochs=10, lr=0.03, precision=precision),
                                 progress=False)
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert results["bf16"].to_dict()["precision"] == "bf16"
    assert results["bf16"].best_val >= results["fp32"].best_val - 0.05 > 0.8


def test_parameter_groups_train_at_their_own_rate() -> None:
    from slimkit.training.fit import make_optimizer

    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    fast = list(model[1].parameters())
    optimizer = make_optimizer(model, TrainConfig(lr=1e-3, weight_decay=0.1),
                               [{"params": fast, "lr": 0.5, "weight_decay": 0.0}])
    default, special = optimizer.param_groups
    assert default["lr"] == 1e-3 and default["weight_decay"] == 0.1
    assert special["lr"] == 0.5 and special["weight_decay"] == 0.0
    ids = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == 4  # every parameter once
