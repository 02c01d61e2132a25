"""Terminal tables (rich) for runs, tasks and models."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from rich import box
from rich.markup import escape
from rich.table import Table

from slimkit.core.objectives import OBJECTIVES
from slimkit.core.runs import Candidate, Run
from slimkit.measure.format import (
    fmt_bytes,
    fmt_count,
    fmt_delta,
    fmt_metric,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
)
from slimkit.tasks.metrics import PERCENT_METRICS


def _compare(c: Candidate, base: Candidate | None, metric: str) -> list[str]:
    """Ratios and deltas against the baseline: ``-0.4pt``, ``3.10x`` (latency, throughput,
    size: higher is better for each)."""
    if base is None or c.status != "ok":
        return ["", "", "", ""]
    delta = fmt_delta(c.metric("val", metric), base.metric("val", metric), metric)
    return [delta, fmt_ratio(base.latency_ms(), c.latency_ms(), False),
            fmt_ratio(base.throughput(), c.throughput(), True),
            fmt_ratio(base.size_bytes, c.size_bytes, False)]


def _cells(c: Candidate, run: Run, wide: bool, stacked: bool) -> list[str]:
    """One candidate's row. Inline: ``0.014 ms 1.99x``, status in its own column. Stacked
    (narrow consoles): ratios under their values, the marks under the id and the status under
    the technique."""
    metric, base = run.metric_name, run.baseline
    delta, speed, thr_ratio, size_ratio = _compare(c, base, metric)
    if c is base:  # its ratios are 1 by definition
        delta = speed = thr_ratio = size_ratio = ""
    sep = "\n" if stacked else " "

    def join(value: str, ratio: str) -> str:
        return value if ratio in ("", "-") or value == "-" else f"{value}{sep}{ratio}"

    marks = [m for m in ("baseline", "selected") if getattr(run, f"{m}_id") == c.id]
    status = c.status if c.status != "ok" or c.feasible else "infeasible"
    notes = [n.replace("_", " ") for n in (*c.flags, *c.violations)]
    notes += [c.error] if c.error else []
    status += f" ({'; '.join(notes)})" if notes else ""
    cells = [sep.join([c.id, *marks]), c.parent or "-",
             f"{c.technique}\n{status}" if stacked else c.technique,
             join(fmt_metric(c.metric("val", metric), metric), delta),
             fmt_metric(c.metric("test", metric), metric),
             join(fmt_ms(c.latency_ms()), speed),
             join(fmt_rate(c.throughput()), thr_ratio),
             join(fmt_bytes(c.size_bytes), size_ratio)]
    if wide:
        cells += [fmt_ms(c.latency_ms("torch")), fmt_count(c.stat("params")),
                  fmt_count(c.stat("macs"))]
    return cells if stacked else [*cells, status]


TEXT_COLUMNS = ("id", "from", "technique", "status")  # may wrap at spaces; numbers never do
GAP = 2  # between two columns: right padding and the (blank) rule


def _columns(wide: bool, stacked: bool) -> list[str]:
    columns = ["id", "from", "technique", "val", "test", "latency", "throughput", "size"]
    columns += ["torch", "params", "MACs"] if wide else []
    return columns if stacked else [*columns, "status"]


def _width(columns: list[str], rows: list[list[str]]) -> int:
    """Console columns needed to show ``rows`` without wrapping."""
    return sum(max(len(col), *(len(line) for r in rows for line in r[i].split("\n")))
               for i, col in enumerate(columns)) + GAP * (len(columns) - 1)


def _fit(columns: list[str], rows: list[list[str]], width: int | None) -> list[int | None]:
    """Column widths for ``width`` console columns: numbers get their longest line, text
    columns at least their header and longest word, and the rest of the room in turn up to
    their longest line (None: let rich decide)."""
    if width is None or not rows:
        return [None] * len(columns)
    lines = [[line for r in rows for line in r[i].split("\n")] for i in range(len(columns))]
    longest = [max(len(col), *map(len, ls)) for col, ls in zip(columns, lines, strict=True)]
    least = [max(len(col), *(len(w) for line in ls for w in line.split()))
             if col in TEXT_COLUMNS else longest[i]
             for i, (col, ls) in enumerate(zip(columns, lines, strict=True))]
    room = width - GAP * (len(columns) - 1) - sum(least)
    if room < 0:
        return [None] * len(columns)
    sizes = list(least)
    for i in range(len(columns)):
        extra = min(longest[i] - sizes[i], room)
        sizes[i] += extra
        room -= extra
    return list(sizes)


def run_table(run: Run, wide: bool = False, width: int | None = None) -> Table:
    """One row per candidate: val and test metric, latency, throughput and size, each with its
    ratio to the baseline, and the status; ``wide`` adds torch latency, params and MACs.

    Ratios are inline (``0.014 ms 1.99x``) when every row fits ``width`` columns on one line,
    else stacked under their value; numbers are not broken, text wraps at spaces. Only when
    even that does not fit (``wide`` in a narrow terminal) do numbers fold, never cut."""
    stacked = False
    rows = [_cells(c, run, wide, stacked) for c in run.candidates]
    if width is not None and rows and _width(_columns(wide, stacked), rows) > width:
        stacked = True
        rows = [_cells(c, run, wide, stacked) for c in run.candidates]
    columns = _columns(wide, stacked)
    batch = next((c.throughput_batch() for c in run.candidates if c.throughput_batch()), "?")
    table = Table(title=f"run {run.run} · task {run.task} · seed {run.seed} · "
                        f"{run.env.get('threads', '?')} thread(s) · {run.env.get('cpu', '')}",
                  caption=f"val and test: {run.metric_name}; ratios (x: times better) and "
                          f"deltas against the baseline {run.baseline_id or '-'}; onnxruntime "
                          f"latency at batch 1, throughput at batch {batch}"
                          + ("; torch: eager latency at batch 1" if wide else ""),
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    sizes = _fit(columns, rows, width)
    fits = width is None or None not in sizes  # else rich narrows the columns: numbers fold
    for col, size in zip(columns, sizes, strict=True):
        text = col in TEXT_COLUMNS
        table.add_column(col, justify="left" if text else "right", width=size,
                         overflow="fold", no_wrap=not text and fits)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def profile_table(title: str, profile: dict[str, Any]) -> Table:
    """A two-column table of one backend's profile."""
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    latency = profile.get("latency_ms", {})
    for q in ("p50", "p95", "p99"):
        table.add_row(f"latency {q} (batch {latency.get('batch')})", fmt_ms(latency.get(q)))
    table.add_row(f"throughput (batch {profile.get('throughput_batch')})",
                  f"{profile.get('throughput_sps', 0):,.0f} samples/s")
    for key, label, fmt in (("size_bytes", "file size", fmt_bytes),
                            ("params", "params", fmt_count),
                            ("nonzero_params", "non-zero params", fmt_count),
                            ("macs", "MACs per sample", fmt_count)):
        if key in profile:
            table.add_row(label, fmt(profile[key]))
    if "peak_rss_mb" in profile:
        table.add_row("peak memory (process RSS)", f"{profile['peak_rss_mb']:.1f} MB")
    table.add_row("threads", str(profile.get("threads")))
    return table


