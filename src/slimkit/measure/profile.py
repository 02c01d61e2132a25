"""Profiles: latency/throughput for torch eager and onnxruntime, model statistics, environment."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from slimkit.core.errors import StoreError
from slimkit.measure.onnx import export_onnx
from slimkit.measure.onnx_file import read_onnx_input
from slimkit.measure.timing import ProfileSettings, measure_speed, random_inputs
from slimkit.tasks import Task


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


# the instruction-set features that decide what int8 and bf16 can gain (see DESIGN.md)
ISA_FEATURES = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd",
                "asimddp", "sve", "i8mm", "bf16")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                if fields:
                    break
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The ISA features of ``ISA_FEATURES`` this CPU has (x86 ``flags``, Arm ``Features``)."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return [f for f in ISA_FEATURES if f in flags]


def _slimkit_version() -> str:
    try:
        return version("slimkit")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "0+unknown"


def environment(threads: int) -> dict[str, Any]:
    """What the numbers were measured on: CPU and its ISA features, threads, library versions."""
    return {
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "slimkit": _slimkit_version(),
    }


def onnx_latency(model: nn.Module, task: Task, settings: ProfileSettings, folder: Path) -> float:
    """onnxruntime p50 latency (ms) of ``model``, exported into ``folder`` and measured by the
    profiler every candidate goes through."""
    onnx_path = folder / "model.onnx"
    export_onnx(model, task.input_shape, onnx_path, task.val.x[:64])
    profile = profile_onnx(onnx_path, settings, shape=task.input_shape, high=task.input_high)
    return float(profile["latency_ms"]["p50"])
