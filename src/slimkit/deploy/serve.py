"""``slimkit serve``: an HTTP endpoint (FastAPI + uvicorn) over one onnxruntime session.

Inputs are validated against the model's input spec before they reach the session: a wrong
shape, a wrong type, a NaN or infinity, an empty or too large batch is a 4xx with a message that
says what was expected. Predictions are exactly what the ONNX file gives offline.

The server holds against careless and hostile clients (all limits answer JSON and close the
connection): a body over the cap derived from ``--max-batch`` and the input shape is a 413 before
it is read or parsed (:class:`BodyLimit`); a request whose headers or body do not arrive within
``--timeout`` seconds is a 408 (:class:`LimitedH11Protocol`); past ``--max-connections``
connections or requests in flight, a 503 (uvicorn's ``limit_concurrency``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

import h11
import numpy as np
import uvicorn
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from slimkit.core.errors import SlimkitError, StoreError
from slimkit.core.manifest import read_manifest
from slimkit.measure.onnx import onnx_runner
from slimkit.measure.onnx_file import read_onnx_input

DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_CONNECTIONS = 100  # 16 load-test clients fit 6 times; far below a 1024 file limit
DEFAULT_TIMEOUT = 10.0  # seconds for a request's headers, then for its body
OVERLOADED_TIMEOUT = 1.0  # seconds for the headers of a connection opened while saturated
KEEP_ALIVE_SECONDS = 5  # uvicorn's default, stated: an idle keep-alive connection is closed
MAX_HEADER_BYTES = 16 * 1024  # h11's default, stated: longer headers are a 400
BYTES_PER_VALUE = 32  # one JSON number (25 characters at most) or token, with whitespace
BODY_SLACK = 64 * 1024  # the JSON envelope and generous formatting


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
        path = run.artifact(chosen, "onnx")  # refused if run.json points out of the folder
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


def body_limit(served: ServedModel, max_batch: int) -> int:
    """The largest request body worth reading: ``max_batch`` samples of the input shape, each
    value at most ``BYTES_PER_VALUE`` bytes of JSON (a token position of a text model's texts
    counts as one value), plus ``BODY_SLACK``. A float32 printed by ``json.dumps`` takes at most
    25 characters with its separator, so no batch the server accepts is refused by the cap."""
    return max_batch * math.prod(served.input_shape) * BYTES_PER_VALUE + BODY_SLACK


async def _answer(send: Send, status: int, detail: str,
                  headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A JSON ``{"detail": ...}`` response that closes the connection (the rest of the request,
    if any, is not read)."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _raw_answer(status: int, detail: str) -> bytes:
    """The bytes of :func:`_answer`, for the protocol to write when no request was parsed."""
    body = json.dumps({"detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json"
            f"\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class _TooLarge(Exception):
    """A streamed (chunked) body went past the cap."""


class BodyLimit:
    """ASGI middleware: a request body of at most ``max_bytes``, read whole before the app runs.

    A ``Content-Length`` over the cap is answered 413 before a byte of the body is read (a client
    that sent ``Expect: 100-continue`` is never asked for it); a chunked body is counted as it
    arrives and answered 413 once it passes the cap. So JSON parsing never starts on an oversized
    body and a request never holds more than the cap in memory. How long the body may take is
    the protocol's business (:class:`LimitedH11Protocol`)."""

    def __init__(self, app: ASGIApp, max_bytes: int, what: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.what = what  # what the cap is made of, for the message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _answer(send, 413, self._too_large(f"of {declared} bytes "))
            return
        try:
            body = await self._read(receive)
        except _TooLarge:
            await _answer(send, 413, self._too_large(""))
            return
        if body is not None:  # None: the client went away
            await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, size: str) -> str:
        return (f"request body {size}exceeds the limit of {self.max_bytes} bytes ({self.what}); "
                f"send smaller batches, or start the server with a larger --max-batch")


