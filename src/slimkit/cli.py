"""The command line: thin Typer commands that parse, call the public API and print.

Commands import the API (and the tables, which read the task registry) inside their body:
torch, onnxruntime and optuna take seconds to load, and ``slimkit --help`` or a bad flag should
answer at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from slimkit.core.console import console, print_table
from slimkit.core.errors import SlimkitError
from slimkit.core.overrides import split_baseline_overrides
from slimkit.core.usercode import absolute, is_reference
from slimkit.core.validation import validate
from slimkit.measure.timing import ProfileSettings

try:  # Typer >= 0.20 vendors Click; older versions use the click package
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

app = typer.Typer(
    name="slimkit",
    help="Make PyTorch models faster, smaller and more accurate, and prove it with measurements.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (Typer)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SetOption = Annotated[
    Optional[list[str]],  # noqa: UP045 - Typer needs Optional here
    typer.Option("--set", help="override a parameter: model.<p>=V or train.<p>=V (repeatable)"),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
Threads = Annotated[int, typer.Option(min=1, max=256, help="threads for latency/throughput")]
Storage = Annotated[Optional[str],  # noqa: UP045
                    typer.Option(help="Optuna storage URL for tune steps, e.g. "
                                      "postgresql://user@host/db [default: RUN/study.db]")]
Data = Annotated[Optional[str],  # noqa: UP045
                 typer.Option(help="your data: path/to/file.py:function (or package.module:"
                                   "function) returning train/val/test; makes the task custom")]
Metric = Annotated[Optional[str],  # noqa: UP045
                   typer.Option(help="the metric that decides: accuracy, f1 (classification), "
                                     "mse, mae (regression) or your file.py:function "
                                     "[default: the task's]")]
MetricDirection = Annotated[Optional[str],  # noqa: UP045
                            typer.Option(help="maximize or minimize (for your own metric)")]
TaskOption = Annotated[Optional[str],  # noqa: UP045
                       typer.Option(help="a task from `slimkit tasks` [default: mnist1d, or "
                                         "custom with --data]")]
ModelOption = Annotated[Optional[str],  # noqa: UP045
                        typer.Option(help="a model from `slimkit models`, or yours: "
                                          "path/to/file.py:function [default: the task's]")]
TrustCode = Annotated[bool, typer.Option(
    help="let the run's own code run: the file.py:function model, data or metric it names, "
         "or a model stored as a pickle (only for runs you trust)")]
CacheDir = Annotated[Optional[Path],  # noqa: UP045
                     typer.Option(help="where task data is cached [default: ~/.cache/slimkit]")]


@app.command()
def baseline(
    task: TaskOption = None,
    model: ModelOption = None,
    data: Data = None,
    metric: Metric = None,
    metric_direction: MetricDirection = None,
    set_: SetOption = None,
    out: Annotated[Path, typer.Option(help="run folder to create")] = Path("runs/baseline"),
    seed: Annotated[int, typer.Option(help="seed of splits, init and training")] = 0,
    threads: Threads = 1,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """Train, measure and export a baseline model (candidate c0) into a new run folder.

    --set model.<p>=V sets a model parameter (see `slimkit models`); --set train.<p>=V a
    trainer parameter: optimizer (adam|adamw|sgd), lr, momentum, batch_size, epochs,
    schedule (cosine|step|none), step_size, gamma, weight_decay (L2), l1, label_smoothing,
    patience (early stopping; null = off), restore_best; --set profile.<p>=V a measurement
    setting: warmup, min_runs, min_seconds, max_seconds, batch, throughput_batch.
    """
    from slimkit import api
    from slimkit.report import table as tables

    sections = split_baseline_overrides(set_ or [])
    settings = validate(ProfileSettings, {"threads": threads, **sections["profile"]},
                        prefix="profile", error=SlimkitError)
    run = api.baseline(task, model, sections["model"], sections["train"], out=out, seed=seed,
                       threads=settings.threads, cache_dir=cache_dir, progress=not quiet,
                       profile=settings, data=data, metric=metric,
                       metric_direction=metric_direction)
    print_table(tables.run_table(run, width=console.width))
    console.print(f"run written to {out}/run.json; ONNX model: "
                  f"{out}/{run.candidates[0].artifacts['onnx']}; report: {out}/report.html")


@app.command("run")
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="a recipe YAML file")],
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="override any recipe field, e.g. steps.0.params.lr=0.01"),
    ] = None,
    out: Annotated[Path, typer.Option(help="run folder (resumed if it exists)")] = Path(
        "runs/recipe"),
    restart: Annotated[bool, typer.Option(
        help="discard a run of a different recipe in --out and start again")] = False,
    storage: Storage = None,
    model: Annotated[Optional[str],  # noqa: UP045
                     typer.Option(help="replace the recipe's baseline model (a name or "
                                       "path/to/file.py:function)")] = None,
    data: Annotated[Optional[str],  # noqa: UP045
                    typer.Option(help="replace the recipe's data (path/to/file.py:function)")
                    ] = None,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """Run a recipe: baseline, then each step; resumes an interrupted run in --out.

    A recipe of your own data says `task: custom`, `data: data.py:load_data` and `model:
    model.py:build_model` (paths relative to the recipe); --data and --model replace them
    (paths relative to the current folder)."""
    from slimkit import api
    from slimkit.report import table as tables

    overrides = list(set_ or [])
    if data is not None:
        overrides += ["task=custom", f"data={absolute(data) if is_reference(data) else data}"]
    if model is not None:
        overrides.append(f"baseline.model={absolute(model) if is_reference(model) else model}")
    run = api.run_recipe(recipe, out, overrides=overrides, restart=restart, progress=not quiet,
                     cache_dir=cache_dir, storage=storage)
    print_table(tables.run_table(run, width=console.width))
    for line in tables.summary_lines(run, str(out)):
        console.print(escape(line))


@app.command()
def optimize(
    task: TaskOption = None,
    model: ModelOption = None,
    data: Data = None,
    metric: Metric = None,
    metric_direction: MetricDirection = None,
    max_accuracy_drop: Annotated[float, typer.Option(
        help="largest loss of the val metric allowed against the tuned baseline, in the "
             "metric's units (accuracy 0.01 = 1 pt)")
    ] = 0.01,
    objective: Annotated[str, typer.Option(
        help="what the selected model is best at: latency (batch 1), size or throughput")
    ] = "latency",
    budget: Annotated[str, typer.Option(help="wall-clock limit of the whole command, e.g. "
                                             "20m, 1h (kept across resumes)")] = "20m",
    techniques: Annotated[Optional[str], typer.Option(  # noqa: UP045
        help="what chains may use, comma-separated: techniques with a role in `slimkit "
             "techniques` [default: every one that applies to the model]")] = None,
    tune_trials: Annotated[Optional[int],  # noqa: UP045
                           typer.Option(help="tuning trials for the baseline (0: none) "
                                             "[default: 4; 0 for a pretrained model]")] = None,
    trials: Annotated[Optional[int],  # noqa: UP045
                      typer.Option(help="stop the search after this many trials")] = None,
    epochs: Annotated[int, typer.Option(help="training epochs inside a search trial")] = 30,
    finalists: Annotated[int, typer.Option(help="best trials measured again in full")] = 3,
    set_: SetOption = None,
    out: Annotated[Path, typer.Option(help="run folder (resumed if it exists)")] = Path(
        "runs/optimize"),
    seed: Annotated[int, typer.Option(help="seed of splits, init, training and sampler")] = 0,
    threads: Threads = 1,
    storage: Storage = None,
    restart: Annotated[bool, typer.Option(
        help="discard a run of other settings in --out and start again")] = False,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """Find the fastest (or smallest) model within an accuracy budget.

    Trains the baseline with a short tuning pass, searches chains of the registered techniques
    (one per role: what compresses the float model, then what lowers its precision; see `slimkit
    techniques`) with a constrained multi-objective Optuna study, measures the best finalists
    in full and selects the best feasible one. Resumes after a kill; `slimkit worker --storage
    URL` on other machines joins the search.
    """
    from slimkit import api
    from slimkit.report import table as tables

    sections = split_baseline_overrides(set_ or [])
    names = None if techniques is None else [t.strip() for t in techniques.split(",")
                                             if t.strip()]
    run = api.optimize(task, out=out, data=data, metric=metric,
                       metric_direction=metric_direction, max_accuracy_drop=max_accuracy_drop,
                       objective=objective, budget=budget, techniques=names, model=model,
                       model_args=sections["model"], trainer=sections["train"], seed=seed,
                       threads=threads, tune_trials=tune_trials, trials=trials, epochs=epochs,
                       finalists=finalists, profile=sections["profile"], storage=storage,
                       restart=restart, progress=not quiet, cache_dir=cache_dir)
    print_table(tables.run_table(run, width=console.width))
    for line in tables.summary_lines(run, str(out)):
        console.print(escape(line))


@app.command()
def techniques(
    name: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        help="a technique: every parameter with its type, default and description")] = None,
) -> None:
    """List the techniques, their role in a searched chain and their parameters; with a NAME,
    document every parameter of that technique."""
    from slimkit.report import table as tables
    from slimkit.techniques import TECHNIQUES

    if name is None:
        print_table(tables.techniques_table(TECHNIQUES))
        return
    if name not in TECHNIQUES.names():
        raise SlimkitError(f"no technique {name!r}; choose from {', '.join(TECHNIQUES.names())}")
    cls = TECHNIQUES.get(name)
    print_table(tables.parameters_table(name, cls.description, cls.Config))


@app.command()
def show(
    run: Annotated[Path, typer.Argument(help="a run folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print run.json")] = False,
    wide: Annotated[bool, typer.Option(
        "--wide", help="every column: also torch latency, params and MACs")] = False,
) -> None:
    """Show a run's candidates and measurements (--json: the run.json manifest). The table
    fits the terminal (100 columns in a pipe; COLUMNS sets it)."""
    from slimkit import api
    from slimkit.report import table as tables

    loaded = api.load_run(run)
    if as_json:
        assert loaded.path is not None
        sys.stdout.write((loaded.path / "run.json").read_text())
        return
    print_table(tables.run_table(loaded, wide=wide, width=console.width))
    if loaded.running:
        from slimkit.core.studies import owner_alive

        now = loaded.running
        where = f"{now.get('candidate')} (step {now.get('step')}) since {now.get('since')}"
        alive = owner_alive(str(now.get("worker", "")))
        console.print(f"interrupted while computing {where}; run the same command to resume"
                      if alive is False else f"computing {where}"
                      + (" on another machine" if alive is None else ""))
    by_threads = tables.threads_table(loaded)
    if by_threads is not None:
        print_table(by_threads)
    for table in tables.study_tables(loaded):
        print_table(table)
    search = tables.search_table(loaded)
    if search is not None:
        print_table(search)
        console.print(tables.gains_line(loaded))


def _parse_ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SlimkitError(f"{option} {text!r}: expected comma-separated integers") from None
    if not values or any(v < 1 for v in values):
        raise SlimkitError(f"{option} {text!r}: every value must be >= 1")
    return values


@app.command()
def profile(
    model: Annotated[Path, typer.Argument(
        help="an ONNX file or a slimkit model file (model.safetensors)")],
    batch: Annotated[str, typer.Option(help="latency batch,throughput batch")] = "1,256",
    threads: Threads = 1,
    shape: Annotated[Optional[str],  # noqa: UP045
                     typer.Option(help="per-sample input shape, e.g. 1,40")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    trust_code: TrustCode = False,
) -> None:
    """Measure latency, throughput, size and memory of any ONNX file (or slimkit model file,
    in torch eager)."""
    from slimkit import api
    from slimkit.report import table as tables

    batches = _parse_ints(batch, "--batch")
    if len(batches) > 2:
        raise SlimkitError(f"--batch {batch!r}: give one or two sizes (latency,throughput)")
    settings = ProfileSettings(threads=threads, batch=batches[0], throughput_batch=batches[-1])
    dims = _parse_ints(shape, "--shape") if shape else None
    result = api.profile(model, settings, dims, trust_code=trust_code)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print_table(tables.profile_table(f"{model} · {result['backend']} · input "
                                f"{tuple(result['input_shape'])}", result))


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="a run folder")],
    to: Annotated[Path, typer.Option(help="file to write")],
    format: Annotated[str, typer.Option(help="onnx or torchscript")] = "onnx",
    candidate: Annotated[Optional[str],  # noqa: UP045
                         typer.Option(help="candidate id [default: selected]")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing file")] = False,
    cache_dir: CacheDir = None,
    trust_code: TrustCode = False,
) -> None:
    """Export a candidate to ONNX or TorchScript, checked against the torch model."""
    from slimkit import api

    parity = api.export(run, to, candidate=candidate, format=format,  # type: ignore[arg-type]
                        force=force, cache_dir=cache_dir, trust_code=trust_code)
    if parity.get("check") == "class_agreement":
        console.print(f"wrote {to} ({format}); predicted classes agree with the float model on "
                      f"{100 * parity['agreement']:.1f}% of {parity['samples']} test inputs")
        return
    if parity.get("check") in ("cosine", "relative_mae"):
        name = parity["check"].replace("_", " ")
        console.print(f"wrote {to} ({format}); {name} to the float model's outputs "
                      f"{parity[parity['check']]:.4f} on {parity['samples']} test inputs")
        return
    console.print(f"wrote {to} ({format}); outputs match torch on {parity['samples']} test "
                  f"inputs, max abs difference {parity['max_abs_diff']:.2e}")


@app.command("explain")
def explain_cmd(
    run: Annotated[Path, typer.Argument(help="a run folder")],
    candidate: Annotated[str, typer.Option(help="candidate id, e.g. c2")],
    batch: Annotated[int, typer.Option(min=1, help="batch size profiled")] = 256,
    threads: Threads = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Why a quantized candidate is (or isn't) faster: per-operator onnxruntime time next to
    its float ancestor, operators left in float, Quantize/Dequantize overhead."""
    from slimkit import api

    result = api.explain(run, candidate, batch=batch, threads=threads)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    ours, theirs = result["candidate_ops"], result["reference_ops"]
    table = Table(title=f"{result['candidate']} ({result['technique']} "
                        f"{result['params'].get('mode', '')}) vs float {result['reference']} · "
                        f"batch {batch} · {threads} thread(s) · µs per run")
    for col in ("operator", f"{result['reference']} (float)", f"{result['candidate']}",
                "nodes"):
        table.add_column(col, justify="left" if col == "operator" else "right")
    for op in result["ops"]:
        table.add_row(op, f"{theirs['op_us'].get(op, 0):,.1f}", f"{ours['op_us'].get(op, 0):,.1f}",
                      str(ours["op_nodes"].get(op, theirs["op_nodes"].get(op, 0))))
    table.add_row("total", f"{theirs['total_us']:,.1f}", f"{ours['total_us']:,.1f}", "")
    print_table(table)
    left = ", ".join(f"{op} x{n}" for op, n in result["float_compute_ops"].items()) or "none"
    console.print(f"compute operators still in float: {left}")
    console.print(f"Quantize/Dequantize overhead: {result['qdq_us']:,.1f} µs per run "
                  f"({100 * result['qdq_share']:.1f}% of the total)")
    console.print(f"operator time ratio (float / this): {result['speedup']:.2f}x")
    excluded = result["params"].get("excluded")
    if excluded:
        console.print(f"layers excluded by the accuracy fallback: {', '.join(excluded)}")
    console.print(f"why: {result['verdict']}")


