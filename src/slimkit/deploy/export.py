"""``slimkit export``: a run's candidate written as a deployable file, checked against the torch
model on the task's real test inputs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from slimkit.core.atomic import write_with
from slimkit.core.errors import StoreError
from slimkit.core.runs import Run
from slimkit.measure.onnx import export_onnx
from slimkit.measure.parity import PARITY_SAMPLES
from slimkit.measure.torchscript import export_torchscript
from slimkit.models import load_model
from slimkit.tasks import load_task

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript")


def export_candidate(run: Run, to: str | Path, *, candidate: str | None = None,
                     format: Format = "onnx", force: bool = False,
                     cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Write ``run``'s candidate (default: the selected one, else the baseline) to ``to``;
    returns the parity record. An existing ``to`` is kept unless ``force``."""
    if format not in FORMATS:
        raise StoreError(f"--format {format!r}: choose {' or '.join(FORMATS)}")
    if run.path is None:
        raise StoreError(f"run {run.run!r} is not in a folder")
    cid = candidate or run.selected_id or run.baseline_id
    if cid is None:
        raise StoreError(f"run {run.run!r} has no finished candidate to export")
    chosen = run.candidate(cid)
    to = Path(to)
    if to.exists() and not force:
        raise StoreError(f"{to} already exists; pass --force to replace it")
    if not to.parent.is_dir():
        raise StoreError(f"--to {to}: folder {to.parent} does not exist; create it first")
    if "torch" not in chosen.artifacts:  # a quantized/fp16 candidate: its ONNX file is the model
        if format != "onnx":
            raise StoreError(f"candidate {cid} ({chosen.technique}) exists only as ONNX; "
                             f"export it with --format onnx")
        source = run.artifact(chosen, "onnx")
        write_with(to, lambda tmp: shutil.copyfile(source, tmp))
        return {**chosen.parity, "samples": chosen.parity.get("samples", 0)}
    model, spec = load_model(run.artifact(chosen, "torch"))
    task = load_task(run.task_spec.get("source") or run.task, seed=run.seed, cache_dir=cache_dir)
    inputs = task.test.x[:PARITY_SAMPLES]
    shape = tuple(spec["input_shape"])
    if format == "onnx":
        return export_onnx(model, shape, to, inputs)
    return export_torchscript(model, shape, to, inputs)
