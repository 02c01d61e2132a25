"""Wall time of one tune budget with 1 process vs 2 processes sharing a PostgreSQL study.

Starts a throwaway PostgreSQL cluster (initdb as the postgres user in a temporary folder), then
for N in (1, 2): a fresh database, `slimkit run` with a tune step and `--storage`, plus N-1
`slimkit worker` processes; the wall time is from start until the coordinator has finished the
whole recipe (baseline + search + retraining). Every process uses 1 intra-op thread
(OMP_NUM_THREADS=1) so the 2 processes fit the 2 cores.

Usage: python benchmarks/tune_workers.py [--trials 16] [--epochs 15]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def _as_postgres(*cmd: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    bin_dir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    folder = Path(tempfile.mkdtemp(prefix="slimkit-pg-"))
    os.chmod(folder, 0o777)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _as_postgres(str(bin_dir / "initdb"), "-D", str(folder / "data"), "-A", "trust",
                 "-U", "postgres")
    _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-w", "-l",
                 str(folder / "log"), "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
                 "start")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "slimkit.cli"]
    recipe = {"version": 1, "task": "mnist1d", "seed": 0,
              "baseline": {"model": "cnn1d", "model_args": {"width": 32}, "train": {"epochs": 5}},
              "steps": [{"technique": "tune", "params": {
                  "sampler": "random", "trials": args.trials, "pruner": "none",
                  "train": {"epochs": args.epochs, "patience": None},
                  "space": {"train.lr": {"low": 1e-3, "high": 1e-2, "log": True},
                            "model.width": {"choices": [32, 64]}}}}]}
    walls = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "recipe.yaml"
            path.write_text(yaml.safe_dump(recipe))
            for workers in (1, 2):
                db = f"w{workers}"
                _as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                             "-U", "postgres", db)
                url = f"postgresql://postgres@127.0.0.1:{port}/{db}"
                out = Path(tmp) / db
                start = time.perf_counter()
                coordinator = subprocess.Popen([*cli, "run", str(path), "--out", str(out),
                                                "--storage", url, "--quiet"], env=env)
                extra = [subprocess.Popen([*cli, "worker", str(Path(tmp) / f"{db}-{i}"),
                                           "--storage", url, "--artifacts",
                                           str(out / "artifacts")], env=env,
                                          stdout=subprocess.DEVNULL)
                         for i in range(workers - 1)]
                coordinator.wait()
                walls[workers] = time.perf_counter() - start
                for proc in extra:
                    proc.wait()
                print(f"{workers} process(es): {walls[workers]:.1f} s", flush=True)
    finally:
        _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate",
                     "stop")
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n| processes | wall s (budget {args.trials} trials x {args.epochs} epochs) |")
    print("| --- | --- |")
    for workers, wall in walls.items():
        print(f"| {workers} | {wall:.1f} |")
    print(f"\nspeedup of 2 processes over 1: {walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
