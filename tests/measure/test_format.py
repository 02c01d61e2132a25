"""The one number formatter of the terminal, the progress lines and the report."""

from __future__ import annotations

import pytest

from slimkit.measure.format import (
    fmt_bytes,
    fmt_count,
    fmt_delta,
    fmt_metric,
    fmt_ms,
    fmt_objective,
    fmt_rate,
    fmt_ratio,
)


@pytest.mark.parametrize(("fmt", "value", "text"), [
    (fmt_ms, 0.026041, "0.026 ms"), (fmt_ms, 321.04, "321.040 ms"), (fmt_ms, None, "-"),
    (fmt_rate, 14009.4, "14,009/s"), (fmt_rate, 1_986_085.2, "1,986,085/s"),
    (fmt_bytes, 999, "999 B"), (fmt_bytes, 34_700, "34.7 KB"), (fmt_bytes, 2_496_000, "2.5 MB"),
    (fmt_bytes, 3.2e9, "3.2 GB"), (fmt_count, 2_496_000, "2.50M"), (fmt_count, 4850, "4.85k"),
    (fmt_count, 12, "12"), (fmt_count, None, "-"),
])
def test_units_separators_and_digits(fmt, value, text: str) -> None:
    assert fmt(value) == text


def test_metrics_deltas_ratios_and_objectives() -> None:
    assert fmt_metric(0.97204, "accuracy") == "97.20%"
    assert fmt_metric(0.012345, "mse") == "0.0123"
    assert fmt_delta(0.9375, 0.9514, "accuracy") == "-1.4pt"
    assert fmt_delta(0.5, 0.25, "mse") == "+0.2500"
    assert fmt_ratio(0.014, 0.007, higher_is_better=False) == "2.00x"
    assert fmt_ratio(100.0, 953.0, higher_is_better=True, word=" faster") == "9.53x faster"
    assert fmt_ratio(None, 1.0, True) == "-"
    assert fmt_objective("latency", 0.0128) == "0.013 ms"
    assert fmt_objective("size", 21_400) == "21.4 KB"
    assert fmt_objective("throughput", 14009.0) == "14,009/s"
