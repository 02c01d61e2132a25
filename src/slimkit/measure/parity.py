"""What every checked export shares: the exporters kept quiet, the torch model's outputs on real
inputs, and the comparison of an export's outputs with them (float: max abs difference; reduced
precision: how close the outputs stay, by the task's kind)."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit.core.errors import ExportError
from slimkit.measure.evaluate import predict
from slimkit.tasks.metrics import mean_cosine

FP32_ATOL = 1e-4
PARITY_SAMPLES = 512  # real test inputs an export is checked on


@contextlib.contextmanager
def quiet_logger(name: str | None = None) -> Iterator[None]:
    """Only errors from logger ``name`` (None: the root logger) while the block runs."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's deprecation chatter and info logs (errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                               "torch.fx.experimental.symbolic_shapes")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def first_line(err: Exception) -> str:
    """The first line of an exception message, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def is_tokens(inputs: np.ndarray) -> bool:
    """Inputs are token ids (int64, (n, seq)): batched by length, trimmed of padding."""
    return inputs.dtype == np.int64 and inputs.ndim == 2


def torch_outputs(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The torch model's outputs on ``inputs``, in one batch (the reference of a check)."""
    return predict(model, inputs, batch_size=len(inputs) or 1, tokens=is_tokens(inputs))


def float64_outputs(model: nn.Module, inputs: np.ndarray) -> np.ndarray | None:
    """The outputs of a float64 copy of ``model`` (the exact result float32 rounds), or None
    when the model does not run in float64."""
    exact = copy.deepcopy(model).double().eval()
    tensor = torch.from_numpy(np.ascontiguousarray(inputs))
    if tensor.is_floating_point():
        tensor = tensor.double()
    try:
        with torch.no_grad():
            out = exact(tensor)
    except Exception:
        return None
    return out.numpy() if isinstance(out, torch.Tensor) else None


def compare_exact(name: str, model: nn.Module, inputs: np.ndarray, got: np.ndarray,
                  atol: float) -> dict[str, Any]:
    """``compare`` against the torch model; when they differ by more than ``atol``, the export
    still passes if it is within ``atol`` of the float64 result plus torch's own float32
    error (a deep network's rounding, not an export fault). Both errors are recorded."""
    expected = torch_outputs(model, inputs)
    try:
        return compare(name, expected, got, atol)
    except ExportError:
        exact = float64_outputs(model, inputs)
        if exact is None or exact.shape != got.shape:
            raise
        ours = float(np.max(np.abs(got.astype(np.float64) - exact)))
        theirs = float(np.max(np.abs(expected.astype(np.float64) - exact)))
        if not ours <= atol + theirs:
            raise
    diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
    return {"max_abs_diff": diff, "atol": atol, "samples": len(expected),
            "float64_reference": {"export_error": ours, "torch_float32_error": theirs}}


def compare(name: str, expected: np.ndarray, got: np.ndarray, atol: float) -> dict[str, Any]:
    """The parity record of an export's outputs ``got`` against torch's ``expected``; an
    export that is off by more than ``atol`` (or nan) is an ExportError."""
    if got.shape != expected.shape:
        raise ExportError(f"{name} export outputs shape {got.shape}, torch gives {expected.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if got.size else 0.0
    if not diff <= atol:  # also catches nan
        raise ExportError(f"{name} export does not match the torch model: max abs difference "
                          f"{diff:.3g} > {atol:g} on {len(expected)} real inputs")
    return {"max_abs_diff": diff, "atol": atol, "samples": len(expected)}


def output_fidelity(got: np.ndarray, expected: np.ndarray, kind: str) -> dict[str, Any]:
    """How close a reduced-precision model's outputs are to the float model's: agreement of
    predicted classes, mean cosine of embeddings, or the relative mean absolute error."""
    diff = float(np.abs(got.astype(np.float64) - expected).max()) if got.size else 0.0
    record: dict[str, Any] = {"max_abs_diff": diff, "samples": len(got)}
    if kind == "classification":
        agreement = float((got.argmax(1) == expected.argmax(1)).mean())
        return {"check": "class_agreement", "agreement": agreement, **record}
    if kind == "embedding":
        return {"check": "cosine", "cosine": mean_cosine(got, expected), **record}
    scale = float(np.mean(np.abs(expected))) or 1.0
    rel = float(np.mean(np.abs(got.astype(np.float64) - expected))) / scale
    return {"check": "relative_mae", "relative_mae": rel, **record}
