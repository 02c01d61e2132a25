"""Regenerate docs/report.png: RUN/report.html rendered by headless Chromium (offline).

Usage: python benchmarks/report_screenshot.py RUN [--out docs/report.png] [--height 1700]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

from slimkit.api import load_run
from slimkit.report.html import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/report.png"))
    parser.add_argument("--height", type=int, default=1700)
    args = parser.parse_args()
    page_path = write_report(load_run(args.run))  # with this version's formatting
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (`make test` installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(offline=True, viewport={"width": 1280,
                                                           "height": args.height}).new_page()
        page.goto(page_path.as_uri())
        page.wait_for_selector("div.plot svg.main-svg")
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"wrote {args.out} from {page_path}")


if __name__ == "__main__":
    main()
