"""slimkit installs as a package: a wheel built from this tree, installed apart from the source
tree, runs the command line from another folder (built-in tasks, a baseline with its report,
the examples copied out of the package)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_installed_apart_from_the_source_runs(tmp_path: Path) -> None:
    wheels = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(wheels), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("slimkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "slimkit/cli.py" in names and "slimkit/__main__.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    target = tmp_path / "installed"  # the wheel's files, not the editable source tree
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--target", str(target), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the editable install
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def slimkit(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "slimkit", *args], capture_output=True,
                              text=True, check=True, cwd=elsewhere, env=env).stdout

    where = subprocess.run([sys.executable, "-c", "import slimkit; print(slimkit.__file__)"],
                           capture_output=True, text=True, check=True, cwd=elsewhere,
                           env=env).stdout.strip()
    assert Path(where).is_relative_to(target), where
    assert "mnist1d" in slimkit("tasks") and "digits" in slimkit("tasks")
    slimkit("baseline", "--task", "digits", "--model", "mlp", "--set", "train.epochs=1",
            "--set", "profile.min_runs=5", "--set", "profile.min_seconds=0",
            "--out", "run", "--quiet")
    assert (elsewhere / "run" / "run.json").is_file()
    assert (elsewhere / "run" / "report.html").stat().st_size > 10_000
    assert (target / "bin" / "slimkit").is_file()  # the console script
    assert "files to ex" in slimkit("examples", "--to", "ex")  # out of the wheel
    assert (elsewhere / "ex" / "byo" / "recipe.yaml").is_file()
    assert (elsewhere / "ex" / "recipes" / "tree.yaml").is_file()
