"""The transformer export routes: torch's TorchScript-based exporter, and after it onnxruntime's
transformer optimizer, which fuses BERT-style encoders into its own kernels (Attention,
SkipLayerNormalization, EmbedLayerNormalization, BiasGelu).

The torch.export-based exporter's graph is not one those fusions recognise (only BiasGelu and
LayerNorm fuse on it), and the fused kernels are not faster on every CPU, so for token-id models
``export_onnx`` builds the three files, checks them against torch and keeps the fastest,
measured side by side (see ``measure.onnx``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.measure.parity import quiet_exporter, quiet_logger

OPSET = 17
FUSED_OPS = ("EmbedLayerNormalization", "Attention", "MultiHeadAttention",
             "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "LayerNormalization")


def attention_shape(model: nn.Module) -> tuple[int, int] | None:
    """(heads, hidden size of the attention projections) of a BERT-style encoder, read from its
    first self-attention module; None when the model has none."""
    for module in model.modules():
        heads = getattr(module, "num_attention_heads", None)
        size = getattr(module, "attention_head_size", None) or getattr(module, "head_dim", None)
        if isinstance(heads, int) and isinstance(size, int) and heads > 0:
            return heads, heads * size
    return None


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path,
                       input_name: str, output_name: str) -> None:
    """Export with the TorchScript-based exporter: dynamic batch and sequence axes."""
    with quiet_exporter(), torch.no_grad():
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "batch", 1: "sequence"},
                                        output_name: {0: "batch"}})


def fuse_transformer(src: Path, dst: Path, shape: tuple[int, int] | None) -> dict[str, int]:
    """onnxruntime's BERT optimizer on ``src`` into ``dst``; the fused operators it made, by
    type. ``shape`` gives (heads, hidden size); None lets the optimizer read them off the graph."""
    from onnxruntime.transformers.optimizer import optimize_model  # slow import, used rarely

    heads, hidden = shape or (0, 0)
    with quiet_logger("onnxruntime.transformers"), quiet_exporter():  # a log line per match
        optimized = optimize_model(str(src), model_type="bert", num_heads=heads,
                                   hidden_size=hidden, opt_level=0)
        counts = optimized.get_fused_operator_statistics()
        optimized.save_model_to_file(str(dst))
    return {op: int(counts.get(op, 0)) for op in FUSED_OPS if counts.get(op, 0)}


def describe(route: str, fusions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run.json record of how a file was exported."""
    if route == "fused":
        return {"exporter": "torch.onnx.export(dynamo=False) + onnxruntime.transformers "
                            "optimize_model(model_type='bert')", "fusions": fusions or {}}
    if route == "torchscript":
        return {"exporter": "torch.onnx.export(dynamo=False)"}
    return {"exporter": "torch.onnx.export(dynamo=True)"}
