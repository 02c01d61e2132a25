"""`slimkit serve`: a real uvicorn server in a subprocess, real HTTP requests, fuzzed bodies,
and the limits (body cap, read timeouts, saturation) against raw loopback sockets."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimkit.measure.onnx import run_onnx
from slimkit.tasks import load_task


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str, body: bytes | None = None
            ) -> tuple[int, Any]:
    conn = HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    try:
        return response.status, json.loads(data)
    except json.JSONDecodeError:
        return response.status, data


def _start(target: Path, log: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """``slimkit serve target *args`` on a free loopback port, once /healthz answers."""
    port = _free_port()
    with log.open("wb") as out:  # a file, not a pipe nobody reads: warnings cannot block it
        proc = subprocess.Popen(
            [sys.executable, "-m", "slimkit", "serve", str(target), "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"server did not start: {log.read_text()[-2000:]!r}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory) -> Iterator[tuple[int, Any]]:
    proc, port = _start(tiny_run.path, tmp_path_factory.mktemp("serve") / "log",
                        "--max-batch", "64")
    yield port, tiny_run
    _stop(proc)


LIMITS_TIMEOUT = 2.0  # the test server's --timeout: short, yet far above a loopback round trip
LIMITS_CONNECTIONS = 60


@pytest.fixture(scope="module")
def limited(tiny_run, tmp_path_factory) -> Iterator[int]:
    """A server with a short --timeout and a --max-connections above the 50 slow clients."""
    proc, port = _start(tiny_run.path, tmp_path_factory.mktemp("serve") / "log",
                        "--max-batch", "64", "--timeout", str(LIMITS_TIMEOUT),
                        "--max-connections", str(LIMITS_CONNECTIONS))
    yield port
    _stop(proc)


def _body(inputs: Any) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


def test_predictions_equal_the_offline_onnx_model(server: tuple[int, Any]) -> None:
    port, run = server
    x = load_task("mnist1d").test.x[:32]
    status, answer = request(port, "POST", "/v1/predict", _body(x.tolist()))
    assert status == 200
    offline = run_onnx(run.path / run.selected.artifacts["onnx"], x)
    assert np.array_equal(np.asarray(answer["outputs"], dtype=np.float32), offline)
    assert answer["predictions"] == offline.argmax(1).tolist()


def test_metadata_health_and_openapi(server: tuple[int, Any]) -> None:
    port, run = server
    status, meta = request(port, "GET", "/v1/metadata")
    assert status == 200 and meta["candidate"] == run.selected_id and meta["task"] == "mnist1d"
    assert meta["input"]["shape"] == [1, 40] and len(meta["sha256"]) == 64
    assert meta["metrics"]["test"]["accuracy"] == run.selected.metrics["test"]["accuracy"]
    assert request(port, "GET", "/healthz") == (200, {"status": "ok"})
    status, schema = request(port, "GET", "/openapi.json")
    assert status == 200 and "/v1/predict" in schema["paths"]


@pytest.mark.parametrize("body, status, message", [
    (_body([[[0.0] * 40]] * 2), 200, None),
    (_body([[0.0] * 40]), 422, "expected shape (1, 1, 40), got (1, 40)"),
    (_body([[["a"] * 40]]), 422, "non-numeric"),
    (_body([[[True] * 40]]), 422, "non-numeric"),
    (_body([[[0.0] * 40], [[0.0] * 39]]), 422, "ragged"),
    (b'{"inputs": [[[NaN' + b", 0.0" * 39 + b"]]]}", 422, "NaN or infinite"),
    (_body([[[1e39] * 40]]), 422, "float32 range"),
    (_body([[[0.0] * 40]] * 65), 413, "exceeds the limit of 64"),
    (_body([]), 422, "non-empty list"),
    (b"{not json", 422, None),
    (b'{"input": []}', 422, None),
])
def test_bad_inputs_get_a_clear_4xx(server: tuple[int, Any], body: bytes, status: int,
                                    message: str | None) -> None:
    port, _ = server
    got, answer = request(port, "POST", "/v1/predict", body)
    assert got == status, answer
    if message:
        assert message in answer["detail"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=30)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(JSON.map(lambda v: json.dumps(v).encode()),
                      JSON.map(lambda v: json.dumps({"inputs": v}).encode()),
                      st.binary(max_size=64)))
def test_fuzzed_bodies_get_4xx_never_5xx(server: tuple[int, Any], body: bytes) -> None:
    port, _ = server
    status, _ = request(port, "POST", "/v1/predict", body)
    assert 400 <= status < 500 or status == 200
    assert request(port, "GET", "/healthz")[0] == 200


def test_serving_a_bad_target_is_one_line(tmp_path: Path, capsys) -> None:
    from slimkit.cli import main

    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["serve", str(bad)]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err


def _onnx(path: Path, input_shape: list[int | str], output_shape: list[int | str],
          elem: int = 1, op: str = "Identity") -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", elem, input_shape)
    y = helper.make_tensor_value_info("y", elem if op == "Identity" else TensorProto.FLOAT,
                                      output_shape)
    node = (helper.make_node("Identity", ["x"], ["y"]) if op == "Identity"
            else helper.make_node("Flatten", ["x"], ["y"], axis=0))
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("shape_in, shape_out, elem, op, message", [
    ([1, 4], [1, 4], 1, "Identity", "does not run on a batch of 2"),  # fixed batch axis
    (["n", 4], ["n", 4], 10, "Identity", "is float16; slimkit serves models with float32"),
    (["n", 4], [1, "m"], 1, "Flatten", "first output has shape (1, 8)"),  # not (batch, classes)
])
def test_models_it_cannot_serve_are_refused_at_start(tmp_path: Path, capsys, shape_in,
                                                     shape_out, elem, op, message) -> None:
    from slimkit.cli import main

    path = _onnx(tmp_path / "m.onnx", shape_in, shape_out, elem, op)
    assert main(["serve", str(path)]) == 2
    err = capsys.readouterr()
    assert message in err.err and "serving" not in err.out


def test_serve_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch, tiny_run) -> None:
    import uvicorn

    from slimkit.cli import main

    bound = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: bound.update(kw))
    assert main(["serve", str(tiny_run.path)]) == 0
    assert bound["host"] == "127.0.0.1" and bound["port"] == 8000
    assert bound["limit_concurrency"] == 100 and bound["http"].timeout == 10.0  # the limits


@pytest.mark.parametrize("flags, message", [
    (["--max-connections", "1"], "--max-connections"),
    (["--timeout", "0"], "--timeout"),
])
def test_bad_limits_are_refused(tiny_run, capsys, flags: list[str], message: str) -> None:
    from slimkit.cli import main

    assert main(["serve", str(tiny_run.path), *flags]) == 2
    assert message in capsys.readouterr().err


def test_bad_limits_from_python_name_the_parameter() -> None:
    from slimkit.core.errors import SlimkitError
    from slimkit.deploy.serve import server_settings

    with pytest.raises(SlimkitError, match="max_connections: expected an integer of at least 2"):
        server_settings(max_connections=1)
    with pytest.raises(SlimkitError, match="timeout: expected a positive number"):
        server_settings(timeout=float("nan"))


def test_non_finite_outputs_are_a_4xx(server: tuple[int, Any]) -> None:
    port, _ = server
    status, answer = request(port, "POST", "/v1/predict", _body([[[3.4e38] * 40]]))
    assert status == 422 or (status == 200 and all(
        np.isfinite(v) for row in answer["outputs"] for v in row))


# --- limits: body cap, read timeouts, saturation (raw loopback sockets) -----------------------

def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body) if body.startswith(b"{") else body


def _headers(length: int | None = None, chunked: bool = False) -> bytes:
    extra = (f"Content-Length: {length}\r\n" if length is not None else "") + (
        "Transfer-Encoding: chunked\r\n" if chunked else "")
    return (f"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"{extra}\r\n").encode()


def test_body_cap_follows_max_batch_and_the_input_shape(server: tuple[int, Any]) -> None:
    from slimkit.deploy.serve import BODY_SLACK, BYTES_PER_VALUE, body_limit, resolve

    port, run = server
    cap = body_limit(resolve(run.path), 64)
    assert cap == 64 * 40 * BYTES_PER_VALUE + BODY_SLACK
    assert request(port, "GET", "/v1/metadata")[1]["max_body_bytes"] == cap
    worst = np.full((64, 1, 40), -1.1754944e-38, dtype=np.float32)  # the longest float32 text
    assert len(json.dumps({"inputs": worst.tolist()}, indent=1)) < cap  # never refused by size


def test_oversized_content_length_gets_413_before_the_body(server: tuple[int, Any]) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_headers(50_000_000))  # the 50 MB of the issue, never sent
        status, answer = _parse(_read_all(sock))  # answered, then closed by the server
    assert status == 413
    assert "request body of 50000000 bytes exceeds the limit of 147456 bytes" in answer["detail"]
    assert "--max-batch 64 samples of shape [1, 40]" in answer["detail"]


def test_chunked_body_over_the_cap_gets_413(server: tuple[int, Any]) -> None:
    port, _ = server
    size = 147456 + 1
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_headers(chunked=True) + f"{size:x}\r\n".encode() + b" " * size + b"\r\n")
        status, answer = _parse(_read_all(sock))
    assert status == 413 and "request body exceeds the limit of 147456" in answer["detail"]
    assert request(port, "GET", "/healthz")[0] == 200


def test_oversized_headers_get_400(server: tuple[int, Any]) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 20_000)
        assert _parse(_read_all(sock))[0] == 400


def _watch(port: int, socks: list[socket.socket], poll_health: bool
           ) -> tuple[list[int], dict[socket.socket, float], dict[socket.socket, bytes]]:
    """Wait (10 s at most) until the server closes ``socks``, polling /healthz every 0.1 s if
    ``poll_health``: the statuses, when each socket was closed and what it received."""
    received = dict.fromkeys(socks, b"")
    closed: dict[socket.socket, float] = {}
    statuses: list[int] = []
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + 10
        while len(closed) < len(socks) and time.monotonic() < deadline:
            if poll_health:
                statuses.append(request(port, "GET", "/healthz")[0])
            for key, _ in selector.select(timeout=0.1):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                received[key.fileobj] += data  # type: ignore[index]
                if not data:
                    closed[key.fileobj] = time.monotonic()  # type: ignore[index]
                    selector.unregister(key.fileobj)
    return statuses, closed, received


def test_half_sent_requests_time_out_while_healthz_answers(limited: int) -> None:
    port = limited
    silent, partial_headers, partial_bodies = [], [], []
    opened = time.monotonic()
    for i in range(50):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 3 == 1:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: te")
            partial_headers.append(sock)
        elif i % 3 == 2:
            sock.sendall(_headers(1000) + b'{"inputs": [[[0.1, ')
            partial_bodies.append(sock)
        else:
            silent.append(sock)
    socks = silent + partial_headers + partial_bodies
    try:
        statuses, closed, received = _watch(port, socks, poll_health=True)
    finally:
        for sock in socks:
            sock.close()
    assert len(closed) == len(socks), "the server kept slow clients past its timeout"
    assert min(closed.values()) - opened >= LIMITS_TIMEOUT - 0.05  # held until the timeout
    assert len(statuses) >= 3 and set(statuses) == {200}  # /healthz answered throughout
    assert all(received[s] == b"" for s in silent)  # a silent connection is just closed
    for sock in partial_headers + partial_bodies:
        status, answer = _parse(received[sock])
        assert status == 408 and "did not arrive in full within 2 s" in answer["detail"]


def test_a_saturated_server_answers_a_clear_503(limited: int) -> None:
    port = limited
    held = [socket.create_connection(("127.0.0.1", port), timeout=10)
            for _ in range(LIMITS_CONNECTIONS - 1)]
    over = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        status, answer = request(port, "GET", "/healthz")
        _, closed, _ = _watch(port, held + over, poll_health=False)
    finally:
        for sock in held + over:
            sock.close()
    assert status == 503
    assert "server busy: 60 connections or requests" in answer["detail"]
    assert "--max-connections" in answer["detail"]
    assert len(closed) == len(held) + len(over)
    # connections opened past the limit get the short deadline: closed before the others
    assert max(closed[s] for s in over) < min(closed[s] for s in held)
    assert request(port, "GET", "/healthz") == (200, {"status": "ok"})  # recovered
