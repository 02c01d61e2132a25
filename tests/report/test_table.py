"""Terminal tables fit the console: no line longer than its width, numbers never broken."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from slimkit.core.console import PIPE_WIDTH, output_width
from slimkit.core.runs import Candidate, Run
from slimkit.report.table import run_table


def _candidate(cid: str, parent: str | None, technique: str, acc: float, ms: float,
               sps: float, size: int, flags: list[str] | None = None) -> Candidate:
    return Candidate(
        id=cid, parent=parent, technique=technique, flags=flags or [],
        metrics={"val": {"accuracy": acc}, "test": {"accuracy": acc - 0.01}},
        profile={"size_bytes": size, "params": 4850, "macs": 97410,
                 "onnxruntime": {"latency_ms": {"p50": ms}, "throughput_sps": sps,
                                 "throughput_batch": 256},
                 "torch": {"latency_ms": {"p50": ms * 10}}})


@pytest.fixture
def run() -> Run:
    """A run with long cells: a 7-digit throughput, a -36.1pt delta, a three-word flag."""
    candidates = [_candidate("c0", None, "train", 0.9514, 0.014, 208_341, 34_700),
                  _candidate("c1", "c0", "prune", 0.9375, 0.026, 120_635, 24_100,
                             ["no_speedup"]),
                  _candidate("c2", "c1", "quantize", 0.9375, 0.072, 25_855, 16_200,
                             ["slower_than_parent"]),
                  _candidate("c3", "c0", "distill", 0.5903, 0.007, 1_986_085, 21_400)]
    return Run(run="fits", task="digits", seed=0, env={"threads": 1, "cpu": "AMD EPYC"},
               baseline_id="c0", candidates=candidates, selected_id="c3",
               task_spec={"metric": "accuracy", "direction": "maximize"})


def _render(table, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [80, 100, 200])
@pytest.mark.parametrize("wide", [False, True])
def test_show_fits_the_width_and_keeps_numbers_whole(run: Run, width: int, wide: bool) -> None:
    lines = _render(run_table(run, wide=wide, width=width), width)
    assert max(map(len, lines)) <= width
    text = "\n".join(lines)
    assert "…" not in text  # nothing cut
    if wide and width < 100:
        return  # every column cannot fit in 80: numbers fold, whole
    for number in ("1,986,085/s", "208,341/s", "0.014 ms", "-36.1pt", "34.7 KB", "9.53x"):
        assert number in text, (number, width)  # never folded
    if wide and width >= 100:
        assert "MACs" in text and "97.41k" in text


def test_ratios_are_inline_when_a_row_fits(run: Run) -> None:
    lines = _render(run_table(run, width=200), 200)
    row = next(line for line in lines if line.startswith("c3"))
    assert re.search(r"0\.007 ms 2\.00x .*1,986,085/s 9\.53x", row)
    assert "selected" in row and "ok" in row
    narrow = _render(run_table(run, width=80), 80)
    assert len([line for line in narrow if line.startswith("c")]) == 4  # one row each
    assert any(line.strip().startswith("ok (slower") for line in narrow)


def test_the_width_comes_from_the_terminal_columns_or_100() -> None:
    assert output_width(True, {}) is None  # rich asks the terminal
    assert output_width(False, {}) == PIPE_WIDTH == 100
    assert output_width(False, {"COLUMNS": "80"}) == 80
    assert output_width(True, {"COLUMNS": "200"}) == 200
    assert output_width(False, {"COLUMNS": "wide"}) == 100


def test_the_summary_says_what_was_selected_why_and_what_next(run: Run) -> None:
    from slimkit.report.table import summary_lines

    run.constraints = {"max_accuracy_drop": 0.01}
    for c in run.candidates:
        c.feasible = c.id in ("c0", "c3")
    lines = summary_lines(run, "runs/x")
    assert lines[0].startswith("Selected c3 (distill): the lowest onnxruntime latency at batch 1"
                               " of the 2 candidate(s) that meet val accuracy at most 1 pt "
                               "worse than c0")
    assert lines[1].startswith("Against the baseline c0: 2.00x lower latency")
    assert lines[-1].startswith("Next: `slimkit serve runs/x`")
    assert not any(line.startswith("Note") for line in lines)


def test_a_tuned_reference_worse_on_test_gets_a_note(run: Run) -> None:
    from slimkit.report.table import summary_lines

    tuned = _candidate("c1", "c0", "tune", 0.96, 0.014, 208_341, 34_700)
    tuned.metrics["test"]["accuracy"] = 0.9514 - 0.01 - 0.008  # 0.8 pt below c0 on test
    run.candidates[1] = tuned
    run.baseline_id = "c1"
    (note,) = [line for line in summary_lines(run, "r") if line.startswith("Note")]
    assert "c1 beat c0 on val (+0.9pt) but is worse on test (-0.8pt)" in note
    tuned.metrics["test"]["accuracy"] = 0.96
    assert not [line for line in summary_lines(run, "r") if line.startswith("Note")]


def test_slimkit_show_fits_the_columns_it_is_given(tiny_run) -> None:
    import os
    import subprocess
    import sys

    for width in (80, 200):
        out = subprocess.run([sys.executable, "-m", "slimkit", "show", str(tiny_run.path)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "COLUMNS": str(width)}).stdout
        table = out[:out.index("val and test:")]  # the messages after it are not cut
        assert max(map(len, table.splitlines())) <= width
        assert "c0" in table and "ms" in table
