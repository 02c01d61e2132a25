"""mnist1d static int8: slimkit against onnxruntime's defaults, NNCF and Intel Neural
Compressor, on the same baseline file, timed side by side in one run.

The default mnist1d baseline (``cnn1d``) is trained by slimkit with slimkit's static int8 as a
recipe step; then its ONNX file is quantized by onnxruntime's ``quantize_static`` with its
defaults, by ``nncf.quantize`` with its defaults and by Intel Neural Compressor's ONNX path
(static QDQ, per-channel weights; in its own virtualenv, see ``peers.py``), each calibrated on
the same 512 train samples. Every file is timed in this process: one onnxruntime thread, batch
1 and 256, interleaved rounds, ratios against the fp32 file with the quartiles over rounds;
accuracy on the test split.

Usage: python benchmarks/mnist1d_peers.py [--rounds 7] [--out runs/bench-mnist1d-peers]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {
    "version": 1, "task": "mnist1d", "seed": 0,
    "steps": [{"name": "static", "technique": "quantize", "from": "baseline",
               "params": {"mode": "static", "calibration_samples": 512}}],
}


def peer_files(out: Path, calibration: np.ndarray, name: str) -> dict[str, Path]:
    """onnxruntime's and NNCF's defaults here, INC's in its virtualenv."""
    import nncf
    from benchmarks.peers import peer_files as in_venv
    from onnxruntime.quantization import QuantFormat, quantize_static

    fp32 = out / "fp32.onnx"

    class Reader:
        def __init__(self) -> None:
            self.rows = iter([{name: calibration[i:i + 64]}
                              for i in range(0, len(calibration), 64)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rows, None)

    files = {"onnxruntime quantize_static defaults": out / "ort-static.onnx"}
    quantize_static(str(fp32), str(out / "ort-static.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ)
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))],
                           lambda x: {name: x})
    files["NNCF quantize defaults"] = out / "nncf.onnx"
    onnx.save(nncf.quantize(onnx.load(str(fp32)), dataset, subset_size=len(calibration)),
              str(out / "nncf.onnx"))
    (out / "inc-job.json").write_text(json.dumps({
        "model": str(fp32), "input": name, "tokens": False, "smooth_quant": False,
        "calibration": str(out / "calibration.npy")}))
    files.update(in_venv("inc", out))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-mnist1d-peers"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import slimkit
    from slimkit.measure.onnx_probe import session_options
    from slimkit.measure.profile import environment
    from slimkit.tasks import load_task

    out = args.out.resolve()
    run = slimkit.run_recipe(RECIPE, out / "run", restart=True)
    assert run.path is not None and run.baseline is not None
    task = load_task("mnist1d", seed=0)
    rows = np.random.default_rng(0).choice(len(task.train.x), 512, replace=False)
    calibration = task.train.x[rows]
    np.save(out / "calibration.npy", calibration)
    (out / "fp32.onnx").write_bytes((run.path / run.baseline.artifacts["onnx"]).read_bytes())
    name = onnx.load(str(out / "fp32.onnx")).graph.input[0].name
    static = next(c for c in run.candidates if c.step == "static")
    files = {"fp32 (reference)": out / "fp32.onnx",
             "slimkit static int8": run.path / static.artifacts["onnx"],
             **peer_files(out, calibration, name)}
    sessions = {k: ort.InferenceSession(str(p), session_options(1),
                                        providers=["CPUExecutionProvider"])
                for k, p in files.items()}
    rng = np.random.default_rng(0)
    batches = {b: rng.standard_normal((b, *task.input_shape)).astype(np.float32)
               for b in (1, 256)}
    times: dict[str, dict[int, list[float]]] = {k: {1: [], 256: []} for k in sessions}
    for _ in range(args.rounds):
        for key, session in sessions.items():
            for batch, x in batches.items():
                calls, start = 0, time.perf_counter()
                while calls < 10 or time.perf_counter() - start < 0.3:
                    session.run(None, {name: x})
                    calls += 1
                times[key][batch].append((time.perf_counter() - start) / calls)
    env = environment(1)
    print(f"CPU: {env['cpu']} · features: {', '.join(env['cpu_features']) or 'none'} · "
          f"onnxruntime {ort.__version__} · 1 thread · {args.rounds} rounds")
    print("| file | test accuracy | b=1 ms | b=1 vs fp32 [q1-q3] | b=256 samples/s | "
          "b=256 vs fp32 [q1-q3] |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    ref = "fp32 (reference)"
    for key, session in sessions.items():
        logits = np.concatenate([session.run(None, {name: task.test.x[i:i + 256]})[0]
                                 for i in range(0, len(task.test.x), 256)])
        accuracy = float((logits.argmax(1) == task.test.y).mean())
        cells = [key, f"{accuracy:.4f}"]
        for batch in (1, 256):
            mine = np.array(times[key][batch])
            ratio = np.array(times[ref][batch]) / mine
            value = (f"{np.median(mine) * 1e3:.4f}" if batch == 1
                     else f"{batch / np.median(mine):,.0f}")
            cells += [value, f"{np.median(ratio):.2f}x [{np.quantile(ratio, .25):.2f}-"
                             f"{np.quantile(ratio, .75):.2f}]"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
