"""``quantize``: int8 (dynamic, static, quantization-aware training) or fp16 ONNX models.

The output is a deployable ONNX model that onnxruntime executes, measured like every other
candidate. onnxruntime's own quantizers do the work (``quantize_dynamic``, ``quantize_static``
in QDQ format, ``quant_pre_process``; fp16 with onnxruntime's ``float16`` converter); slimkit
feeds calibration from the task's train split only, and, given an accuracy budget, excludes the
most sensitive layers (measured one by one on val) until the model fits it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16
from pydantic import Field

from slimkit.core.errors import TechniqueError
from slimkit.core.runs import Candidate
from slimkit.measure.compare import speedups
from slimkit.measure.evaluate import split_metrics
from slimkit.measure.onnx import export_onnx, run_onnx
from slimkit.measure.parity import quiet_logger
from slimkit.measure.race import race, speed_ratio
from slimkit.models import RECURRENT_FAMILIES
from slimkit.techniques.base import (
    Context,
    PrefixedTrial,
    SearchSpec,
    Seed,
    Technique,
    TechniqueConfig,
    register_technique,
)
from slimkit.techniques.fake_quant import (
    LayerRange,
    fake_quantized,
    fold_batchnorm,
    tensor_overrides,
)
from slimkit.techniques.static_transformer import implementation, quantize_transformer
from slimkit.training import TrainConfig, fit

QUANTIZABLE = ("Conv", "Gemm", "MatMul")
ACTIVATION_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
# Static int8 on token-id models (transformers): only the weight MatMuls/Gemms. Quantizing
# the rest puts Q/DQ on the attention mask (-3.4e38) and softmax inputs, which collapses the
# output (cosine 0.35 on all-MiniLM-L6-v2 with onnxruntime's full list).
TRANSFORMER_STATIC_OPS = ("MatMul", "Gemm")
# Shape inference does not type the outputs of onnxruntime's fused operators (Attention,
# SkipLayerNormalization): they are float32 in every file slimkit exports.
FUSED_GRAPH_TYPES = {"DefaultTensorType": onnx.TensorProto.FLOAT}
SLOWER_MARGIN = 0.05  # slower than the parent by more than this at batch 1 or in bulk: flagged
# recurrent operators: onnxruntime runs LSTM in int8 with dynamic quantization only
# (DynamicQuantizeLSTM); it has no int8 GRU or RNN kernel, and no QDQ form of any of them
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
DYNAMIC_RECURRENT = ("LSTM",)
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
             "QLinearMatMul", "ConvInteger", "MatMulInteger"}


class QuantizeConfig(TechniqueConfig):
    mode: Literal["static", "dynamic", "qat", "fp16"] = Field(
        "static", description="static: calibrated int8; dynamic: int8 weights, activations "
                              "quantized at run time; qat: fake-quant fine-tuning; fp16")
    per_channel: bool | Literal["auto"] = Field(
        "auto", description="one weight scale per output channel; auto: try both, keep the "
                            "more accurate on val (ties: per tensor, the smaller file)")
    op_types: list[str] | None = Field(
        None, description="ONNX op types to quantize [every type onnxruntime supports, so "
                          "data stays int8 through Relu, MaxPool, Reshape ...; static int8 "
                          "of token-id models (transformers): MatMul and Gemm only]")
    calibration: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="static/qat: how activation ranges are chosen")
    calibration_samples: int = Field(512, ge=1, le=100000,
                                     description="train samples used for calibration")
    activations: Literal["auto", "int8", "uint8"] = Field(
        "auto", description="static/qat: activation type; auto: both built, the faster on this "
                            "CPU kept (x86 fuses uint8 Convs that read a tensor two nodes use)")
    symmetric_activations: bool = Field(False, description="activation ranges centred on 0")
    symmetric_weights: bool = Field(True, description="weight ranges centred on 0")
    preprocess: bool = Field(True, description="onnxruntime shape inference + optimization")
    max_accuracy_drop: float | None = Field(
        None, ge=0, lt=1, description="fallback budget on val [default: the run's constraint]")
    fallback: bool = Field(True, description="exclude sensitive layers to meet the budget")
    qat: TrainConfig = Field(
        default_factory=lambda: TrainConfig(epochs=5, lr=1e-4, patience=None,
                                            weight_decay=0.0),
        description="fine-tuning with fake quantization (mode: qat)")
    range_lr: float = Field(
        2e-3, gt=0, le=1, description="qat: learning rate of the activation ranges (scale and "
                                      "zero point, learned with the weights)")


class TrainReader:
    """Calibration batches from the task's train split (never val or test)."""

    def __init__(self, x: np.ndarray, input_name: str, samples: int, seed: int,
                 batch: int = 64) -> None:
        rng = np.random.default_rng(seed)
        self.rows = rng.choice(len(x), size=min(samples, len(x)), replace=False)
        self.x, self.name, self.batch = x, input_name, batch
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.rows):
            return None
        rows = self.rows[self._next:self._next + self.batch]
        self._next += self.batch
        return {self.name: self.x[rows]}

    def rewind(self) -> None:
        self._next = 0


