"""ONNX: export with a dynamic batch axis (token ids also get a dynamic sequence axis), run a
file, and check it against the torch model — float exports by their outputs, reduced-precision
ones (int8, fp16) by how close they stay to the float model's."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from slimkit.core.atomic import atomic_path
from slimkit.core.errors import ExportError
from slimkit.measure.evaluate import batched, predict
from slimkit.measure.onnx_probe import session_options
from slimkit.measure.parity import (
    FP32_ATOL,
    compare_exact,
    first_line,
    is_tokens,
    output_fidelity,
    quiet_exporter,
)
from slimkit.measure.race import race, speed_ratio
from slimkit.measure.timing import ProfileSettings
from slimkit.measure.transformer_export import (
    attention_shape,
    describe,
    export_torchscript,
    fuse_transformer,
)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
ROUTE_TIMING = ProfileSettings(throughput_batch=8, min_runs=20, min_seconds=0.3)


def onnx_runner(path: str | Path, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving the ONNX model's first output for a batch (one session, reused)."""
    session = ort.InferenceSession(str(path), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda inputs: session.run(None, {name: inputs})[0]


def run_onnx(path: str | Path, inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Outputs of the ONNX model at ``path`` for ``inputs`` (first output)."""
    return batched(onnx_runner(path, threads), inputs, len(inputs) or 1, is_tokens(inputs))


def check_onnx(model: nn.Module, path: str | Path, inputs: np.ndarray,
               atol: float = FP32_ATOL) -> dict[str, Any]:
    """Compare the ONNX file's outputs with ``model``'s on ``inputs``; raise ExportError if off."""
    try:
        got = run_onnx(path, inputs)
    except Exception as err:  # onnxruntime refuses the graph or fails on real inputs
        raise ExportError(f"exported ONNX model fails on real inputs: {first_line(err)}") from None
    return compare_exact("ONNX", model, inputs, got, atol)


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path,
                check_inputs: np.ndarray, atol: float = FP32_ATOL, fuse: bool = True
                ) -> dict[str, Any]:
    """Export ``model`` with torch.export-based exporter (dynamic batch axis, one self-contained
    file), check it on ``check_inputs`` and only then move it to ``path``. Token-id inputs
    (int64, (n, seq)) get a dynamic sequence axis too, and a transformer among them is also
    exported the way onnxruntime can fuse (``transformer_export``): both files are checked and
    the faster one, timed side by side, is kept. ``fuse=False`` (for quantizers that read
    standard operators only) exports a transformer with the TorchScript exporter, unfused: the
    same graph the fusion starts from, and several times quicker to make. The record says which
    file was kept and why."""
    model.eval()
    if len(check_inputs) >= 2:
        example = torch.from_numpy(np.ascontiguousarray(check_inputs[:2]))
    else:
        example = torch.zeros(2, *input_shape)
    shape = attention_shape(model) if is_tokens(check_inputs) else None
    if shape is not None and not fuse:
        with atomic_path(path) as tmp:
            try:
                export_torchscript(model, example, Path(tmp), INPUT_NAME, OUTPUT_NAME)
            except Exception as err:
                raise ExportError(f"ONNX export failed: {first_line(err)}") from None
            return {"format": "onnx", "exporter": "torch.onnx.export(dynamo=False)",
                    **check_onnx(model, tmp, check_inputs, atol)}
    axes = {0: torch.export.Dim("batch")}
    if is_tokens(check_inputs):
        axes[1] = torch.export.Dim("sequence", max=input_shape[0])
    with atomic_path(path) as tmp:
        try:
            with quiet_exporter(), torch.no_grad():
                torch.onnx.export(
                    model, (example,), str(tmp), dynamo=True, external_data=False,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_shapes=(axes,),
                    verbose=False, optimize=True,
                )
        except Exception as err:
            raise ExportError(f"ONNX export failed: {first_line(err)}") from None
        record = {"format": "onnx", **describe("dynamo"),
                  **check_onnx(model, tmp, check_inputs, atol)}
        if shape is not None:
            record = _fused_route(model, example, Path(tmp), check_inputs, atol, shape, record)
    return record


def _fused_route(model: nn.Module, example: torch.Tensor, plain: Path, inputs: np.ndarray,
                 atol: float, shape: tuple[int, int], record: dict[str, Any]
                 ) -> dict[str, Any]:
    """Build the TorchScript file and its fused version beside ``plain``, check both, time the
    three side by side and move the fastest over ``plain`` (which CPU kernels win differs:
    onnxruntime's fused Attention is not faster than plain MatMuls on every CPU). Returns the
    record of the file kept."""
    with tempfile.TemporaryDirectory(dir=plain.parent) as folder:
        scripted, fused = Path(folder) / "ts.onnx", Path(folder) / "fused.onnx"
        try:
            export_torchscript(model, example, scripted, INPUT_NAME, OUTPUT_NAME)
            fusions = fuse_transformer(scripted, fused, shape)
            parities = {"torchscript": check_onnx(model, scripted, inputs, atol),
                        "fused": check_onnx(model, fused, inputs, atol)}
        except Exception as err:  # the route is an optimization: the plain file stands
            return {**record, "fused_route": f"not used: {first_line(err)}"}
        files = {"plain": plain, "torchscript": scripted, "fused": fused}
        timed = race(files, (inputs.shape[1],), "int64", ROUTE_TIMING, int(inputs.max()) + 1)
        kept = max(timed, key=lambda name: speed_ratio(timed[name], timed["plain"]))
        choice = {"kept": kept, "timed here (b=1 / b=8)": timed, "fusions": fusions}
        if kept == "plain":
            return {**record, "fused_route": choice}
        shutil.copyfile(files[kept], plain)
    return {"format": "onnx", **describe(kept, fusions), **parities[kept], "fused_route": choice}


def check_reduced(model: nn.Module, onnx_path: Path, inputs: np.ndarray,
                  kind: str = "classification") -> dict[str, Any]:
    """How close a reduced-precision ONNX model is to the float torch ``model`` on real
    inputs: agreement of predicted classes, mean cosine of embeddings or relative error (by the
    task's ``kind``)."""
    expected = predict(model, inputs, tokens=is_tokens(inputs))
    return {"format": "onnx", **output_fidelity(run_onnx(onnx_path, inputs), expected, kind)}


