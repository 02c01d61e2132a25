"""TorchScript: trace the model, reload the file and check it against the torch model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit.core.atomic import atomic_path
from slimkit.core.errors import ExportError
from slimkit.measure.parity import FP32_ATOL, compare, first_line, quiet_exporter, torch_outputs


def export_torchscript(model: nn.Module, input_shape: tuple[int, ...], path: str | Path,
                       check_inputs: np.ndarray, atol: float = FP32_ATOL) -> dict[str, Any]:
    """Trace ``model`` to TorchScript, reload the file, check it, then move it to ``path``."""
    model.eval()
    with atomic_path(path) as tmp:
        try:
            with quiet_exporter(), torch.no_grad():
                traced = torch.jit.trace(model, torch.from_numpy(check_inputs[:2]))
                torch.jit.save(traced, str(tmp))
                loaded = torch.jit.load(str(tmp))
                got = loaded(torch.from_numpy(check_inputs)).numpy()
        except Exception as err:
            raise ExportError(f"TorchScript export failed: {first_line(err)}") from None
        parity = compare("TorchScript", torch_outputs(model, check_inputs), got, atol)
    return {"format": "torchscript", "exporter": "torch.jit.trace", **parity}
