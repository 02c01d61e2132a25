"""Optimize a model object you already have, from Python.

    python examples/byo/optimize_from_python.py --out runs/byo-python

The model is trained here (any way you like); slimkit takes it as the baseline as it is,
searches pruning, distillation and quantization within the accuracy budget, and writes the
selected model as a checked ONNX file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from data import load_data
from model import build_model

import slimkit


def train_model(x: torch.Tensor, y: torch.Tensor, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model((x.shape[1],), 2, width=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default="runs/byo-python")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (ours)")
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--trials", type=int, default=None, help="cap the search")
    parser.add_argument("--quick", action="store_true",
                        help="fewer timed runs per measurement (a smoke test, not figures)")
    args = parser.parse_args()
    profile = {"min_runs": 5, "min_seconds": 0, "throughput_batch": 16} if args.quick else {}

    splits = load_data()
    x, y = (torch.from_numpy(a) for a in splits["train"])
    model = train_model(x, y, args.epochs)
    run = slimkit.optimize(model, train=splits["train"], val=splits["val"],
                           test=splits["test"], metric="accuracy", example_input=x[:1],
                           max_accuracy_drop=0.02, budget=args.budget, trials=args.trials,
                           epochs=10, profile=profile, out=args.out)
    chosen = run.selected
    path = Path(args.out) / "selected.onnx"
    parity = slimkit.export(run, path, candidate=chosen.id, force=True)
    base = run.baseline
    print(f"baseline {base.id}: val accuracy {base.metrics['val']['accuracy']:.4f}; "
          f"selected {chosen.id} ({chosen.params.get('chain', chosen.technique)}): "
          f"val accuracy {chosen.metrics['val']['accuracy']:.4f}")
    print(f"wrote {path} (checked: {parity})")


if __name__ == "__main__":
    main()
