"""Terminal tables (rich) for runs, tasks and models."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from slimkit.core.objectives import OBJECTIVES
from slimkit.core.runs import Candidate, Run
from slimkit.report.format import (
    fmt_bytes,
    fmt_count,
    fmt_delta,
    fmt_metric,
    fmt_ms,
    fmt_ratio,
)


def _compare(c: Candidate, base: Candidate | None, metric: str) -> list[str]:
    """Ratios and deltas against the baseline: ``-0.4 pt``, ``3.1x faster``, ``2.0x smaller``."""
    if base is None or c.status != "ok":
        return ["-", "-", "-", "-"]
    delta = fmt_delta(c.metric("val", metric), base.metric("val", metric), metric)
    return [delta, fmt_ratio(base.latency_ms(), c.latency_ms(), False, " faster"),
            fmt_ratio(base.throughput(), c.throughput(), True),
            fmt_ratio(base.size_bytes, c.size_bytes, False, " smaller")]


def run_table(run: Run) -> Table:
    """One row per candidate: accuracy, latency, throughput, size, params, MACs, and the
    ratio to the baseline."""
    metric = run.metric_name
    base = run.baseline
    table = Table(title=f"run {run.run} · task {run.task} · seed {run.seed} · "
                        f"{run.env.get('threads', '?')} thread(s) · {run.env.get('cpu', '')}",
                  caption="ratios and deltas are against the baseline; onnxruntime (ort) and "
                          "torch eager latency at batch 1, throughput at batch 256")
    for col in ("id", "parent", "technique", f"val {metric}", f"test {metric}",
                "ort latency", "ort throughput", "torch latency", "size", "params", "MACs",
                "status"):
        left = col in ("id", "parent", "technique")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    for c in run.candidates:
        thr = c.throughput()
        marks = [m for m in ("baseline", "selected") if getattr(run, f"{m}_id") == c.id]
        delta, speed, thr_ratio, size_ratio = _compare(c, base, metric)
        status = c.status if c.status != "ok" or c.feasible else "infeasible"
        notes = [*c.flags, *c.violations] + ([c.error] if c.error else [])
        table.add_row(
            c.id + (f" ({', '.join(marks)})" if marks else ""),
            c.parent or "-",
            c.technique,
            f"{fmt_metric(c.metric('val', metric), metric)} {delta}",
            fmt_metric(c.metric("test", metric), metric),
            f"{fmt_ms(c.latency_ms())} {speed}",
            "-" if thr is None else f"{thr:,.0f}/s {thr_ratio}",
            fmt_ms(c.latency_ms("torch")),
            f"{fmt_bytes(c.size_bytes)} {size_ratio}",
            fmt_count(c.stat("params")),
            fmt_count(c.stat("macs")),
            escape(status + (f" ({'; '.join(notes)})" if notes else "")),
        )
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
    test, base_test = chosen.metric("test", metric), base.metric("test", metric)
    delta = ("" if test is None or base_test is None
             else f", test {metric} {fmt_delta(test, base_test, metric)}")
    return (f"selected {chosen.id} ({label}) vs baseline {base.id}: "
            f"{fmt_ratio(base.latency_ms(), chosen.latency_ms(), False)} lower latency at "
            f"batch 1, {fmt_ratio(base.throughput(), chosen.throughput(), True)} throughput at "
            f"batch {chosen.throughput_batch() or '?'}, "
            f"{fmt_ratio(base.size_bytes, chosen.size_bytes, False)} smaller{delta}")
