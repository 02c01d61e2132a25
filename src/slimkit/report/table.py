"""Terminal tables (rich) for runs, tasks and models."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from slimkit.pipeline.run import Candidate, Run
from slimkit.report.format import fmt_bytes, fmt_count, fmt_ms, fmt_pct


def _ort(c: Candidate, key: str) -> Any:
    return c.profile.get("onnxruntime", {}).get(key)


def run_table(run: Run) -> Table:
    """One row per candidate: accuracy, latency, throughput, size, params, MACs."""
    metric = run.task_spec.get("metric", "accuracy")
    table = Table(title=f"run {run.run} · task {run.task} · seed {run.seed} · "
                        f"{run.env.get('threads', '?')} thread(s) · {run.env.get('cpu', '')}")
    for col in ("id", "parent", "technique", f"val {metric}", f"test {metric}",
                "ort p50 b=1", "ort thr b=256", "torch p50 b=1", "size", "params",
                "MACs", "status"):
        left = col in ("id", "parent", "technique")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    for c in run.candidates:
        latency = _ort(c, "latency_ms") or {}
        torch_latency = c.profile.get("torch", {}).get("latency_ms", {})
        thr = _ort(c, "throughput_sps")
        marks = [m for m in ("baseline", "selected") if getattr(run, f"{m}_id") == c.id]
        table.add_row(
            c.id + (f" ({', '.join(marks)})" if marks else ""),
            c.parent or "-",
            c.technique,
            fmt_pct(c.metric("val", metric)),
            fmt_pct(c.metric("test", metric)),
            fmt_ms(latency.get("p50")),
            "-" if thr is None else f"{thr:,.0f}/s",
            fmt_ms(torch_latency.get("p50")),
            fmt_bytes(c.profile.get("size_bytes")),
            fmt_count(c.profile.get("params")),
            fmt_count(c.profile.get("macs")),
            c.status + (f" [{', '.join(c.flags)}]" if c.flags else ""),
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
