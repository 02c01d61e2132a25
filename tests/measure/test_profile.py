from __future__ import annotations

import itertools
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import torch
from torch import nn

from slimkit.core.errors import StoreError
from slimkit.measure import profile as profile_module
from slimkit.measure.onnx import export_onnx
from slimkit.measure.profile import (
    ISA_FEATURES,
    cpu_features,
    environment,
    model_stats,
    profile_onnx,
    profile_torch,
    resolve_shape,
)
from slimkit.measure.timing import ProfileSettings, time_calls


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 3))
    path = tmp_path / "m.onnx"
    export_onnx(model, (1, 40), path, np.random.default_rng(0).standard_normal(
        (8, 1, 40)).astype(np.float32))
    return path


def _check_backend(profile: dict, settings: ProfileSettings) -> None:
    latency = profile["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert latency["batch"] == settings.batch and latency["runs"] >= settings.min_runs
    assert profile["throughput_sps"] > 0
    assert profile["throughput_batch"] == settings.throughput_batch
    assert profile["threads"] == settings.threads


def test_onnx_profile_runs_in_its_own_process(onnx_file: Path, fast_profile) -> None:
    result = profile_onnx(onnx_file, fast_profile)
    _check_backend(result, fast_profile)
    # a fresh process with onnxruntime but without torch: far below this test process's memory
    assert 10 < result["peak_rss_mb"] < 400
    assert result["model_rss_mb"] >= 0


def test_torch_profile_restores_threads(fast_profile) -> None:
    before = torch.get_num_threads()
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 3))
    result = profile_torch(model, (1, 40), fast_profile.model_copy(update={"min_runs": 7}))
    _check_backend(result, fast_profile.model_copy(update={"min_runs": 7}))
    assert torch.get_num_threads() == before


def test_timing_honours_min_runs_and_min_seconds() -> None:
    """Injected clocks: each call takes 0.1 s, so 3 runs take 0.3 s; timing stops at the later of
    min_runs and min_seconds whatever the machine."""
    calls: list[int] = []
    settings = ProfileSettings(warmup=2, min_runs=3, min_seconds=0.95, throughput_batch=4)
    with patch("slimkit.measure.timing.time.perf_counter",
               side_effect=(0.05 * i for i in itertools.count())):
        times = time_calls(lambda: calls.append(1), settings)
    assert len(times) == 10 and len(calls) == 12  # 10 timed (1 s) after 2 warm-up calls
    with patch("slimkit.measure.timing.time.perf_counter",
               side_effect=(0.05 * i for i in itertools.count())):
        times = time_calls(lambda: None, settings.model_copy(update={"min_runs": 20}))
    assert len(times) == 20  # min_runs is the later bound here


def test_model_stats_count_params_nonzeros_and_macs() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 10), nn.ReLU(), nn.Linear(10, 3))
    with torch.no_grad():
        model[1].weight[:5] = 0
    stats = model_stats(model, (1, 40))
    assert stats["params"] == 40 * 10 + 10 + 10 * 3 + 3
    assert stats["nonzero_params"] == stats["params"] - 5 * 40
    assert stats["macs"] == 40 * 10 + 10 * 3


def test_conv_macs_come_from_the_flop_counter() -> None:
    conv = nn.Conv1d(1, 4, 3, padding=1, bias=False)
    assert model_stats(conv, (1, 40))["macs"] == 4 * 3 * 40


def test_environment_records_versions() -> None:
    env = environment(threads=2)
    assert env["threads"] == 2 and env["torch"].startswith("2.13.0")
    for key in ("cpu", "python", "onnxruntime", "onnx", "numpy", "slimkit"):
        assert env[key]
    assert set(env["cpu_features"]) <= set(ISA_FEATURES)


def test_cpu_features_are_read_from_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {"model name": "Some CPU", "flags": "fpu sse2 avx2 fma avx512f avx512_vnni amx_int8"}
    monkeypatch.setattr(profile_module, "_cpuinfo", lambda: info)
    assert cpu_features() == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]
    assert profile_module.cpu_model() == "Some CPU"
    monkeypatch.setattr(profile_module, "_cpuinfo", lambda: {"Features": "fp asimd asimddp"})
    assert cpu_features() == ["asimd", "asimddp"]


def test_corrupt_and_missing_onnx_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(StoreError, match=r"bad\.onnx: not a valid ONNX model"):
        profile_onnx(bad)
    with pytest.raises(StoreError, match=r"missing\.onnx: no such ONNX file"):
        profile_onnx(tmp_path / "missing.onnx")


def test_shape_override_must_match_rank(onnx_file: Path) -> None:
    assert resolve_shape(onnx_file) == (1, 40)
    with pytest.raises(StoreError, match="--shape 40 has 1 dimensions"):
        resolve_shape(onnx_file, (40,))
