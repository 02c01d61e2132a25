"""Profile one ONNX file with onnxruntime in a fresh process (so its peak memory is its own).

Run as ``python -m slimkit.measure.onnx_probe SETTINGS_JSON`` ; prints one JSON object.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

import numpy as np
import onnxruntime as ort

from slimkit.measure.timing import ProfileSettings, measure_speed, random_inputs


def _rss_mb() -> float:
    """Peak resident memory of this process in MB. VmHWM belongs to this program's own memory
    map; ru_maxrss is not used on Linux because it carries over the parent's peak across exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def session_options(threads: int) -> ort.SessionOptions:
    """The session options every onnxruntime measurement uses."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def profile(path: str, input_shape: list[int], dtype: str, settings: ProfileSettings,
            high: int | None = None) -> dict[str, Any]:
    """Latency, throughput and memory of the ONNX file at ``path`` in this process."""
    before = _rss_mb()
    session = ort.InferenceSession(path, session_options(settings.threads),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)

    def make_call(batch: int) -> Any:
        feed = {name: random_inputs(rng, batch, input_shape, dtype, high)}
        return lambda: session.run(None, feed)

    result: dict[str, Any] = measure_speed(make_call, settings)
    peak = _rss_mb()
    result["peak_rss_mb"] = round(peak, 2)
    result["model_rss_mb"] = round(peak - before, 2)
    return result


def main() -> None:
    request = json.loads(sys.argv[1])
    settings = ProfileSettings(**request["settings"])
    try:
        out = profile(request["path"], request["input_shape"], request["dtype"], settings,
                      request.get("high"))
    except Exception as err:  # reported to the parent, which raises a clear error
        out = {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
