"""Python API functions that are not a pipeline step of their own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from slimkit.atomic import write_with
from slimkit.deploy.export import export_onnx, export_torchscript
from slimkit.errors import StoreError
from slimkit.measure.profile import profile_onnx, profile_torch, resolve_shape
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.run import Run
from slimkit.pipeline.store import load_model, read_manifest
from slimkit.tasks import load_task


def load_run(path: str | Path) -> Run:
    """Read a run folder's run.json into a Run."""
    return read_manifest(path)


def export(
    run: str | Path | Run,
    to: str | Path,
    *,
    candidate: str | None = None,
    format: Literal["onnx", "torchscript"] = "onnx",
    force: bool = False,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Export a run's candidate (default: the selected one) to ``to``, checked against torch on
    the task's real test inputs. Returns the parity record."""
    run = run if isinstance(run, Run) else load_run(run)
    cid = candidate or run.selected_id or run.baseline_id
    if cid is None:
        raise StoreError(f"run {run.run!r} has no finished candidate to export")
    cand = run.candidate(cid)
    to = Path(to)
    if to.exists() and not force:
        raise StoreError(f"{to} already exists; pass --force to replace it")
    assert run.path is not None
    if "torch" not in cand.artifacts:  # a quantized/fp16 candidate: its ONNX file is the model
        if format != "onnx":
            raise StoreError(f"candidate {cid} ({cand.technique}) exists only as ONNX; "
                             f"export it with --format onnx")
        write_with(to, lambda tmp: shutil.copyfile(run.path / cand.artifacts["onnx"], tmp))
        return {**cand.parity, "samples": cand.parity.get("samples", 0)}
    model, spec = load_model(run.path / cand.artifacts["torch"])
    task = load_task(run.task_spec.get("source") or run.task, seed=run.seed, cache_dir=cache_dir)
    inputs = task.test.x[:512]
    shape = tuple(spec["input_shape"])
    if format == "onnx":
        return export_onnx(model, shape, to, inputs)
    return export_torchscript(model, shape, to, inputs)


def profile(
    path: str | Path, settings: ProfileSettings | None = None,
    shape: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Profile an ONNX file (onnxruntime) or a slimkit model file (.pt, torch eager)."""
    path = Path(path)
    settings = settings or ProfileSettings()
    if path.suffix == ".pt":
        from slimkit.measure.profile import model_stats

        model, spec = load_model(path)
        input_shape = tuple(spec["input_shape"])
        dtype = spec.get("input_dtype", "float32")
        return {"backend": "torch", "input_shape": list(input_shape),
                **profile_torch(model, input_shape, settings, dtype),
                **model_stats(model, input_shape, dtype)}
    input_shape = resolve_shape(path, shape)
    result = profile_onnx(path, settings, shape=input_shape)
    return {"backend": "onnxruntime", "input_shape": list(input_shape),
            "size_bytes": path.stat().st_size, **result}


def explain(run: str | Path | Run, candidate: str, *, batch: int = 256, runs: int = 50,
            threads: int = 1) -> dict[str, Any]:
    """Per-operator onnxruntime time of ``candidate`` next to its nearest float ancestor, the
    compute operators that stayed in float, and the Quantize/Dequantize overhead."""
    from slimkit.measure.ort_ops import explain as summarize
    from slimkit.measure.ort_ops import op_times

    run = run if isinstance(run, Run) else load_run(run)
    assert run.path is not None
    cand = run.candidate(candidate)
    reference = cand
    while reference.parent is not None and (reference is cand or "torch" not in
                                            reference.artifacts):
        reference = run.candidate(reference.parent)
    if reference is cand:
        raise StoreError(f"candidate {candidate} has no float ancestor to compare with")
    shape = tuple(run.task_spec["input_shape"])
    ours = op_times(run.path / cand.artifacts["onnx"], shape, batch, runs, threads)
    theirs = op_times(run.path / reference.artifacts["onnx"], shape, batch, runs, threads)
    return {"candidate": cand.id, "reference": reference.id, "technique": cand.technique,
            "params": {k: cand.params.get(k) for k in ("mode", "excluded", "per_channel")
                       if k in cand.params},
            "candidate_ops": ours, "reference_ops": theirs, **summarize(ours, theirs)}
