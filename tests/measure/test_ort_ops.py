"""The one line `slimkit explain` gives for a quantized model, from injected operator times."""

from __future__ import annotations

from slimkit.measure.ort_ops import explain


def ops(op_us: dict[str, float], nodes: dict[str, int] | None = None) -> dict:
    return {"op_us": op_us, "op_nodes": nodes or dict.fromkeys(op_us, 1),
            "total_us": sum(op_us.values())}


FLOAT = ops({"Conv": 400.0, "ReduceMean": 40.0, "Gemm": 10.0})


def test_int8_kernels_slower_than_float_ones_are_named() -> None:
    quantized = ops({"QLinearConv": 1000.0, "ReduceMean": 35.0, "QGemm": 12.0,
                     "QuantizeLinear": 12.0, "DequantizeLinear": 10.0})
    line = explain(quantized, FLOAT, ["avx2", "avx512f", "avx512_vnni"])["verdict"]
    assert line.startswith("slower than float (0.42x operator time): ")
    assert "the int8 kernels alone take 1,012 µs against 410 µs in float" in line
    assert "VNNI" not in line and "\n" not in line


def test_convs_left_in_float_layout_changes_and_a_cpu_without_vnni() -> None:
    quantized = ops({"Conv": 900.0, "QLinearConv": 200.0, "Transpose": 150.0,
                     "DequantizeLinear": 300.0, "QuantizeLinear": 100.0},
                    {"Conv": 5, "QLinearConv": 4, "Transpose": 12, "DequantizeLinear": 5,
                     "QuantizeLinear": 5})
    line = explain(quantized, FLOAT, ["avx2", "fma"])["verdict"]
    assert "5 compute op(s) stayed float behind Dequantize (900 µs" in line
    assert "layout changes (Transpose/Reorder) add 150 µs" in line
    assert "Quantize/Dequantize take 24%" in line
    assert line.endswith("this CPU has no VNNI/AMX int8 instructions")


def test_a_model_that_pays_says_so() -> None:
    quantized = ops({"QLinearConv": 100.0, "ReduceMean": 40.0, "QGemm": 5.0})
    assert explain(quantized, FLOAT)["verdict"] == (
        "int8 pays here: 3.10x less operator time than the float model")
