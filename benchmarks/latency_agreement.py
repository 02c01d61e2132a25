"""Does slimkit's onnxruntime profile agree with an independent timing of the same ONNX file?

Times the file twice, side by side in one run: with slimkit's profiler (a fresh process, the
same code that measures every candidate) and with a plain `timeit` loop over
`InferenceSession.run` in this process, same thread count. Prints both and their ratio at
batch 1 (p50 latency) and batch 256 (throughput).

Usage: python benchmarks/latency_agreement.py [MODEL.onnx] [--threads 1]
Without a file it trains a default mnist1d baseline first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import timeit
from pathlib import Path

import numpy as np
import onnxruntime as ort

import slimkit
from slimkit.measure.profile import profile_onnx, resolve_shape
from slimkit.measure.timing import ProfileSettings


def independent(path: Path, shape: tuple[int, ...], batch: int, threads: int) -> float:
    """Median seconds per InferenceSession.run call, measured with timeit."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name:
            np.random.default_rng(1).standard_normal((batch, *shape)).astype(np.float32)}
    timer = timeit.Timer(lambda: session.run(None, feed))
    number, _ = timer.autorange()  # calls per repeat taking >= 0.2 s
    per_call = [t / number for t in timer.repeat(repeat=15, number=number)]
    return statistics.median(per_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            run = slimkit.baseline("mnist1d", out=Path(tmp) / "run", progress=False)
            path = run.path / run.candidates[0].artifacts["onnx"]
        shape = resolve_shape(path)
        ours = profile_onnx(path, ProfileSettings(threads=args.threads))
        lat_ref = independent(path, shape, 1, args.threads) * 1e3
        thr_ref = 256 / independent(path, shape, 256, args.threads)
    lat = ours["latency_ms"]["p50"]
    thr = ours["throughput_sps"]
    print(f"model: {path if args.model else 'mnist1d default cnn1d baseline'}, "
          f"threads {args.threads}")
    print("| measure | slimkit profile | independent timeit | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| latency p50, batch 1 | {lat:.4f} ms | {lat_ref:.4f} ms | {lat / lat_ref:.3f} |")
    print(f"| throughput, batch 256 | {thr:,.0f} /s | {thr_ref:,.0f} /s | {thr / thr_ref:.3f} |")


if __name__ == "__main__":
    main()
