"""all-MiniLM-L6-v2: the export routes and their int8 files, timed side by side in one run.

Files, all from the pretrained model (candidate c0's torch model):
  plain fp32      torch.onnx.export(dynamo=True), what slimkit exported before issue 16
  fused fp32      TorchScript exporter + onnxruntime's BERT optimizer (slimkit's transformer
                  route, measure/transformer_export.py)
  plain/fused int8  onnxruntime quantize_dynamic, per-channel int8 weights, on each
  ort defaults int8 quantize_dynamic with its defaults on the plain file (per tensor)
  static            slimkit's static int8 of transformers (NNCF, SmoothQuant), onnxruntime's
                    quantize_static on the weight MatMuls only, and with its defaults; all
                    calibrated on the same --calibration train sentences
Each file: the fused operators, how many MatMuls run in int8, test cosine to the fp32 torch
embeddings (400 fixed test sentences, padded to 128), and speed at 1 onnxruntime thread,
sequence 128, batch 1 and batch 8, interleaved rounds (measure/race.py), ratios against plain
fp32 with the spread over rounds.

Usage: python benchmarks/minilm_export.py [--rounds 7] [--out runs/bench-minilm-export]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from slimkit.measure.onnx import onnx_runner
from slimkit.measure.onnx_probe import session_options
from slimkit.measure.profile import environment
from slimkit.measure.transformer_export import (
    attention_shape,
    export_torchscript,
    fuse_transformer,
)
from slimkit.models.minilm import MiniLM, load_pretrained
from slimkit.tasks import load_task
from slimkit.tasks.metrics import mean_cosine
from slimkit.techniques.quantize import FUSED_GRAPH_TYPES
from slimkit.techniques.static_transformer import quantize_transformer


def ops(path: Path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def quantized_matmuls(path: Path) -> int:
    """MatMuls of a QDQ file whose inputs both come from DequantizeLinear (run in int8)."""
    graph = onnx.load(str(path)).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return sum(1 for n in graph.node if n.op_type == "MatMul" and all(i in dq for i in n.input))


def export_plain(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    seq = torch.export.Dim("sequence", max=512)
    torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch"), 1: seq},), optimize=True)


def timed_rounds(paths: dict[str, Path], rounds: int, seq: int) -> dict[str, dict[str, list]]:
    """Seconds per call at batch 1 and 8, per round, every file's loop interleaved."""
    rng = np.random.default_rng(0)
    feeds = {b: rng.integers(1000, 20000, size=(b, seq)).astype(np.int64) for b in (1, 8)}
    sessions = {}
    for name, path in paths.items():
        session = ort.InferenceSession(str(path), session_options(1),
                                       providers=["CPUExecutionProvider"])
        sessions[name] = (session, session.get_inputs()[0].name)
        for feed in feeds.values():
            session.run(None, {sessions[name][1]: feed})
    times = {name: {1: [], 8: []} for name in paths}
    for _ in range(rounds):
        for name, (session, input_name) in sessions.items():
            for batch, feed in feeds.items():
                calls, start = 0, time.perf_counter()
                while calls < 3 or time.perf_counter() - start < 0.5:
                    session.run(None, {input_name: feed})
                    calls += 1
                times[name][batch].append((time.perf_counter() - start) / calls)
    return times


class Reader(CalibrationDataReader):
    """Calibration batches of 8 train rows."""

    def __init__(self, rows: np.ndarray) -> None:
        self.batches = iter([{"input": rows[i:i + 8]} for i in range(0, len(rows), 8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calibration", type=int, default=300, help="train sentences")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-minilm-export"))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    task = load_task("minilm-embed", seed=0)
    model = MiniLM(load_pretrained()).eval()
    example = torch.from_numpy(task.test.x[:2])
    files = {"plain fp32": out / "plain.onnx", "fused fp32": out / "fused.onnx"}
    export_plain(model, example, files["plain fp32"])
    export_torchscript(model, example, out / "ts.onnx", "input", "logits")
    fusions = fuse_transformer(out / "ts.onnx", files["fused fp32"], attention_shape(model))
    for kind in ("plain", "fused"):
        files[f"{kind} int8"] = out / f"{kind}-int8.onnx"
        quantize_dynamic(str(files[f"{kind} fp32"]), str(files[f"{kind} int8"]),
                         per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    files["ort defaults int8"] = out / "ort-defaults.onnx"
    quantize_dynamic(str(files["plain fp32"]), str(files["ort defaults int8"]))
    calibration = task.train.x[np.sort(np.random.default_rng(0).permutation(
        len(task.train.x))[:args.calibration])]
    files["static: slimkit (NNCF SmoothQuant)"] = out / "static-nncf.onnx"
    quantize_transformer(files["plain fp32"], files["static: slimkit (NNCF SmoothQuant)"],
                         calibration, "input")
    for name, options in (("static: ort weight MatMuls only", {
            "op_types_to_quantize": ["MatMul", "Gemm"], "per_channel": True,
            "extra_options": {"MatMulConstBOnly": True, **FUSED_GRAPH_TYPES}}),
            ("static: ort quantize_static defaults", {})):
        files[name] = out / f"static-{len(files)}.onnx"
        quantize_static(str(files["plain fp32"]), str(files[name]), Reader(calibration),
                        quant_format=QuantFormat.QDQ, **options)

    with torch.inference_mode():
        expected = model(torch.from_numpy(task.test.x)).numpy()
    env = environment(1)
    print(f"CPU: {env['cpu']} · features: {', '.join(env['cpu_features']) or 'none'} · "
          f"onnxruntime {ort.__version__}, torch {torch.__version__}, 1 thread")
    print(f"fusions on the fused route: {fusions}")
    times = timed_rounds(files, args.rounds, task.test.x.shape[1])
    base = {b: np.array(times["plain fp32"][b]) for b in (1, 8)}
    print("| file | cosine | int8 MatMuls (of MatMul+fused) | fused ops | b=1 ms | b=1 vs plain "
          "fp32 | b=8 ms | b=8 vs plain fp32 | size MB |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, path in files.items():
        got = onnx_runner(path)(task.test.x)
        counts = ops(path)
        fused = ", ".join(f"{op} {n}" for op, n in sorted(counts.items())
                          if op in ("Attention", "QAttention", "SkipLayerNormalization",
                                    "EmbedLayerNormalization", "BiasGelu"))
        int8 = (counts["MatMulInteger"] + counts["DynamicQuantizeMatMul"] + counts["QAttention"]
                + quantized_matmuls(path))
        total = counts["MatMul"] + counts["MatMulInteger"] + counts["QAttention"] + \
            counts["Attention"] + counts["DynamicQuantizeMatMul"]
        cells = [name, f"{mean_cosine(got, expected):.4f}", f"{int8} (of {total})",
                 fused or "-"]
        for batch in (1, 8):
            ms = np.array(times[name][batch]) * 1e3
            ratio = base[batch] * 1e3 / ms
            cells += [f"{np.median(ms):.1f}",
                      f"{np.median(ratio):.2f}x [{np.quantile(ratio, .25):.2f}-"
                      f"{np.quantile(ratio, .75):.2f}]"]
        cells.append(f"{path.stat().st_size / 1e6:.1f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
