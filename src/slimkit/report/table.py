"""Terminal tables (rich) for runs, tasks and models."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from slimkit.pipeline.run import Candidate, Run
from slimkit.report.format import fmt_bytes, fmt_count, fmt_delta, fmt_metric, fmt_ms


def _ort(c: Candidate, key: str) -> Any:
    return c.profile.get("onnxruntime", {}).get(key)


def _ratio(base: float | None, value: float | None, word: str) -> str:
    if not base or not value:
        return "-"
    return f"{base / value:.2f}x{word}"


def _compare(c: Candidate, base: Candidate | None, metric: str) -> list[str]:
    """Ratios and deltas against the baseline: ``-0.4 pt``, ``3.1x faster``, ``2.0x smaller``."""
    if base is None or c.status != "ok":
        return ["-", "-", "-", "-"]
    val, base_val = c.metric("val", metric), base.metric("val", metric)
    delta = fmt_delta(val, base_val, metric)
    lat = (_ort(c, "latency_ms") or {}).get("p50")
    base_lat = (_ort(base, "latency_ms") or {}).get("p50")
    thr, base_thr = _ort(c, "throughput_sps"), _ort(base, "throughput_sps")
    return [delta, _ratio(base_lat, lat, " faster"),
            _ratio(thr, base_thr, "") if thr and base_thr else "-",
            _ratio(base.profile.get("size_bytes"), c.profile.get("size_bytes"), " smaller")]


def run_table(run: Run) -> Table:
    """One row per candidate: accuracy, latency, throughput, size, params, MACs, and the
    ratio to the baseline."""
    metric = run.task_spec.get("metric", "accuracy")
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
        latency = _ort(c, "latency_ms") or {}
        torch_latency = (c.profile.get("torch") or {}).get("latency_ms", {})
        thr = _ort(c, "throughput_sps")
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
            f"{fmt_ms(latency.get('p50'))} {speed}",
            "-" if thr is None else f"{thr:,.0f}/s {thr_ratio}",
            fmt_ms(torch_latency.get("p50")),
            f"{fmt_bytes(c.profile.get('size_bytes'))} {size_ratio}",
            fmt_count(c.profile.get("params")),
            fmt_count(c.profile.get("macs")),
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


def study_tables(run: Run) -> list[Table]:
    """For each tune step: trial counts, best value and parameters, parameter importances."""
    tables = []
    for c in run.candidates:
        study = c.params.get("study") if c.technique == "tune" else None
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
    unit = {"latency": "ort p50 ms", "size": "bytes", "throughput": "samples/s"}[objective]
    front = set(search.get("pareto_trials", []))
    rows = search.get("trials", [])
    feasible = [r for r in rows if r["state"] == "complete" and (r["constraint"] or 0) <= 0]
    table = Table(title=f"search {search['study']} · {len(rows)} trials, {len(feasible)} "
                        f"feasible, {len(front)} on the feasible Pareto front",
                  caption="values measured in the trial (quicker timing); finalists are "
                          "measured again in full as candidates")
    for col in ("trial", "chain", f"val {run.task_spec.get('metric', 'metric')}",
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
    base, chosen = run.baseline, run.selected
    metric = run.task_spec.get("metric", "accuracy")
    if base is None or chosen is None:
        return "selected: none (no candidate meets every constraint)"
    if chosen.id == base.id:
        return f"selected: the baseline {base.id} (no other candidate met the constraints)"
    label = chosen.params.get("chain") or chosen.technique
    b_lat = (_ort(base, "latency_ms") or {}).get("p50")
    c_lat = (_ort(chosen, "latency_ms") or {}).get("p50")
    test, base_test = chosen.metric("test", metric), base.metric("test", metric)
    delta = ("" if test is None or base_test is None
             else f", test {metric} {fmt_delta(test, base_test, metric)}")
    return (f"selected {chosen.id} ({label}) vs baseline {base.id}: "
            f"{_ratio(b_lat, c_lat, ' lower latency at batch 1')}, "
            f"{_ratio(_ort(chosen, 'throughput_sps'), _ort(base, 'throughput_sps'), '')} "
            f"throughput at batch {_ort(chosen, 'throughput_batch') or '?'}, "
            f"{_ratio(base.profile.get('size_bytes'), chosen.profile.get('size_bytes'), '')}"
            f" smaller{delta}")