def threads_table(run: Run) -> Table | None:
    """onnxruntime latency and throughput of each candidate at every profiled thread count
    (``profile.threads: [1, all]``); None when only one count was profiled."""
    counts = sorted({int(n) for c in run.candidates
                     for n in (c.profile.get("onnxruntime_threads") or {})})
    if not counts:
        return None
    first = run.env.get("threads", "?")
    table = Table(title="onnxruntime by thread count",
                  caption=f"the {first}-thread profile decides (objective, ratios)")
    table.add_column("id", no_wrap=True)
    for n in [first, *counts]:
        table.add_column(f"latency {n}t", justify="right")
        table.add_column(f"throughput {n}t", justify="right")
    for c in run.candidates:
        cells = [c.id]
        profiles = [c.profile.get("onnxruntime") or {},
                    *[(c.profile.get("onnxruntime_threads") or {}).get(str(n), {})
                      for n in counts]]
        for prof in profiles:
            thr = prof.get("throughput_sps")
            cells += [fmt_ms((prof.get("latency_ms") or {}).get("p50")),
                      "-" if thr is None else f"{thr:,.0f}/s"]
        table.add_row(*cells)
    return table


def study_tables(run: Run) -> list[Table]:
    """For each tune step: trial counts, best value and parameters, parameter importances."""
    tables = []
    for c in run.candidates:
        study = c.params.get("study")  # the summary a technique with a study of its own keeps
        if not study:
            continue
        table = Table(title=f"{c.id}: Optuna study {study['study']} · trials "
                            + ", ".join(f"{n} {k}" for k, n in study["counts"].items()))
        table.add_column("parameter")
        table.add_column("best value", justify="right")
        table.add_column("importance", justify="right")
        best = study.get("best_params") or (study.get("pareto_trials") or [{}])[0].get(
            "params", {})
        for name, value in best.items():
            importance = study.get("importances", {}).get(name)
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            table.add_row(escape(name), escape(shown),
                          "-" if importance is None else f"{importance:.3f}")
        if "best_value" in study:
            table.caption = (f"best val value {study['best_value']:.4f} (trial "
                             f"{study['best_trial']}); the candidate is retrained with these")
        else:
            table.caption = f"{len(study['pareto_trials'])} Pareto-optimal trials"
        tables.append(table)
    return tables