def quantizable_nodes(path: Path, op_types: list[str] | None) -> list[str]:
    kinds = tuple(op_types or QUANTIZABLE)
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in kinds]


def is_reduced(path: Path, mode: str) -> bool:
    """Whether the file really holds int8 (or fp16) computation."""
    model = onnx.load(str(path))
    if mode == "fp16":
        return any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    int8 = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    return any(i.data_type in int8 for i in model.graph.initializer) and any(
        n.op_type in QUANT_OPS for n in model.graph.node)


def recurrent_ops(path: Path) -> list[str]:
    """The recurrent operator types of the ONNX file at ``path``."""
    return sorted({n.op_type for n in onnx.load(str(path)).graph.node
                   if n.op_type in RECURRENT_OPS})


def check_recurrent(path: Path, mode: str, params: dict[str, Any]) -> None:
    """Refuse a mode that would leave every recurrent operator in float (static, qat: there is
    no QDQ form of them); record what dynamic int8 keeps in float (GRU)."""
    found = recurrent_ops(path)
    if not found:
        return
    if mode in ("static", "qat"):
        raise TechniqueError(
            f"quantize: mode {mode} cannot run {'/'.join(found)} in int8 (onnxruntime has no "
            f"QDQ kernel for recurrent operators; only the layers around them would be int8); "
            f"use mode: dynamic (int8 LSTM kernel; GRU stays float) or fp16")
    if mode == "dynamic":
        kept = [op for op in found if op not in DYNAMIC_RECURRENT]
        params["recurrent_int8"] = [op for op in found if op in DYNAMIC_RECURRENT]
        if kept:
            params["kept_float"] = {op: "onnxruntime has no int8 kernel for it; the layers "
                                        "around it are int8" for op in kept}


def quiet_quantizer() -> contextlib.AbstractContextManager[None]:
    """onnxruntime's quantizer writes its notes (pre-processing advice, axis warnings) to the
    root logger; keep them off the terminal (errors still raise)."""
    return quiet_logger()


Overrides = dict[str, list[dict[str, Any]]]  # onnxruntime's TensorQuantOverrides


def _quantize(src: Path, dst: Path, config: QuantizeConfig, context: Context,
              exclude: list[str], overrides: Overrides | None = None) -> None:
    """Quantize ``src`` into ``dst`` (``config.per_channel`` must be decided already);
    ``overrides`` fix the ranges of some activations (QAT's learned ones)."""
    with quiet_quantizer():
        _run_quantizer(src, dst, config, context, exclude, overrides or {})


def _run_quantizer(src: Path, dst: Path, config: QuantizeConfig, context: Context,
                   exclude: list[str], overrides: Overrides) -> None:
    ops = config.op_types  # None: onnxruntime's full list
    if config.mode == "dynamic":
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=ops,
                         per_channel=config.per_channel, weight_type=QuantType.QInt8,
                         nodes_to_exclude=exclude, extra_options=FUSED_GRAPH_TYPES)
        return
    if ops is None and context.task.token_inputs:
        ops = list(TRANSFORMER_STATIC_OPS)  # softmax, mask arithmetic, LayerNorm stay float
    name = onnx.load(str(src)).graph.input[0].name
    reader = TrainReader(context.task.train.x, name, config.calibration_samples, context.seed)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[config.calibration]
    quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=ops, per_channel=config.per_channel,
                    activation_type=ACTIVATION_TYPES[config.activations],
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude, calibrate_method=method,
                    extra_options={"ActivationSymmetric": config.symmetric_activations,
                                   "WeightSymmetric": config.symmetric_weights,
                                   "MatMulConstBOnly": True,  # weight MatMuls only
                                   "TensorQuantOverrides": overrides,
                                   **FUSED_GRAPH_TYPES})
    _strip_value_info(dst)


