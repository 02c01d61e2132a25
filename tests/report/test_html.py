"""The HTML report, opened in a real headless Chromium with the network cut off."""

from __future__ import annotations

import shutil
from pathlib import Path

from slimkit.api import load_run
from slimkit.cli import main
from slimkit.report.html import render, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_offline_in_a_real_browser(tmp_path: Path, tiny_run) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is missing; `make test` installs it"
    folder = tmp_path / "run"
    shutil.copytree(tiny_run.path, folder)
    path = write_report(load_run(folder))
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
        header = page.locator("table.sortable th", has_text="size bytes")
        header.click()
        header.click()  # descending: the first row is the largest file
        sizes = [int(v) for v in page.locator("table.sortable tbody tr td:nth-child(12)")
                 .evaluate_all("cells => cells.map(c => c.dataset.v)")]
        assert sizes == sorted(sizes, reverse=True)
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
