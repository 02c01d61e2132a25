"""Reading an ONNX file a user gives us: validity and input spec, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from slimkit.core.errors import StoreError

_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32"}


@dataclass(frozen=True)
class OnnxInput:
    """The first graph input: name, per-sample shape (batch axis removed) and numpy dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str


def read_onnx_input(path: str | Path) -> OnnxInput:
    """Check that ``path`` is a loadable ONNX model and describe its first input."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as err:  # onnx raises DecodeError, ValidationError, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StoreError(f"{path}: not a valid ONNX model ({first[:200]})") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise StoreError(f"{path}: the ONNX graph has no inputs")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in tensor.shape.dim]
    if not dims:
        raise StoreError(f"{path}: input {inputs[0].name!r} has no shape; "
                         f"slimkit needs a batch axis")
    dtype = _DTYPES.get(tensor.elem_type)
    if dtype is None:
        raise StoreError(f"{path}: input {inputs[0].name!r} has an unsupported element type "
                         f"{tensor.elem_type}; supported: {', '.join(_DTYPES.values())}")
    return OnnxInput(inputs[0].name, tuple(dims[1:]), dtype)