def _strip_value_info(path: Path) -> None:
    """Drop the intermediate shapes pre-processing recorded: onnxruntime re-infers them, and
    they would only make the deployable file bigger."""
    model = onnx.load(str(path))
    del model.graph.value_info[:]
    onnx.save(model, str(path))


def _fp16(src: Path, dst: Path) -> None:
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _toposort(model.graph)  # the converter appends its input casts after their consumers
    onnx.save(model, str(dst))


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so that every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise TechniqueError("fp16: the converted graph has a cycle or a missing input")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def val_score(path: Path, context: Context) -> float:
    """The task's metric on val for the ONNX model at ``path``, signed so that higher is
    better (a difference of two scores is a drop in the metric's units)."""
    task = context.task
    value = split_metrics(run_onnx(path, task.val.x), task.val, task)[task.metric]
    return value if task.direction == "maximize" else -value


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """Run the block with ``folder`` as the current directory."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _fallback(make: Callable[[list[str]], Path], nodes: list[str], float_acc: float,
              budget: float, context: Context) -> tuple[Path, list[str], dict[str, float]]:
    """Exclude the most sensitive layers, one at a time, until val accuracy fits the budget."""
    sensitivity = {}
    for node in nodes:  # the accuracy lost when only this layer is quantized
        only = make([n for n in nodes if n != node])
        sensitivity[node] = round(float_acc - val_score(only, context), 6)
    order = sorted(nodes, key=lambda n: sensitivity[n], reverse=True)
    excluded: list[str] = []
    path = make(excluded)
    while float_acc - val_score(path, context) > budget + 1e-12 and len(excluded) < len(order):
        excluded.append(order[len(excluded)])
        path = make(excluded)
    return path, excluded, sensitivity


def _choose_granularity(src: Path, folder: Path, config: QuantizeConfig,
                        context: Context, overrides: Overrides) -> QuantizeConfig:
    """Per-channel or per-tensor weights, whichever is more accurate on val (ties: per tensor,
    which is smaller and never slower)."""
    scores = {}
    for per_channel in (False, True):
        trial = config.model_copy(update={"per_channel": per_channel})
        out = folder / f"granularity-{int(per_channel)}.onnx"
        _quantize(src, out, trial, context, [], overrides)
        scores[per_channel] = val_score(out, context)
    return config.model_copy(update={"per_channel": scores[True] > scores[False]})


def _choose_activations(src: Path, folder: Path, config: QuantizeConfig, context: Context,
                        params: dict[str, Any], overrides: Overrides) -> QuantizeConfig:
    """int8 or uint8 activations, whichever runs faster here (timed side by side): which
    quantized Convs onnxruntime fuses depends on the activation type and the CPU."""
    paths = {}
    per_channel = False if config.per_channel == "auto" else config.per_channel
    for kind in ACTIVATION_TYPES:
        paths[kind] = folder / f"activations-{kind}.onnx"
        trial = config.model_copy(update={"activations": kind, "per_channel": per_channel})
        _quantize(src, paths[kind], trial, context, [], overrides)
    task = context.task
    timed = race(paths, task.input_shape, task.input_dtype, context.settings.quick(),
                 task.input_high)
    chosen = "uint8" if speed_ratio(timed["uint8"], timed["int8"]) > 1 else "int8"
    params.update(activations=chosen, activations_choice={"auto (timed here)": timed})
    return config.model_copy(update={"activations": chosen})


def slower_than_parent(candidate: Candidate, parent: Candidate) -> bool:
    """The quantized model is slower than the model it was made from (onnxruntime, batch 1
    or the throughput batch, beyond timing noise)."""
    if not candidate.profile.get("onnxruntime") or not parent.profile.get("onnxruntime"):
        return False
    ratio = speedups(candidate, parent)
    return min(ratio["latency"], ratio["throughput"]) < 1 - SLOWER_MARGIN


@register_technique
class Quantize(Technique):
    name = "quantize"
    description = "int8 (dynamic, static QDQ, QAT) or fp16 ONNX for onnxruntime"
    Config = QuantizeConfig
    role = "precision"

    @classmethod
    def search_space(cls, trial: PrefixedTrial, spec: SearchSpec) -> QuantizeConfig:
        """An int8 mode; per-channel weights are chosen on val, the accuracy fallback keeps
        sensitive layers in float within what the chain has left of the budget."""
        if spec.model.get("family") in RECURRENT_FAMILIES:  # no QDQ form of GRU/LSTM
            return QuantizeConfig(mode=trial.suggest_categorical("mode", ["dynamic"]))
        return QuantizeConfig(mode=trial.suggest_categorical("mode",
                                                             ["dynamic", "static", "qat"]))

    @classmethod
    def label(cls, config: TechniqueConfig) -> str:
        return str(config.mode)  # type: ignore[attr-defined]

    @classmethod
    def seeds(cls, spec: SearchSpec) -> list[Seed]:
        if spec.model.get("family") in RECURRENT_FAMILIES:
            return [Seed({"mode": "dynamic"})]
        return [Seed({"mode": "static"})]

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: QuantizeConfig = self.config  # type: ignore[assignment]
        model, spec = context.load_model(parent)
        params: dict[str, Any] = config.model_dump()
        checked = context.run_dir / parent.artifacts.get("onnx", "-")
        if checked.is_file():  # before QAT's training: a mode that cannot apply says so first
            check_recurrent(checked, config.mode, params)
        training: dict[str, Any] = {}
        ranges: list[LayerRange] = []
        if config.mode == "qat":
            model = fold_batchnorm(copy.deepcopy(model))
            with fake_quantized(model, _calibration_batches(config, context),
                                config.per_channel is not False, config.symmetric_activations,
                                outputs=True) as qat:
                ranges_group = {"params": qat.range_parameters(), "lr": config.range_lr,
                                "weight_decay": 0.0}
                result = fit(model, context.task, config.qat, seed=context.seed,
                             progress=context.progress, description=f"{context.new_id} qat",
                             param_groups=[ranges_group])
            training, ranges = result.to_dict(), qat.ranges
        with tempfile.TemporaryDirectory(prefix="slimkit-quant-") as tmp:
            folder = Path(tmp)
            fp32 = folder / "fp32.onnx"
            if config.mode in ("static", "qat") and context.task.token_inputs:
                # QDQ quantizers (NNCF, onnxruntime's) read standard operators: a fused
                # Attention would stay float
                export_onnx(model, context.task.input_shape, fp32, context.task.test.x[:256],
                            fuse=False)
            elif config.mode != "qat" and "torch" in parent.artifacts and checked.is_file():
                shutil.copyfile(checked, fp32)  # the parent's export, checked against torch
            else:
                export_onnx(model, context.task.input_shape, fp32, context.task.test.x[:256])
            if not checked.is_file():  # checked above otherwise
                check_recurrent(fp32, config.mode, params)
            src = fp32
            if config.preprocess and config.mode != "fp16":
                src, params["preprocess_result"] = _preprocess(fp32, folder)
            if config.mode == "fp16":
                out, exhausted = folder / "fp16.onnx", False
                _fp16(src, out)
            else:
                out, exhausted = self._int8(src, fp32, folder, context, params, ranges)
            if not exhausted and not is_reduced(out, config.mode):
                raise TechniqueError(f"quantize: {config.mode} produced no reduced-precision "
                                     f"operator for this model")
            candidate = context.materialize(model, spec, params=params, training=training,
                                            onnx_source=out)
        if exhausted:
            candidate.flags.append("fallback_exhausted")  # every layer had to stay float
        if slower_than_parent(candidate, parent):
            candidate.flags.append("slower_than_parent")  # never selected (see select)
        return candidate

    def _int8(self, src: Path, fp32: Path, folder: Path, context: Context,
              params: dict[str, Any], ranges: list[LayerRange]) -> tuple[Path, bool]:
        """The int8 model of ``src`` (per-channel choice and accuracy fallback recorded in
        ``params``; QAT's learned activation ``ranges`` used); True when the fallback had to
        keep every layer in float."""
        config: QuantizeConfig = self.config  # type: ignore[assignment]
        overrides = tensor_overrides(src, ranges) if ranges else {}
        if ranges:
            params["learned_ranges"] = len(overrides)  # activation tensors QAT set
        if _by_nncf(config, context):
            out = folder / "nncf.onnx"
            rows = np.random.default_rng(context.seed).permutation(len(context.task.train.x))
            train = context.task.train.x[np.sort(rows[:config.calibration_samples])]
            quantize_transformer(src, out, train, onnx.load(str(src)).graph.input[0].name)
            params.update(implementation=implementation(), per_channel=True, excluded=[],
                          activations="uint8")
            return out, False
        if config.mode == "dynamic":  # onnxruntime quantizes activations to uint8 at run time
            params["activations"] = "uint8"
        elif config.activations == "auto":
            config = _choose_activations(src, folder, config, context, params, overrides)
        if config.per_channel == "auto":
            config = _choose_granularity(src, folder, config, context, overrides)
            params["per_channel"] = config.per_channel
            params["per_channel_choice"] = f"auto (val {context.task.metric})"
        candidate_ops = config.op_types or (
            [*QUANTIZABLE, *DYNAMIC_RECURRENT] if config.mode == "dynamic" else None)
        nodes = quantizable_nodes(src, candidate_ops)  # the fallback's candidates
        if not nodes:
            kinds = ", ".join(config.op_types or QUANTIZABLE)
            raise TechniqueError(f"quantize: the model has no quantizable operators "
                                 f"(looked for {kinds})")
        counter = iter(range(10**6))

        def make(exclude: list[str]) -> Path:
            out = folder / f"q{next(counter)}.onnx"
            _quantize(src, out, config, context, exclude, overrides)
            return out

        out = make([])
        budget = config.max_accuracy_drop
        if budget is None:
            budget = context.constraints.get("max_accuracy_drop")
        float_acc = val_score(fp32, context)
        params["float_val_accuracy"] = float_acc  # signed score (see val_score)
        params["float_val_metric"] = {context.task.metric: float_acc if
                                      context.task.direction == "maximize" else -float_acc}
        params["excluded"] = []
        if not config.fallback or budget is None or float_acc - val_score(out, context) <= budget:
            return out, False
        out, excluded, sensitivity = _fallback(make, nodes, float_acc, budget, context)
        params.update(excluded=excluded, sensitivity=sensitivity, fallback_budget=budget)
        return out, len(excluded) == len(nodes)


def _calibration_batches(config: QuantizeConfig, context: Context) -> list[torch.Tensor]:
    """The train batches onnxruntime's static quantizer calibrates on (``TrainReader``), as
    tensors: QAT's activation ranges start where post-training quantization's are."""
    reader = TrainReader(context.task.train.x, "x", config.calibration_samples, context.seed)
    return [torch.from_numpy(batch["x"]) for batch in iter(reader.get_next, None)]


def _by_nncf(config: QuantizeConfig, context: Context) -> bool:
    """Static int8 of a transformer (token ids) with the default operator list goes through
    NNCF (``static_transformer``)."""
    return config.mode == "static" and context.task.token_inputs and config.op_types is None


def _preprocess(fp32: Path, folder: Path) -> tuple[Path, str]:
    """onnxruntime's shape inference and graph optimization before quantizing; a model it
    cannot follow (symbolic shapes) is quantized as it is. Returns (model, what happened)."""
    out = folder / "pre.onnx"
    try:  # it writes a temporary file into the current folder: keep it in ours
        with working_directory(folder), quiet_quantizer():
            # auto_merge: exported transformers slice position ids to min(max, sequence)
            quant_pre_process(str(fp32), str(out), auto_merge=True)
    except Exception as err:
        return fp32, f"skipped ({type(err).__name__})"
    return out, "done"
