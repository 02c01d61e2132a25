"""The HTML report, opened in a real headless Chromium with the network cut off."""

from __future__ import annotations

import copy
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

from slimkit.api import load_run
from slimkit.cli import main
from slimkit.core.runs import Run
from slimkit.report.html import render, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


HOSTILE = "x' onmouseover='alert(1)' y='<img src=x onerror=alert(2)>"


def _many(tmp_path: Path, tiny_run) -> Run:
    """The tiny run plus derived candidates: other sizes, a failed one, hostile strings."""
    folder = tmp_path / "run"
    shutil.copytree(tiny_run.path, folder)
    run = load_run(folder)
    c0 = run.candidates[0]
    for i, size in enumerate((5_000, 90_000, 1_200), start=1):
        extra = copy.deepcopy(c0)
        extra.id, extra.parent, extra.technique = f"c{i}", "c0", HOSTILE if i == 2 else "prune"
        extra.profile["size_bytes"] = size
        extra.params = {"chain": HOSTILE}
        run.candidates.append(extra)
    failed = copy.deepcopy(c0)
    failed.id, failed.parent, failed.status, failed.error = "c4", "c1", "failed", HOSTILE
    failed.profile, failed.metrics = {}, {}
    run.candidates.append(failed)
    return run


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_hostile_strings_stay_text(tmp_path: Path, tiny_run) -> None:
    parser = _Tags()
    parser.feed(render(_many(tmp_path, tiny_run)))
    assert not any(tag == "img" for tag, _ in parser.tags)
    assert not any(name.startswith("on") for _, attrs in parser.tags for name, _ in attrs)


def test_report_renders_offline_in_a_real_browser(tmp_path: Path, tiny_run) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is missing; `make test` installs it"
    path = write_report(_many(tmp_path, tiny_run))
    errors: list[str] = []
    fetched: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(offline=True).new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith("file:") else fetched.append(
            r.url))
        page.goto(path.as_uri())
        page.wait_for_selector("div.plot svg.main-svg")
        plots = page.locator("div.plot")
        assert plots.count() >= 2  # the Pareto plot and the training curves
        for i in range(plots.count()):
            assert plots.nth(i).locator("svg.main-svg").count() > 0, f"plot {i} is empty"
        assert page.locator(".card .metric").count() >= 6
        header = page.locator("table.sortable th").filter(has_text=re.compile("^size$"))
        header.click()
        header.click()  # descending: the first row is the largest file
        cells = page.locator("table.sortable tbody tr td:nth-child(12)")
        sizes = cells.evaluate_all("cells => cells.map(c => c.dataset.v)")
        known = [int(v) for v in sizes if v]
        assert len(known) == 4 and known == sorted(known, reverse=True)
        assert sizes[-1] == ""  # the failed candidate has no size: last
        shown = cells.all_inner_texts()  # formatted as in the terminal, sorted by raw value
        assert all(re.fullmatch(r"\d+(\.\d)? (B|KB|MB)", t) for t in shown[:4]), shown
        rates = page.locator("table.sortable tbody tr td:nth-child(10)").all_inner_texts()
        assert all(re.fullmatch(r"[\d,]+/s", t) for t in rates[:4]), rates
        assert "e+" not in page.locator("table.sortable").inner_text()  # no raw floats
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == [] and fetched == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_is_self_contained(tiny_run) -> None:
    text = render(tiny_run)
    assert "<script src=" not in text and "<link" not in text  # nothing to fetch
    assert "Plotly.newPlot" in text and "Environment" in text and "Recipe" in text


def test_report_command(tmp_path: Path, tiny_run, capsys) -> None:
    folder = tmp_path / "run"
    shutil.copytree(tiny_run.path, folder)
    assert main(["report", str(folder)]) == 0
    assert (folder / "report.html").is_file()
    assert "report written to" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
