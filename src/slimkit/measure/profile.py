"""Profiles: latency/throughput for torch eager and onnxruntime, model statistics, environment."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from slimkit.errors import StoreError
from slimkit.measure.onnx_file import read_onnx_input
from slimkit.measure.timing import ProfileSettings, measure_speed, random_inputs


def resolve_shape(path: str | Path, shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The per-sample input shape of an ONNX file (``shape`` overrides symbolic dimensions)."""
    spec = read_onnx_input(path)
    if shape is not None:
        if len(shape) != len(spec.shape):
            raise StoreError(f"--shape {','.join(map(str, shape))} has {len(shape)} dimensions; "
                             f"the model's input {spec.name!r} has {len(spec.shape)} "
                             f"(without batch): {spec.shape}")
        return tuple(shape)
    if not all(isinstance(d, int) and d > 0 for d in spec.shape):
        raise StoreError(f"input {spec.name!r} has symbolic dimensions {spec.shape} besides "
                         f"the batch; give them with --shape")
    return tuple(int(d) for d in spec.shape)


def profile_onnx(path: str | Path, settings: ProfileSettings | None = None,
                 shape: tuple[int, ...] | None = None, high: int | None = None
                 ) -> dict[str, Any]:
    """Latency (batch 1), throughput (batch 256) and peak memory of an ONNX file, measured by
    onnxruntime's CPUExecutionProvider in a fresh process."""
    settings = settings or ProfileSettings()
    input_shape = resolve_shape(path, shape)
    dtype = read_onnx_input(path).dtype
    request = {"path": str(path), "input_shape": list(input_shape), "dtype": dtype,
               "settings": settings.model_dump(), "high": high}
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads)}
    proc = subprocess.run(
        [sys.executable, "-m", "slimkit.measure.onnx_probe", json.dumps(request)],
        capture_output=True, text=True, env=env, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"onnxruntime probe failed: {proc.stderr.strip()[-500:]}")
    out = json.loads(lines[-1])
    if "error" in out:
        raise StoreError(f"{path}: onnxruntime cannot run this model ({out['error'][:300]})")
    return out


def profile_torch(model: nn.Module, input_shape: tuple[int, ...],
                  settings: ProfileSettings | None = None, dtype: str = "float32",
                  high: int | None = None) -> dict[str, Any]:
    """Latency and throughput of ``model`` in torch eager mode (no_grad, eval), on random
    inputs of ``dtype`` (token ids in [1, ``high``) for int64)."""
    settings = settings or ProfileSettings()
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    model.eval()
    rng = np.random.default_rng(0)

    def make_call(batch: int) -> Any:
        x = torch.from_numpy(random_inputs(rng, batch, input_shape, dtype, high))
        return lambda: model(x)

    try:
        with torch.inference_mode():
            return measure_speed(make_call, settings)
    finally:
        torch.set_num_threads(previous)


def model_stats(model: nn.Module, input_shape: tuple[int, ...],
                dtype: str = "float32") -> dict[str, int]:
    """Parameters, non-zero parameters and multiply-accumulates per sample (from
    ``torch.utils.flop_counter``: MACs = FLOPs / 2)."""
    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    counter = FlopCounterMode(display=False)
    model.eval()
    with torch.no_grad(), counter:
        model(torch.ones(1, *input_shape, dtype=getattr(torch, dtype)))
    return {"params": params, "nonzero_params": nonzero, "macs": counter.get_total_flops() // 2}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int) -> dict[str, Any]:
    """What the numbers were measured on: CPU, threads and library versions."""
    import onnx
    import onnxruntime

    from slimkit import __version__

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "slimkit": __version__,
    }
