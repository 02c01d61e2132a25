"""`slimkit optimize` on minilm-embed: the best compressed MiniLM within a cosine budget, with
its wall time, then timed side by side against the pretrained model.

The search is the real command (``slimkit.optimize``): layer dropping and head/FFN pruning,
each distilled from the fp32 model, then int8; objective throughput (batch 8, the task's
throughput batch), ``max_accuracy_drop`` 0.03 of val cosine (cosine >= 0.97). After it, the
selected ONNX file, the baseline's ONNX file and the baseline in PyTorch eager are timed in
this process, one thread, sequence 128, random token ids, interleaved rounds; ratios with the
quartiles over rounds.

Usage: python benchmarks/minilm_optimize.py [--budget 35m] [--epochs 6] [--trials 4]
                                            [--rounds 7]
                                            [--out runs/bench-minilm-optimize]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import slimkit
from slimkit.measure.onnx_probe import session_options
from slimkit.measure.profile import environment
from slimkit.models.io import load_model


def timed(fn, seconds: float = 0.5) -> float:
    """Seconds per call of ``fn`` (at least 3 calls and ``seconds``)."""
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def side_by_side(run: slimkit.Run, rounds: int) -> None:
    """Selected ONNX, baseline ONNX and baseline eager, interleaved, at batch 1 and 8."""
    assert run.path is not None and run.baseline is not None and run.selected is not None
    torch.set_num_threads(1)
    eager, _ = load_model(run.path / run.baseline.artifacts["torch"])
    eager.eval()
    sessions = {key: ort.InferenceSession(str(run.path / cand.artifacts["onnx"]),
                                          session_options(1),
                                          providers=["CPUExecutionProvider"])
                for key, cand in (("base", run.baseline), ("sel", run.selected))}
    rng = np.random.default_rng(0)
    batches = {b: rng.integers(1000, 20000, size=(b, 128)).astype(np.int64) for b in (1, 8)}
    name = {k: s.get_inputs()[0].name for k, s in sessions.items()}
    calls = {
        (key, b): (lambda s=s, k=key, x=x: s.run(None, {name[k]: x}))
        for key, s in sessions.items() for b, x in batches.items()}
    with torch.inference_mode():
        for b, x in batches.items():
            tensor = torch.from_numpy(x)
            calls[("eager", b)] = lambda t=tensor: eager(t)
        for fn in calls.values():
            fn()
        times: dict[tuple[str, int], list[float]] = {k: [] for k in calls}
        for _ in range(rounds):
            for key, fn in calls.items():
                times[key].append(timed(fn))
    print("| batch | baseline eager ms | baseline onnxruntime ms | selected ms | "
          "vs onnxruntime fp32 [q1-q3] | vs eager [q1-q3] |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for b in batches:
        sel = np.array(times[("sel", b)])
        cells = [str(b)] + [f"{np.median(times[(k, b)]) * 1e3:.1f}" for k in ("eager", "base")]
        cells.append(f"{np.median(sel) * 1e3:.1f}")
        for ref in ("base", "eager"):
            ratio = np.array(times[(ref, b)]) / sel
            cells.append(f"{np.median(ratio):.2f}x [{np.quantile(ratio, .25):.2f}-"
                         f"{np.quantile(ratio, .75):.2f}]")
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="35m")
    parser.add_argument("--epochs", type=int, default=6, help="distillation epochs per trial")
    parser.add_argument("--trials", type=int, default=4, help="search trials")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-minilm-optimize"))
    args = parser.parse_args()
    start = time.monotonic()
    run = slimkit.optimize("minilm-embed", out=args.out, max_accuracy_drop=0.03,
                           objective="throughput", budget=args.budget, tune_trials=0,
                           epochs=args.epochs, trials=args.trials,
                           techniques=["distill", "prune", "quantize"],
                           trainer={"lr": 1e-4, "batch_size": 32, "weight_decay": 0.01})
    wall = (time.monotonic() - start) / 60
    env = environment(1)
    print(f"CPU: {env['cpu']} · features: {', '.join(env['cpu_features']) or 'none'} · "
          f"optimize wall {wall:.1f} min")
    base, chosen = run.baseline, run.selected
    assert base is not None and chosen is not None
    print(f"selected {chosen.id}: {chosen.params.get('chain', chosen.technique)} · test cosine "
          f"{chosen.metrics['test']['cosine']:.4f} (val {chosen.metrics['val']['cosine']:.4f})"
          f" · {len(run.config['search']['trials'])} trials")
    for cand in run.candidates:
        seconds = cand.training.get("seconds") if cand.training else None
        if seconds:
            print(f"  {cand.id} {cand.params.get('chain', cand.technique)}: training "
                  f"{seconds / 60:.1f} min, {cand.training.get('epochs_run')} epochs, "
                  f"precision {cand.training.get('precision')}")
    side_by_side(run, args.rounds)


if __name__ == "__main__":
    main()
