"""Turn a trained torch model into a measured Candidate with checked artifacts."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.core.atomic import write_with
from slimkit.core.runs import Candidate
from slimkit.measure.evaluate import batched, split_metrics
from slimkit.measure.onnx import check_reduced, export_onnx, onnx_runner
from slimkit.measure.parity import PARITY_SAMPLES
from slimkit.measure.profile import model_stats, profile_onnx, profile_torch
from slimkit.measure.timing import ProfileSettings
from slimkit.models import MODEL_FILE, save_model
from slimkit.tasks import Task


def onnx_metrics(path: Path, task: Task) -> dict[str, dict[str, float]]:
    """Metrics of the deployable ONNX model on val (decides) and test (reported only)."""
    run = onnx_runner(path)
    return {split: split_metrics(batched(run, task.splits[split].x, tokens=task.token_inputs),
                                 task.splits[split], task)
            for split in ("val", "test")}


def measure_candidate(model: nn.Module, onnx_path: Path, task: Task,
                      settings: ProfileSettings, torch_profile: bool = True
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, profile) of a candidate; the same code measures every candidate.

    ``model`` gives params and MACs; its torch eager speed is profiled unless the deployable
    ONNX model computes something torch eager does not run (int8, fp16)."""
    metrics = onnx_metrics(onnx_path, task)
    settings = settings.for_task(task.throughput_batch)
    onnx_profile = profile_onnx(onnx_path, settings, shape=task.input_shape,
                                high=task.input_high)
    peak = onnx_profile.pop("peak_rss_mb")
    model_rss = onnx_profile.pop("model_rss_mb")
    profile = {
        "onnxruntime": onnx_profile,
        "onnxruntime_threads": _more_threads(onnx_path, task, settings),
        "torch": profile_torch(model, task.input_shape, settings, task.input_dtype,
                               task.input_high) if torch_profile else None,
        **model_stats(model, task.input_shape, task.input_dtype),
        "size_bytes": onnx_path.stat().st_size,
        "gzip_size_bytes": len(gzip.compress(onnx_path.read_bytes(), compresslevel=9)),
        "peak_rss_mb": peak,
        "model_rss_mb": model_rss,
    }
    return metrics, profile


def _more_threads(onnx_path: Path, task: Task, settings: ProfileSettings
                  ) -> dict[str, dict[str, Any]]:
    """onnxruntime profiles at ``settings.more_threads`` (``profile.threads: [1, all]``), by
    thread count; reported beside the first count's, which decides."""
    found = {}
    for threads in settings.more_threads:
        again = settings.model_copy(update={"threads": threads, "more_threads": []})
        measured = profile_onnx(onnx_path, again, shape=task.input_shape, high=task.input_high)
        found[str(threads)] = {key: value for key, value in measured.items()
                               if not key.endswith("rss_mb")}
    return found


def materialize(
    cid: str,
    parent: str | None,
    technique: str,
    params: dict[str, Any],
    model: nn.Module,
    model_spec: dict[str, Any],
    task: Task,
    run_dir: Path,
    settings: ProfileSettings,
    training: dict[str, Any] | None = None,
    onnx_source: Path | None = None,
) -> Candidate:
    """Save, export (with parity check), evaluate and profile ``model`` as candidate ``cid``.

    With ``onnx_source`` (a quantized or fp16 model a technique produced from ``model``) that
    file is the deployable artifact instead: it is checked by the agreement of its predicted
    classes with ``model``'s on real test inputs, and no torch file is written.
    """
    folder = Path("candidates") / cid
    torch_rel, onnx_rel = folder / MODEL_FILE, folder / "model.onnx"
    inputs = task.test.x[:PARITY_SAMPLES]
    if onnx_source is None:
        save_model(run_dir / torch_rel, model, model_spec)
        export = export_onnx(model, task.input_shape, run_dir / onnx_rel, inputs)
        artifacts = {"torch": str(torch_rel), "onnx": str(onnx_rel)}
    else:
        write_with(run_dir / onnx_rel, lambda tmp: shutil.copyfile(onnx_source, tmp))
        export = check_reduced(model, run_dir / onnx_rel, inputs, task.kind)
        artifacts = {"onnx": str(onnx_rel)}
    metrics, profile = measure_candidate(model, run_dir / onnx_rel, task, settings,
                                         torch_profile=onnx_source is None)
    return Candidate(
        id=cid, parent=parent, technique=technique, params=params, status="ok",
        metrics=metrics, profile=profile, artifacts=artifacts,
        model=model_spec, training=training or {}, parity=export,
    )