@app.command()
def worker(
    run: Annotated[Path, typer.Argument(help="this worker's local folder")],
    storage: Annotated[str, typer.Option(help="the storage URL the search was started with")],
    study: Annotated[Optional[str],  # noqa: UP045
                     typer.Option(help="study name, if the storage holds several")] = None,
    wait: Annotated[float, typer.Option(min=0, help="seconds to wait for the study")] = 60.0,
    follow: Annotated[float, typer.Option(
        min=0, help="seconds to wait for the run's next study (optimize: the search after "
                    "the tuning pass) once one ends; 0: stop after one")] = 300.0,
    artifacts: Annotated[Optional[Path],  # noqa: UP045
                         typer.Option(help="shared folder for trial models")] = None,
    cache_dir: CacheDir = None,
    trust_code: Annotated[bool, typer.Option(
        help="let the code the study names run (its file.py:function model, data or metric)")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Join a distributed search (a tune step or `slimkit optimize`) and run trials until its
    budget or deadline is spent."""
    from slimkit import api
    from slimkit.core.usercode import trusting

    with trusting(trust_code):
        result = api.work(run, storage, study=study, wait_s=wait, follow_s=follow,
                          cache_dir=cache_dir, artifacts=artifacts, progress=not quiet)
    console.print(f"study {result['study']}: this worker ran {result['ran']} trial(s); "
                  f"{result['counted']}/{result['budget']} complete or pruned")


@app.command()
def dashboard(
    run: Annotated[Path, typer.Argument(help="a run folder with a tune step")],
    storage: Storage = None,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
) -> None:
    """Open optuna-dashboard on the run's study storage (needs slimkit[dashboard])."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise SlimkitError("optuna-dashboard is not installed; pip install "
                           "'slimkit[dashboard]'") from None
    from slimkit.core.studies import default_url, open_storage

    url = storage or default_url(run)
    if storage is None and not (run / "study.db").is_file():
        raise SlimkitError(f"{run}: no study.db (this run has no tune step); give --storage")
    console.print(f"optuna-dashboard on http://{host}:{port} (Ctrl-C to stop)")
    run_server(open_storage(url), host=host, port=port)


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="a run folder")],
) -> None:
    """Write RUN/report.html: one self-contained page (plots embedded, works offline)."""
    from slimkit import api
    from slimkit.report.html import write_report

    console.print(f"report written to {write_report(api.load_run(run))}")


