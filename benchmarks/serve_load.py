"""Load test of `slimkit serve` on loopback: N requests from C concurrent clients.

Starts the server in a subprocess on 127.0.0.1 (a free port), sends `--requests` POST
/v1/predict requests (one mnist1d test sample each, keep-alive connections) from `--clients`
threads, bounded by `--max-seconds`, and prints requests/s, latency p50/p99 and status counts.

Usage: python benchmarks/serve_load.py RUN [--requests 10000] [--clients 16]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.client import HTTPConnection
from pathlib import Path

import numpy as np

from slimkit.api import load_run
from slimkit.tasks import load_task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    run = load_run(args.run)
    x = load_task(run.task, seed=run.seed).test.x
    bodies = [json.dumps({"inputs": x[i:i + 1].tolist()}).encode() for i in range(len(x))]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "slimkit", "serve", str(args.run),
                               "--port", str(port)], env=os.environ.copy())
    try:
        for _ in range(300):
            try:
                HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        counter = iter(range(args.requests))
        lock = threading.Lock()
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        stop = time.monotonic() + args.max_seconds

        def client() -> None:
            conn = HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < stop:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                t0 = time.perf_counter()
                conn.request("POST", "/v1/predict", body=bodies[i % len(bodies)],
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    statuses[response.status] += 1

        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=10)
    ms = np.asarray(latencies) * 1e3
    errors = sum(n for code, n in statuses.items() if code >= 500)
    print("| requests | clients | wall s | requests/s | p50 ms | p99 ms | statuses | 5xx |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    print(f"| {len(latencies)} | {args.clients} | {wall:.1f} | {len(latencies) / wall:,.0f} | "
          f"{np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} | {dict(statuses)} | "
          f"{errors} |")
    print(f"model: {args.run} candidate {run.selected_id}; env: {run.env}")


if __name__ == "__main__":
    main()
