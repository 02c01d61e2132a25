"""The best feasible trials of the search measured again in full, as candidates of the run:
each link of a chain is one, with lineage from the reference (``c2 prune`` -> ``c3 quantize``).
A finalist already measured before an interruption is kept, not measured again."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from torch import nn

from slimkit.core.console import err_console
from slimkit.core.runs import Candidate, Run
from slimkit.core.studies import artifact_store, download
from slimkit.measure.timing import ProfileSettings
from slimkit.models import load_model
from slimkit.pipeline.candidates import materialize
from slimkit.pipeline.search.config import SearchConfig
from slimkit.pipeline.search.records import finalists
from slimkit.tasks import Task


def measure_finalists(run: Run, study: optuna.Study, search: SearchConfig,
                      reference: Candidate, task: Task, settings: ProfileSettings,
                      store: Callable[[Candidate], None]) -> None:
    """Measure every link of the best feasible trials in full; ``store`` adds each candidate
    to the run (and writes run.json) as soon as it is measured."""
    if run.path is None:
        raise ValueError("the run has no folder")
    artifacts = artifact_store(Path(study.user_attrs["slimkit"]["artifacts"]))
    for trial in finalists(study, search):
        with tempfile.TemporaryDirectory(prefix="slimkit-final-") as tmp:
            model, spec = load_model(run.artifact(reference, "torch"))
            parent = reference
            for index, record in enumerate(trial.user_attrs["steps"]):
                done = next((c for c in run.candidates
                             if c.params.get("search_trial") == trial.number
                             and c.params.get("search_link") == index), None)
                if done is None:  # not measured before an interruption
                    try:  # a link made a torch model, or (int8, fp16) only an ONNX file
                        path = download(artifacts, record["artifact"]["id"],
                                        Path(tmp) / f"{index}-{record['artifact']['format']}")
                        if record["artifact"]["format"] == "torch":
                            model, spec = load_model(path)
                    except Exception as err:  # e.g. a worker wrote to another artifact folder
                        err_console.print(f"optimize: finalist trial {trial.number} skipped: "
                                          f"cannot load its models ({type(err).__name__}: {err})")
                        break
                    onnx = path if record["artifact"]["format"] == "onnx" else None
                    done = _finalist(run, trial, index, record, parent, model, spec, task,
                                     settings, onnx)
                    store(done)
                elif "torch" in done.artifacts:
                    model, spec = load_model(run.artifact(done, "torch"))
                if done.status != "ok":
                    break
                parent = done


def _finalist(run: Run, trial: optuna.trial.FrozenTrial, index: int, record: dict[str, Any],
              parent: Candidate, model: nn.Module, spec: dict[str, Any], task: Task,
              settings: ProfileSettings, onnx_source: Path | None) -> Candidate:
    """One link of a finalist chain measured in full (a failure is recorded, not fatal); a
    link that made only an ONNX file is measured from it, next to its float parent ``model``."""
    assert run.path is not None
    cid = f"c{max(int(c.id[1:]) for c in run.candidates) + 1}"
    params = {**record["params"], "search_trial": trial.number, "search_link": index,
              "chain": trial.user_attrs.get("label", "")}
    step = f"search t{trial.number}"
    start = time.perf_counter()
    try:
        candidate = materialize(cid, parent.id, record["technique"], params, model, spec, task,
                                run.path, settings, training=record.get("training"),
                                onnx_source=onnx_source)
    except Exception as err:
        return Candidate(id=cid, parent=parent.id, technique=record["technique"],
                         params=params, status="failed", step=step,
                         error=f"{type(err).__name__}: {err}"[:500])
    candidate.step = step
    candidate.flags = list(record.get("flags", []))
    candidate.timing = {"measure_s": round(time.perf_counter() - start, 3),
                        "trial_s": float(trial.user_attrs.get("trial_seconds", 0.0))}
    return candidate