@app.command()
def serve(
    target: Annotated[Path, typer.Argument(help="a run folder or an ONNX file")],
    candidate: Annotated[Optional[str],  # noqa: UP045
                         typer.Option(help="candidate id [default: the selected one]")] = None,
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    max_batch: Annotated[int, typer.Option(min=1, help=(
        "largest batch a request may send; it also sets the body-size cap (a larger body is "
        "a 413 before it is read)"))] = 256,
    threads: Threads = 1,
    max_connections: Annotated[int, typer.Option(min=2, help=(
        "open connections, or requests in flight, at which a request is answered 503"))] = 100,
    timeout: Annotated[float, typer.Option(min=0.1, help=(
        "seconds a client has to send a request's headers, and again its body; then a 408 "
        "and the connection is closed"))] = 10.0,
) -> None:
    """Serve a model over HTTP: POST /v1/predict, GET /v1/metadata, GET /healthz, /docs.

    Limits: a body over the cap derived from --max-batch and the input shape is a 413, a
    request not received within --timeout a 408, a saturated server (--max-connections) a 503.
    """
    from slimkit import api

    def ready(served: Any) -> None:
        which = served.metadata.get("candidate") or served.path.name
        console.print(f"serving {which} ({served.path}) on http://{host}:{port} (OpenAPI at "
                      f"/docs; Ctrl-C to stop)")

    api.serve(target, candidate=candidate, host=host, port=port, max_batch=max_batch,
               threads=threads, max_connections=max_connections, timeout=timeout,
               on_ready=ready)


