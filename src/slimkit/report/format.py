"""Number formatting shared by tables and reports."""

from __future__ import annotations


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


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


PERCENT_METRICS = ("accuracy", "f1", "top10")  # shares: shown in % with deltas in points


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