def search_table(run: Run) -> Table | None:
    """Every trial of an ``optimize`` search: chain, val metric, objective, feasibility."""
    search = run.config.get("search")
    if not search:
        return None
    objective = run.config.get("objective", "latency")
    unit = OBJECTIVES[objective].unit
    front = set(search.get("pareto_trials", []))
    rows = search.get("trials", [])
    feasible = [r for r in rows if r["state"] == "complete" and (r["constraint"] or 0) <= 0]
    table = Table(title=f"search {search['study']} · {len(rows)} trials, {len(feasible)} "
                        f"feasible, {len(front)} on the feasible Pareto front",
                  caption="values measured in the trial (quicker timing); finalists are "
                          "measured again in full as candidates")
    for col in ("trial", "chain", f"val {run.metric_name}",
                f"{objective} ({unit})", "feasible", "seconds"):
        table.add_column(col, justify="left" if col in ("trial", "chain") else "right")
    for r in rows:
        values = r.get("values") or [None, None]
        ok = r["state"] == "complete"
        table.add_row(
            f"{r['number']}{' *' if r['number'] in front else ''}",
            escape(str(r.get("chain") or "-")),
            "-" if values[0] is None else f"{values[0]:.4f}",
            "-" if values[1] is None else f"{values[1]:.4g}",
            ("yes" if (r["constraint"] or 0) <= 0 else "no") if ok else escape(
                f"{r['state']}: {(r.get('error') or '')[:60]}"),
            "-" if r.get("seconds") is None else f"{r['seconds']:.1f}")
    return table


def gains_line(run: Run) -> str:
    """One sentence: the selected candidate against the baseline, on test data."""
    base, chosen, metric = run.baseline, run.selected, run.metric_name
    if base is None or chosen is None:
        return "selected: none (no candidate meets every constraint)"
    if chosen.id == base.id:
        return f"selected: the baseline {base.id} (no other candidate met the constraints)"
    label = chosen.params.get("chain") or chosen.technique
    return f"selected {chosen.id} ({label}) vs baseline {base.id}: {_gains(chosen, base, metric)}"


def _gains(chosen: Candidate, base: Candidate, metric: str) -> str:
    """``2.00x lower latency at batch 1, 9.53x throughput at batch 256, 1.62x smaller, test
    accuracy -0.4pt``."""
    test, base_test = chosen.metric("test", metric), base.metric("test", metric)
    delta = ("" if test is None or base_test is None
             else f", test {metric} {fmt_delta(test, base_test, metric)}")
    return (f"{fmt_ratio(base.latency_ms(), chosen.latency_ms(), False)} lower latency at "
            f"batch 1, {fmt_ratio(base.throughput(), chosen.throughput(), True)} throughput at "
            f"batch {chosen.throughput_batch() or '?'}, "
            f"{fmt_ratio(base.size_bytes, chosen.size_bytes, False)} smaller{delta}")


def _schema_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON-schema property as a short type: ``number``, ``one of a, b``, ``list of int``."""
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "$ref" in prop:
        return f"settings ({prop['$ref'].rsplit('/', 1)[-1]})"
    if "anyOf" in prop:
        kinds = [_schema_type(p, defs) for p in prop["anyOf"]]
        return " or ".join(k for k in kinds if k != "null") + (
            " or null" if "null" in kinds else "")
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_schema_type(prop.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in prop:
        return f"map of {_schema_type(prop['additionalProperties'], defs)}"
    return {"integer": "int", "number": "number", "boolean": "bool", "string": "text"}.get(
        kind, kind)


def _bounds(prop: dict[str, Any]) -> str:
    """``0 < x <= 10`` from a property's (or its variants') limits."""
    for variant in [prop, *prop.get("anyOf", [])]:
        low = ([f"{variant['minimum']} <="] if "minimum" in variant else
               [f"{variant['exclusiveMinimum']} <"] if "exclusiveMinimum" in variant else [])
        high = ([f"<= {variant['maximum']}"] if "maximum" in variant else
                [f"< {variant['exclusiveMaximum']}"] if "exclusiveMaximum" in variant else [])
        if low or high:
            return " ".join([*low, "x", *high])
    return ""


def parameters_table(name: str, description: str, config: type[BaseModel]) -> Table:
    """Every parameter of a technique, read from its schema: name, type and allowed values,
    default (or ``required``), description."""
    schema = config.model_json_schema()
    defs, required = schema.get("$defs", {}), set(schema.get("required", []))
    table = Table(title=f"technique {name}: {description}",
                  caption="nested settings (train, finetune, ...) take the trainer's fields; "
                          "see `slimkit techniques train`")
    for col in ("parameter", "type (allowed)", "default", "description"):
        table.add_column(col, overflow="fold")
    for key, prop in schema.get("properties", {}).items():
        field = config.model_fields[key]
        allowed = " ".join(part for part in (_schema_type(prop, defs), _bounds(prop)) if part)
        default = "required" if key in required else _default_text(field)
        table.add_row(key, escape(allowed), escape(default), escape(field.description or ""))
    return table


def _default_text(field: Any) -> str:
    """A field's default; nested settings show only what differs from their own defaults."""
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        changed = value.model_dump(exclude_defaults=True)
        return "{" + ", ".join(f"{k}: {v}" for k, v in changed.items()) + "}"
    return json.dumps(value) if isinstance(value, str | bool) or value is None else str(value)