@app.command()
def examples(
    to: Annotated[Path, typer.Option(help="a new folder to copy them into")] = Path(
        "slimkit-examples"),
) -> None:
    """Copy the examples (recipes, your-own-model files, Hugging Face helpers) into a folder,
    from the installed package."""
    import shutil
    from importlib.resources import as_file, files

    if to.exists():
        raise SlimkitError(f"--to {to}: already exists; give a new folder")
    if not to.parent.is_dir():
        raise SlimkitError(f"--to {to}: folder {to.parent} does not exist; create it first")
    with as_file(files("slimkit") / "examples") as source:
        shutil.copytree(source, to, ignore=shutil.ignore_patterns("__pycache__"))
    names = sorted(str(p.relative_to(to)) for p in to.rglob("*") if p.is_file())
    console.print(f"wrote {len(names)} files to {to}: {', '.join(names)}")
    console.print(f"try: slimkit run {to}/recipes/tree.yaml --out runs/tree")


@app.command()
def tasks() -> None:
    """List the built-in tasks."""
    from slimkit.tasks import TASKS

    table = Table(title="tasks")
    for col in ("name", "description", "metric", "default model"):
        table.add_column(col)
    for name in TASKS.names():
        spec = TASKS.get(name)
        table.add_row(name, spec.description, spec.metric, spec.default_model)
    table.add_row("custom", "your data: --data path/to/file.py:function returning train/val/"
                  "test", "accuracy | mse (--metric)", "yours: --model file.py:function")
    print_table(table)


