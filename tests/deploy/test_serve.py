"""`slimkit serve`: a real uvicorn server in a subprocess, real HTTP requests, fuzzed bodies."""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="module")
def server(tiny_run) -> Iterator[tuple[int, Any]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimkit", "serve", str(tiny_run.path), "--port", str(port),
         "--max-batch", "64"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"server did not start: {proc.communicate()[1][-2000:]!r}")
    yield port, tiny_run
    proc.terminate()
    proc.wait(timeout=10)


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


def test_non_finite_outputs_are_a_4xx(server: tuple[int, Any]) -> None:
    port, _ = server
    status, answer = request(port, "POST", "/v1/predict", _body([[[3.4e38] * 40]]))
    assert status == 422 or (status == 200 and all(
        np.isfinite(v) for row in answer["outputs"] for v in row))
