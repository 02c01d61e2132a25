"""Export to ONNX (dynamic batch axis) and TorchScript, each checked against the torch model."""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit.atomic import atomic_path
from slimkit.errors import ExportError

FP32_ATOL = 1e-4
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
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


def _first_line(err: Exception) -> str:
    """The first line of an exception message, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def _tokens(inputs: np.ndarray) -> bool:
    """Inputs are token ids (int64, (n, seq)): batched by length, trimmed of padding."""
    return inputs.dtype == np.int64 and inputs.ndim == 2


def _torch_outputs(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    from slimkit.measure.evaluate import predict

    return predict(model, inputs, batch_size=len(inputs) or 1, tokens=_tokens(inputs))


def _parity(name: str, expected: np.ndarray, got: np.ndarray, atol: float) -> dict[str, Any]:
    if got.shape != expected.shape:
        raise ExportError(f"{name} export outputs shape {got.shape}, torch gives {expected.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if got.size else 0.0
    if not diff <= atol:  # also catches nan
        raise ExportError(f"{name} export does not match the torch model: max abs difference "
                          f"{diff:.3g} > {atol:g} on {len(expected)} real inputs")
    return {"max_abs_diff": diff, "atol": atol, "samples": len(expected)}


def onnx_runner(path: str | Path, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving the ONNX model's first output for a batch (one session, reused)."""
    import onnxruntime as ort

    from slimkit.measure.onnx_probe import session_options

    session = ort.InferenceSession(str(path), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda inputs: session.run(None, {name: inputs})[0]


def run_onnx(path: str | Path, inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Outputs of the ONNX model at ``path`` for ``inputs`` (first output)."""
    from slimkit.measure.evaluate import batched

    return batched(onnx_runner(path, threads), inputs, len(inputs) or 1, _tokens(inputs))


def check_onnx(model: nn.Module, path: str | Path, inputs: np.ndarray,
               atol: float = FP32_ATOL) -> dict[str, Any]:
    """Compare the ONNX file's outputs with ``model``'s on ``inputs``; raise ExportError if off."""
    try:
        got = run_onnx(path, inputs)
    except Exception as err:  # onnxruntime refuses the graph or fails on real inputs
        raise ExportError(f"exported ONNX model fails on real inputs: {_first_line(err)}") from None
    return _parity("ONNX", _torch_outputs(model, inputs), got, atol)


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path,
                check_inputs: np.ndarray, atol: float = FP32_ATOL) -> dict[str, Any]:
    """Export ``model`` with torch.export-based exporter (dynamic batch axis, one self-contained
    file), check it on ``check_inputs`` and only then move it to ``path``. Token-id inputs
    (int64, (n, seq)) get a dynamic sequence axis too."""
    model.eval()
    if len(check_inputs) >= 2:
        example = torch.from_numpy(np.ascontiguousarray(check_inputs[:2]))
    else:
        example = torch.zeros(2, *input_shape)
    axes = {0: torch.export.Dim("batch")}
    if _tokens(check_inputs):
        axes[1] = torch.export.Dim("sequence", max=input_shape[0])
    with atomic_path(path) as tmp:
        try:
            with _quiet_exporter(), torch.no_grad():
                torch.onnx.export(
                    model, (example,), str(tmp), dynamo=True, external_data=False,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_shapes=(axes,),
                    verbose=False, optimize=True,
                )
        except Exception as err:
            raise ExportError(f"ONNX export failed: {_first_line(err)}") from None
        parity = check_onnx(model, tmp, check_inputs, atol)
    return {"format": "onnx", "exporter": "torch.onnx.export(dynamo=True)", **parity}


def export_torchscript(model: nn.Module, input_shape: tuple[int, ...], path: str | Path,
                       check_inputs: np.ndarray, atol: float = FP32_ATOL) -> dict[str, Any]:
    """Trace ``model`` to TorchScript, reload the file, check it, then move it to ``path``."""
    model.eval()
    with atomic_path(path) as tmp:
        try:
            with _quiet_exporter(), torch.no_grad():
                traced = torch.jit.trace(model, torch.from_numpy(check_inputs[:2]))
                torch.jit.save(traced, str(tmp))
                loaded = torch.jit.load(str(tmp))
                got = loaded(torch.from_numpy(check_inputs)).numpy()
        except Exception as err:
            raise ExportError(f"TorchScript export failed: {_first_line(err)}") from None
        parity = _parity("TorchScript", _torch_outputs(model, check_inputs), got, atol)
    return {"format": "torchscript", "exporter": "torch.jit.trace", **parity}