@app.command()
def models() -> None:
    """List the model families and their parameters with defaults."""
    from slimkit.models import MODELS

    table = Table(title="models")
    for col in ("name", "description", "inputs", "parameters (defaults)"):
        table.add_column(col)
    for name in MODELS.names():
        if name.startswith("python:"):
            continue  # model objects of this process (Python API)
        family = MODELS.get(name)
        params = ", ".join(f"{k}={f.default}" for k, f in family.config.model_fields.items())
        ranks = "/".join(f"{r}-d" for r in family.input_ranks)
        if "rows" in family.config.model_fields:  # sequence families: images by their rows
            ranks = "2-d; 3-d with rows=true"
        table.add_row(name, family.description, ranks, params)
    from slimkit.models.hf import HFConfig

    hf = ", ".join(f"{k}={f.default}" for k, f in HFConfig.model_fields.items())
    table.add_row("hf:PATH", "a local Hugging Face folder (config.json + weights + tokenizer)",
                  "token ids", hf)
    table.add_row("file.py:fn", "your function returning a torch.nn.Module", "any",
                  "the keyword arguments it declares; output=NAME")
    print_table(table)


def _version(value: bool) -> None:
    if value:
        from slimkit import __version__  # the package root reads the installed version

        print(f"slimkit {__version__}")
        raise typer.Exit()