def techniques_table(registry: Any) -> Table:
    """One row per technique: role, description and parameter names (``required`` marked)."""
    table = Table(title="techniques",
                  caption="`slimkit techniques NAME` documents every parameter; `slimkit "
                          "optimize --techniques` chains those with a role: one per role, "
                          "compress then precision")
    for col in ("name", "role", "description", "parameters"):
        table.add_column(col, overflow="fold")
    for name in registry.names():
        cls = registry.get(name)
        required = set(cls.Config.model_json_schema().get("required", []))
        params = ", ".join(f"{k} (required)" if k in required else k
                           for k in cls.Config.model_fields)
        table.add_row(name, cls.role or "-", cls.description, params)
    return table


OBJECTIVE_WORDS = {"latency": "the lowest onnxruntime latency at batch 1",
                   "size": "the smallest file",
                   "throughput": "the highest throughput"}


def _constraint_words(run: Run) -> str:
    limits = []
    for key, value in run.constraints.items():
        if value is None:
            continue
        if key == "max_accuracy_drop":
            drop = (f"{100 * value:g} pt" if run.metric_name in PERCENT_METRICS
                    else f"{value:g}")
            limits.append(f"val {run.metric_name} at most {drop} worse than {run.baseline_id}")
        elif key == "max_latency_ms":
            limits.append(f"latency <= {fmt_ms(value)}")
        elif key == "max_size_bytes":
            limits.append(f"size <= {fmt_bytes(value)}")
    return " and ".join(limits) or "no constraint"


def summary_lines(run: Run, folder: str) -> list[str]:
    """The end of `run`/`optimize` in plain words: what was selected and why, a warning when
    the tuned reference did worse on test than the untuned baseline, and the commands that use
    the result."""
    objective = run.config.get("objective", "latency")
    feasible = [c for c in run.candidates if c.status == "ok" and c.feasible]
    chosen = run.selected
    if chosen is None:
        lines = [f"Nothing was selected: no candidate meets {_constraint_words(run)}."]
    else:
        label = chosen.params.get("chain") or chosen.technique
        among = (f"the {len(feasible)} candidate(s) that meet {_constraint_words(run)}"
                 if any(v is not None for v in run.constraints.values())
                 else f"the {len(feasible)} candidate(s) (no constraint set)")
        lines = [f"Selected {chosen.id} ({label}): {OBJECTIVE_WORDS.get(objective, objective)} "
                 f"of {among} (judged on val; test only reports)."]
        if run.baseline is not None and chosen.id != run.baseline.id:
            lines.append(f"Against the baseline {run.baseline.id}: "
                         f"{_gains(chosen, run.baseline, run.metric_name)}.")
    lines += _overfit_note(run)
    if chosen is not None:
        lines.append(f"Next: `slimkit serve {folder}` to serve it over HTTP, `slimkit export "
                     f"{folder} --to model.onnx` for the file, `slimkit show {folder}` for every "
                     f"measurement, {folder}/report.html for the report.")
    return lines


def _overfit_note(run: Run) -> list[str]:
    """A note when the reference is the tuned c1 and it does worse than c0 on test."""
    metric, sign = run.metric_name, 1.0 if run.task_spec.get("direction") != "minimize" else -1.0
    base, tuned = run.candidate("c0"), run.baseline
    if tuned is None or base is None or tuned.id == base.id or tuned.technique != "tune":
        return []
    test, base_test = tuned.metric("test", metric), base.metric("test", metric)
    if test is None or base_test is None or sign * (test - base_test) >= 0:
        return []
    return [f"Note: the tuned reference {tuned.id} beat {base.id} on val "
            f"({fmt_delta(tuned.metric('val', metric), base.metric('val', metric), metric)}) "
            f"but is worse on test ({fmt_delta(test, base_test, metric)}): the tuning pass may "
            f"have overfit val. Val decides, as it must; more val data or fewer tuning trials "
            f"would make that choice surer."]
