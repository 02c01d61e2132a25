"""``slimkit serve``: an HTTP endpoint (FastAPI + uvicorn) over one onnxruntime session.

Inputs are validated against the model's input spec before they reach the session: a wrong
shape, a wrong type, a NaN or infinity, an empty or too large batch is a 4xx with a message that
says what was expected. Predictions are exactly what the ONNX file gives offline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import uvicorn
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse

from slimkit.core.errors import StoreError
from slimkit.core.manifest import read_manifest
from slimkit.measure.onnx import onnx_runner
from slimkit.measure.onnx_file import read_onnx_input

DEFAULT_MAX_BATCH = 256


InputsBody = Annotated[Any, Body(embed=True, description="a batch of samples (nested lists)")]
TextsBody = Annotated[Any, Body(embed=True, description="a batch of texts (a text model)")]


@dataclass
class ServedModel:
    """What the server answers with: the ONNX file, its input spec and where it came from."""

    path: Path
    input_shape: tuple[int, ...]
    metadata: dict[str, Any]
    tokenizer: Any = None  # a text model's tokenizer: requests may send texts

    @property
    def tokens(self) -> bool:
        """The model takes token ids (int64, a dynamic sequence axis)."""
        return self.metadata["input"]["dtype"] == "int64"


def resolve(target: str | Path, candidate: str | None = None) -> ServedModel:
    """A run folder (its selected candidate, or ``candidate``) or an ONNX file."""
    target = Path(target)
    if target.is_dir():
        run = read_manifest(target)
        chosen = run.candidate(candidate) if candidate else (run.selected or run.baseline)
        if chosen is None or "onnx" not in chosen.artifacts:
            raise StoreError(f"{target}: no candidate with an ONNX model to serve")
        path = target / chosen.artifacts["onnx"]
        meta: dict[str, Any] = {"run": run.run, "task": run.task, "candidate": chosen.id,
                                "technique": chosen.technique, "metrics": chosen.metrics,
                                "profile": chosen.profile, "task_spec": run.task_spec}
    else:
        if candidate:
            raise StoreError("--candidate needs a run folder, not an ONNX file")
        path, meta = target, {"run": None, "task": None, "candidate": None}
    spec = read_onnx_input(path)
    model = meta.get("task_spec", {}).get("source", {}).get("model")
    if spec.dtype == "int64" and model:  # a Hugging Face text model: token ids in
        return _text_model(path, spec, meta, model)
    if spec.dtype != "float32":
        raise StoreError(f"{path}: input {spec.name!r} is {spec.dtype}; slimkit serves models "
                         f"with float32 inputs (quantized slimkit models keep float32 inputs)")
    if not all(isinstance(d, int) and d > 0 for d in spec.shape):
        raise StoreError(f"{path}: input {spec.name!r} has a dynamic per-sample shape "
                         f"{spec.shape}; slimkit serves fixed-shape inputs with a batch axis")
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta["input"] = {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}
    return ServedModel(path, tuple(int(d) for d in spec.shape), meta)


def _text_model(path: Path, spec: Any, meta: dict[str, Any], model: str) -> ServedModel:
    """A model on token ids whose run names the folder its tokenizer comes from."""
    from slimkit.tasks.text import tokenizer_of  # transformers: only for text models

    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta["input"] = {"name": spec.name, "shape": [str(d) for d in spec.shape],
                     "dtype": spec.dtype, "tokenizer": model}
    length = int(meta["task_spec"]["input_shape"][0])
    return ServedModel(path, (length,), meta, tokenizer_of(model))


def to_tokens(texts: Any, served: ServedModel, max_batch: int) -> np.ndarray:
    """Token ids ``(N, seq)`` of a JSON batch of texts (padded to the longest, truncated to the
    sequence length the model was built for)."""
    if served.tokenizer is None:
        raise InputError("texts: this model takes numeric inputs; send inputs")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InputError("texts: expected a non-empty list of strings")
    if len(texts) > max_batch:
        raise InputError(f"texts: batch of {len(texts)} exceeds the limit of {max_batch}",
                         status=413)
    encoded = served.tokenizer(texts, padding="longest", truncation=True,
                               max_length=served.input_shape[0], return_tensors="np")
    return encoded["input_ids"].astype(np.int64)


class InputError(ValueError):
    """A request whose inputs do not fit the model; ``status`` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def to_batch(inputs: Any, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    """Check a JSON batch against the input spec; a float32 array of (N, *input_shape)."""
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs: expected a non-empty list of samples")
    if len(inputs) > max_batch:
        raise InputError(f"inputs: batch of {len(inputs)} exceeds the limit of {max_batch}",
                         status=413)
    try:
        array = np.asarray(inputs)
    except (ValueError, TypeError):
        array = np.asarray([0], dtype=object)
    if array.dtype.kind not in "iuf":
        raise InputError(f"inputs: expected numbers in nested lists of shape "
                         f"(N, {', '.join(map(str, input_shape))}); got ragged lists or "
                         f"non-numeric values")
    expected = (len(inputs), *input_shape)
    if array.shape != expected:
        raise InputError(f"inputs: expected shape {expected}, got {array.shape}")
    with np.errstate(over="ignore"):
        batch = array.astype(np.float32)
    if not np.isfinite(batch).all():
        raise InputError("inputs: NaN or infinite values (or beyond float32 range)")
    return batch


def create_app(served: ServedModel, max_batch: int = DEFAULT_MAX_BATCH, threads: int = 1
               ) -> Any:
    """The FastAPI application: /v1/predict, /v1/metadata, /healthz, OpenAPI at /docs."""
    run = onnx_runner(served.path, threads)
    dtype = np.int64 if served.tokens else np.float32
    try:  # fail at start, not per request: a fixed batch axis, or outputs that are not logits
        probe = run(np.ones((2, *served.input_shape), dtype=dtype))
    except Exception as err:
        raise StoreError(f"{served.path}: the model does not run on a batch of 2 (a fixed batch "
                         f"axis? export with a dynamic one): {str(err).splitlines()[0][:200]}"
                         ) from None
    if probe.ndim != 2 or probe.shape[0] != 2:
        raise StoreError(f"{served.path}: the first output has shape {probe.shape} for a batch "
                         f"of 2; slimkit serves models answering (batch, classes) scores")
    app = FastAPI(title="slimkit model server", version="1",
                  description=f"Serves {served.path.name} (sha256 {served.metadata['sha256']})")

    @app.exception_handler(InputError)
    async def _input_error(_: Any, err: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/metadata")
    def metadata() -> dict[str, Any]:
        return {**served.metadata, "max_batch": max_batch}

    @app.post("/v1/predict", description=(
        f"`inputs`: a batch (at most {max_batch}) of samples, each a nested list of shape "
        f"{list(served.input_shape)}; or, for a text model, `texts`: a batch of strings; "
        f"answers the outputs and predicted classes"))
    def predict(inputs: InputsBody = None, texts: TextsBody = None) -> dict[str, Any]:
        if (inputs is None) == (texts is None):
            raise InputError("send either inputs (numbers) or texts (a text model), not both")
        if texts is not None:
            batch = to_tokens(texts, served, max_batch)
        elif served.tokens:
            raise InputError("inputs: this is a text model; send texts")
        else:
            batch = to_batch(inputs, served.input_shape, max_batch)
        outputs = run(batch)
        if not np.isfinite(outputs).all():
            raise InputError("the model produced non-finite outputs for these inputs (values "
                             "far outside the training range?)")
        return {"outputs": outputs.tolist(), "predictions": outputs.argmax(1).tolist(),
                "model_sha256": served.metadata["sha256"]}

    return app


def serve(target: str | Path, *, candidate: str | None = None, host: str = "127.0.0.1",
          port: int = 8000, max_batch: int = DEFAULT_MAX_BATCH, threads: int = 1,
          on_ready: Callable[[ServedModel], None] | None = None) -> None:
    """Serve a run's selected (or ``candidate``) model, or an ONNX file, until interrupted.
    ``on_ready`` is called once the model is checked, before the socket is bound."""
    served = resolve(target, candidate)
    app = create_app(served, max_batch, threads)
    if on_ready is not None:
        on_ready(served)
    uvicorn.run(app, host=host, port=port, log_level="warning")