_DEBUG = [False]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="print the traceback of an unexpected error")] = False,
) -> None:
    """Make PyTorch models faster, smaller and more accurate, and prove it with measurements."""
    _DEBUG[0] = debug


def _unexpected(err: BaseException) -> int:
    """An error that is not the user's input: one line, the traceback in the run folder's
    error.log (or a temporary file), or on stderr with --debug; exit 1."""
    import tempfile
    import traceback
    from datetime import datetime, timezone

    from slimkit.core.lock import last_written

    trace = "".join(traceback.format_exception(err))
    first = " ".join(str(err).split())[:300] or "no message"
    if _DEBUG[0]:
        print(trace, file=sys.stderr, end="")
        print(f"error: unexpected {type(err).__name__}: {first}", file=sys.stderr)
        return 1
    folder = last_written() or Path(tempfile.gettempdir())
    log = folder / ("error.log" if folder != Path(tempfile.gettempdir()) else
                    "slimkit-error.log")
    try:
        with log.open("a") as handle:
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            handle.write(f"--- {stamp} slimkit {' '.join(sys.argv[1:])}\n{trace}")
        where = f"the traceback is in {log}"
    except OSError:
        where = "rerun with --debug for the traceback"
    print(f"error: unexpected {type(err).__name__}: {first} ({where}; please report it)",
          file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2; internal errors exit 1."""
    try:
        result = app(args=argv, prog_name="slimkit", standalone_mode=False)
    except click_exceptions.UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            print(err.format_message())
            return 0
        print(f"error: {err.format_message()}", file=sys.stderr)
        return 2
    except SlimkitError as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as err:
        return err.exit_code
    except Exception as err:  # not the user's input: a bug, or a failure we did not foresee
        return _unexpected(err)
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
