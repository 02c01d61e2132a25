"""Number formatting shared by the terminal tables, progress lines and the HTML report: units,
thousands separators, a fixed number of digits per kind of value."""

from __future__ import annotations

from slimkit.tasks.metrics import PERCENT_METRICS


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def fmt_count(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def fmt_ms(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.3f} ms"


def fmt_rate(per_second: float | None) -> str:
    """Samples per second with thousands separators: ``14,009/s``."""
    return "-" if per_second is None else f"{per_second:,.0f}/s"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_metric(value: float | None, metric: str) -> str:
    """A metric value: a share in %, anything else (mse, cosine, yours) as a number."""
    if value is None:
        return "-"
    return fmt_pct(value) if metric in PERCENT_METRICS else f"{value:.4f}"


def fmt_delta(value: float | None, base: float | None, metric: str, space: str = "") -> str:
    """``value - base``: in points for shares (``+0.4pt``), else a signed number."""
    if value is None or base is None:
        return "-"
    if metric in PERCENT_METRICS:
        return f"{100 * (value - base):+.1f}{space}pt"
    return f"{value - base:+.4f}"


def ratio(base: float | None, value: float | None, higher_is_better: bool) -> float | None:
    """How many times better ``value`` is than ``base`` (None when either is missing)."""
    if not base or not value:
        return None
    return value / base if higher_is_better else base / value


def fmt_ratio(base: float | None, value: float | None, higher_is_better: bool,
              word: str = "") -> str:
    """``3.10x faster``: the ratio of ``value`` to ``base`` (``-`` when one is missing)."""
    r = ratio(base, value, higher_is_better)
    return "-" if r is None else f"{r:.2f}x{word}"


def fmt_objective(objective: str, value: float | None) -> str:
    """A value of an ``--objective`` with its unit: ``0.013 ms``, ``21.4 KB``, ``14,009/s``."""
    shown = {"latency": fmt_ms, "size": fmt_bytes, "throughput": fmt_rate}.get(objective)
    if shown is None:
        return "-" if value is None else f"{value:.4g}"
    return shown(value)