def _content_length(scope: Scope) -> int | None:
    """The declared body size (h11 has already refused a malformed one)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the whole body at once, then defers to the server's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


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
    max_body = body_limit(served, max_batch)
    app.add_middleware(BodyLimit, max_bytes=max_body, what=(
        f"--max-batch {max_batch} samples of shape {list(served.input_shape)}"))

    @app.exception_handler(InputError)
    async def _input_error(_: Any, err: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/metadata")
    def metadata() -> dict[str, Any]:
        return {**served.metadata, "max_batch": max_batch, "max_body_bytes": max_body}

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


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for reading each request, and a JSON 503.

    uvicorn times out only idle keep-alive connections (``timeout_keep_alive``, armed after a
    response) and has no read timeout: a client that opens a connection and sends nothing, half
    a request line, or its headers and half a body holds a socket (an open file) forever. Here a
    request must arrive within ``timeout`` seconds: its headers counted from the connection's
    opening (or the previous response), its body from the end of its headers. h11's view of the
    client (``their_state``) says which part is awaited, IDLE the headers and SEND_BODY the
    body; the deadline is armed when that changes, never pushed back by trickling bytes. On
    expiry a client that sent part of a request gets a 408 and the connection is closed; a
    silent connection is just closed. The headers of a connection opened while the server is
    saturated (which would get a 503 anyway) get ``OVERLOADED_TIMEOUT``, so a flood of silent
    connections cannot pile up open files for the whole ``timeout``.

    Saturation is uvicorn's ``limit_concurrency``, tested exactly as uvicorn's h11 protocol does
    (open connections, or requests in flight, at the limit); only the answer differs: a JSON 503
    naming ``--max-connections`` with ``Retry-After``, instead of a plain "Service Unavailable".
    ``timeout`` is set per server by :func:`server_settings`.
    """

    timeout: float = DEFAULT_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        self._limit = self.limit_concurrency
        self.limit_concurrency = None  # tested in handle_events, answered by _answer_busy
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting: Any = None  # the h11 state whose deadline runs (IDLE, SEND_BODY)
        self._seconds = self.timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        self.app = self._answer_busy if self._saturated() else self._app
        super().handle_events()

    def _saturated(self) -> bool:
        limit = self._limit
        return limit is not None and (len(self.connections) >= limit
                                      or len(self.tasks) >= limit)

    async def _answer_busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.logger.warning("Exceeded concurrency limit.")  # what uvicorn logs
        await _answer(send, 503, f"server busy: {self._limit} connections or requests at once "
                      f"is the limit (slimkit serve --max-connections); retry shortly",
                      [(b"retry-after", b"1")])

    def _watch(self) -> None:
        """(Re)arm the deadline when the part of a request awaited changes."""
        state = self.conn.their_state
        awaiting = state if state in (h11.IDLE, h11.SEND_BODY) else None
        if awaiting is self._awaiting:
            return
        self._cancel()
        self._awaiting = awaiting
        if awaiting is None or self.transport.is_closing():
            return
        self._seconds = self.timeout
        if awaiting is h11.IDLE and self._saturated():
            self._seconds = min(self.timeout, OVERLOADED_TIMEOUT)
        self._timer = self.loop.call_later(self._seconds, self._expire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._awaiting is h11.SEND_BODY:  # a 408 unless the app has answered already
            partial = self.cycle is not None and not self.cycle.response_started
        else:  # a 408 if part of a request line or headers came
            partial = bool(self.conn.trailing_data[0])
        if partial:
            self.transport.write(_raw_answer(408, (
                f"the request did not arrive in full within {self._seconds:g} s; closing the "
                f"connection (slimkit serve --timeout)")))
        self.transport.close()


def server_settings(max_connections: int = DEFAULT_MAX_CONNECTIONS,
                    timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """uvicorn's settings for a server that holds against slow and numerous clients.

    ``limit_concurrency``: at ``max_connections`` open connections (a connection counts itself)
    or requests in flight, a request is answered 503. ``http``: :class:`LimitedH11Protocol` with
    ``timeout``, the deadline for a request's headers and then for its body (uvicorn has no read
    timeout). ``timeout_keep_alive`` and ``h11_max_incomplete_event_size`` (headers longer than
    that are a 400) are uvicorn's and h11's defaults, stated. ``ws``: no websockets served."""
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) \
            or max_connections < 2:
        raise SlimkitError(f"max_connections: expected an integer of at least 2 (a connection "
                           f"counts itself), got {max_connections!r}")
    if not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise SlimkitError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    protocol = type("LimitedH11Protocol", (LimitedH11Protocol,), {"timeout": float(timeout)})
    return {"http": protocol, "ws": "none", "limit_concurrency": max_connections,
            "timeout_keep_alive": KEEP_ALIVE_SECONDS,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


def serve(target: str | Path, *, candidate: str | None = None, host: str = "127.0.0.1",
          port: int = 8000, max_batch: int = DEFAULT_MAX_BATCH, threads: int = 1,
          max_connections: int = DEFAULT_MAX_CONNECTIONS, timeout: float = DEFAULT_TIMEOUT,
          on_ready: Callable[[ServedModel], None] | None = None) -> None:
    """Serve a run's selected (or ``candidate``) model, or an ONNX file, until interrupted.
    ``max_connections`` and ``timeout`` are the limits of :func:`server_settings`; the body cap
    follows from ``max_batch`` (:func:`body_limit`). ``on_ready`` is called once the model is
    checked, before the socket is bound."""
    settings = server_settings(max_connections, timeout)
    served = resolve(target, candidate)
    app = create_app(served, max_batch, threads)
    if on_ready is not None:
        on_ready(served)
    uvicorn.run(app, host=host, port=port, log_level="warning", **settings)
