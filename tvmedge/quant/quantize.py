"""``quantize(model, config)``: the one entry point; it dispatches on the config's type.

What differs by type is only how activations are treated (:func:`activation_plan`, a ``singledispatch`` on
``DynamicQuantConfig`` / ``StaticQuantConfig`` / ``WeightOnlyConfig``); weights (INT8, INT4 or mixed) and
the report are common.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import singledispatch
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ConfigError, ModelError
from ..frontend.onnx import OnnxModel, fold_onnx, input_specs, node_names, read_onnx
from .calibrate import calibrate
from .config import DynamicQuantConfig, QuantConfig, StaticQuantConfig, WeightOnlyConfig, load_config
from .dataset import Dataset, load_dataset
from .engine import Engine, outputs_of, relative_error, top1
from .blockwise import BlockQuantizedWeight, quantize_blockwise
from .int8 import quantize_weight
from .mixed import choose_mixed
from .qdq import INT4_OPSET, ActivationPlan, build_qdq, find_layers, weight_bytes_of
from .report import QuantReport

__all__ = ["quantize", "QuantResult", "activation_plan"]

_BASE_OPSET = 13  # per-channel DequantizeLinear
_IR_FOR_OPSET = {13: 7, 21: 10}  # the IR version each opset came with
DATASET_KEY = "quantization.calibration_dataset"


@dataclass
class QuantResult:
    """The quantized ONNX model and its report."""

    model: object  # onnx.ModelProto
    report: QuantReport
    float_model: object  # the float model as quantized (constants folded, opset raised if needed)

    def manifest_record(self) -> dict:
        """What an artifact's manifest says about this quantization (``build.quantization``)."""
        report = self.report
        return {"config": report.config, "activations": report.activations,
                "quantized_model_sha256": hashlib.sha256(self.model.SerializeToString()).hexdigest(),
                "layers": {row["name"]: row["bits"] for row in report.layers},
                "weight_bytes": {"float": report.size["float_weight_bytes"],
                                 "quantized": report.size["quant_weight_bytes"]},
                "notes": report.notes}

    def save(self, path) -> Path:
        import onnx

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(self.model, path)
        self.report.size["quant_onnx_bytes"] = path.stat().st_size
        return path


def quantize(model, config, *, evaluate=None, progress: Optional[Callable[[str], None]] = None,
             int4_layers: Optional[set] = None) -> QuantResult:
    """Quantize an ONNX model (path or ``ModelProto``) as ``config`` says -> ``QuantResult``.

    Parameters
    ----------
    model : path, onnx.ModelProto, or an :class:`~tvmedge.frontend.onnx.OnnxModel` (already read and folded)
    config : ``QuantConfig`` or a path to its YAML
    evaluate : optional dataset (folder / list / .npz, with ``labels`` for accuracy) for the report
    progress : receives a message as each step starts
    int4_layers : with ``bit_width: mixed``, the choice made already (node names of the INT4 layers; the rest
        INT8) instead of measuring it: the second graph of an LM package gets the first one's

    Raises
    ------
    ConfigError
        Missing or mis-shaped dataset (naming the key), nothing to quantize.
    ModelError
        Unreadable model, or one whose opset cannot be raised to what QDQ needs.
    """
    progress = progress or (lambda message: None)
    if not isinstance(config, QuantConfig):
        config = load_config(config)
    float_model, name, sha, onnx_bytes, folded = _read(model)
    source_names = model.source_names if isinstance(model, OnnxModel) else node_names(float_model)
    float_model = _prepare(float_model, name, _BASE_OPSET, fold=not folded)
    specs = input_specs(float_model)
    layers, unmatched = find_layers(float_model, config.exclude_layers, source_names)
    active = [layer for layer in layers if not layer.excluded]
    if not active:
        raise ConfigError(f"{name}: no layer to quantize (Conv/Gemm/MatMul with a constant weight"
                          + (", after exclude_layers)" if layers else ")"))
    given = config.bit_width == "mixed" and int4_layers is not None
    data = None if given and config.type == "weight_only" else _calibration_data(config, specs, progress)
    progress(f"activations: {config.type}")
    plan = activation_plan(config, float_model, active, data)
    weights = _WeightCache(float_model, config)
    notes = [_unmatched_note(p, source_names) for p in unmatched]
    mixed = None
    if given:
        for layer in active:
            layer.bits = 4 if layer.node in int4_layers else 8
    elif config.bit_width == "mixed":
        progress(f"mixed precision: measuring the sensitivity of {len(active)} layers")
        mixed = _choose_mixed(float_model, layers, active, plan, weights, data, config)
        notes += mixed.notes
    else:
        for layer in active:
            layer.bits = config.bit_width
    quantized = {layer.node: weights.get(layer) for layer in active}
    for layer in active:
        layer.stored_bytes = quantized[layer.node].nbytes
        if isinstance(quantized[layer.node], BlockQuantizedWeight):
            layer.group_size = quantized[layer.node].block_size
    storage = "int4"
    if any(layer.bits == 4 and not isinstance(quantized[layer.node], BlockQuantizedWeight) for layer in active):
        float_model, storage = _int4_opset(float_model, name, notes)
    qmodel = build_qdq(float_model, layers, quantized, plan, int4_storage=storage)
    _check(qmodel, name)
    report = _report(name, sha, onnx_bytes, config, float_model, qmodel, layers, quantized, plan, data, mixed, notes)
    if evaluate is not None:
        progress(f"evaluating float and quantized models on {evaluate}")
        report.accuracy = evaluate_models(float_model, qmodel, load_dataset(evaluate, specs, key="--evaluate"))
    report.engine = _engine_name()
    return QuantResult(qmodel, report, float_model)


def _unmatched_note(pattern: str, source_names: dict) -> str:
    import fnmatch

    ops = sorted({op for node, op in (source_names.get("ops") or {}).items() if fnmatch.fnmatchcase(node, pattern)})
    if ops:
        return (f"exclude_layers pattern '{pattern}' names {'/'.join(ops)} node(s), which are not quantized "
                f"(only Conv / Gemm / MatMul weights are)")
    return f"exclude_layers pattern '{pattern}' matches no layer"


def _calibration_data(config, specs, progress) -> Optional[Dataset]:
    """The calibration samples, when the config names a dataset or needs one."""
    if config.calibration_dataset is None and not config.needs_dataset:
        return None
    if config.calibration_dataset is None:
        raise ConfigError(f"{DATASET_KEY} is required for type {config.type} with bit_width {config.bit_width} "
                          f"(calibration data is measured on it)")
    progress(f"reading calibration data {config.calibration_dataset}")
    return load_dataset(config.calibration_dataset, specs, key=DATASET_KEY, limit=config.max_samples)


def _report(name, sha, onnx_bytes, config, float_model, qmodel, layers, quantized, plan, data, mixed, notes):
    float_bytes, quant_bytes = weight_bytes_of(float_model, layers, quantized)
    target = config.mixed_target
    return QuantReport.create(
        model=name, model_sha256=sha, config=config, layers=layers, plan=plan,
        size={"float_weight_bytes": float_bytes, "quant_weight_bytes": quant_bytes,
              "weight_ratio": round(quant_bytes / max(float_bytes, 1), 4), "float_onnx_bytes": onnx_bytes,
              "quant_onnx_bytes": qmodel.ByteSize()},
        calibration=None if data is None else {"dataset": data.source, "samples": len(data)},
        mixed=None if mixed is None else {
            "target_size_ratio": target.target_size_ratio, "max_accuracy_drop": target.accuracy_limit,
            "int4_layers": sorted(mixed.int4), "calibration_accuracy": round(mixed.score, 6),
            "float_calibration_accuracy": round(mixed.float_score, 6), "weight_ratio": round(mixed.size_ratio, 4),
            "evaluations": mixed.evaluations},
        notes=notes,
    )


# --- activations: the part that differs by type ---------------------------------------------------

@singledispatch
def activation_plan(config: QuantConfig, model, layers: list, data: Optional[Dataset]) -> ActivationPlan:
    """How activations entering quantized layers are treated, for ``config``'s type."""
    raise ConfigError(f"quantization.type: {config.type!r} is not supported")


@activation_plan.register
def _(config: WeightOnlyConfig, model, layers, data):
    return ActivationPlan("none")


@activation_plan.register
def _(config: DynamicQuantConfig, model, layers, data):
    return ActivationPlan("dynamic")


@activation_plan.register
def _(config: StaticQuantConfig, model, layers, data):
    tensors = sorted({layer.activation for layer in layers})
    ranges = calibrate(model, tensors, data.samples, config.calibration_method, config.percentile)
    return ActivationPlan("static", ranges)


# --- helpers --------------------------------------------------------------------------------------

class _WeightCache:
    """Quantized weights per (weight, bits), computed once (mixed precision asks for both widths).

    INT4 weights of MatMul / Gemm layers are group-wise (:mod:`.blockwise`, a MatMulNBits node) when the config
    sets ``group_size``; every other quantized weight is per output channel (:mod:`.int8`).
    """

    def __init__(self, model, config: QuantConfig):
        from onnx import numpy_helper

        self._arrays = {init.name: init for init in model.graph.initializer}
        self._to_array = numpy_helper.to_array
        self._config = config
        self._cache = {}

    def get(self, layer, bits: Optional[int] = None):
        bits = bits or layer.bits
        config = self._config
        grouped = bits == 4 and config.group_size is not None and layer.groupable
        key = (layer.weight, layer.axis, bits, grouped and layer.transposed)
        if key not in self._cache:
            w = self._to_array(self._arrays[layer.weight])
            if grouped:
                self._cache[key] = quantize_blockwise(layer.matrix(w), config.group_size, symmetric=config.symmetric,
                                                      scale_dtype=config.scale_dtype, method=config.weight_scale)
            else:
                self._cache[key] = quantize_weight(w, layer.axis, bits, config.weight_scale)
        return self._cache[key]


def _choose_mixed(model, layers, active, plan, weights, data, config):
    """Wire ``choose_mixed`` to this model: scores on the calibration set, sizes from the weights."""
    float_out = outputs_of(Engine(model), data.samples)
    labels = data.labels if data.labels is not None else float_out.reshape(float_out.shape[0], -1).argmax(1)
    float_score = top1(float_out, labels)

    def assign(int4: set) -> dict:
        for layer in active:
            layer.bits = 4 if layer.node in int4 else 8
        return {layer.node: weights.get(layer) for layer in active}

    def score(int4: set) -> tuple:
        quantized = assign(int4)
        out = outputs_of(Engine(build_qdq(model, layers, quantized, plan, int4_storage="int8")), data.samples)
        return top1(out, labels), relative_error(out, float_out)

    def size_ratio(int4: set) -> float:
        total, after = weight_bytes_of(model, layers, assign(int4))
        return after / max(total, 1)

    choice = choose_mixed(active, config.mixed_target, score, size_ratio, float_score)
    assign(choice.int4)
    return choice


def evaluate_models(float_model, qmodel, data: Dataset) -> dict:
    """Float vs quantized on ``data``: top-1 against labels (or agreement with float), output error."""
    float_out = outputs_of(Engine(float_model), data.samples)
    quant_out = outputs_of(Engine(qmodel), data.samples)
    if data.labels is not None:
        labels, metric = data.labels, "top-1 accuracy"
    else:
        labels, metric = float_out.reshape(float_out.shape[0], -1).argmax(1), "top-1 agreement with the float model"
    float_acc, quant_acc = top1(float_out, labels), top1(quant_out, labels)
    return {"dataset": data.source, "samples": len(data), "metric": metric, "float": round(float_acc, 6),
            "quantized": round(quant_acc, 6), "ratio": round(quant_acc / float_acc, 6) if float_acc else None,
            "output_relative_error": round(relative_error(quant_out, float_out), 6)}


def _read(model) -> tuple:
    """-> (ModelProto, display name, sha256, file bytes, already folded?)."""
    import onnx

    if isinstance(model, OnnxModel):  # read, checked and folded by the compile pipeline: not again
        return model.proto, model.path, model.sha256, Path(model.path).stat().st_size, True
    if isinstance(model, onnx.ModelProto):
        data = model.SerializeToString()
        return model, model.graph.name or "model", hashlib.sha256(data).hexdigest(), len(data), False
    proto, sha = read_onnx(model)
    return proto, str(model), sha, Path(model).stat().st_size, False


def _prepare(model, name: str, opset: int, *, fold: bool = True):
    """Fold constants (weights built by ConstantOfShape become initializers) and raise the opset to ``opset``."""
    if fold:
        model = fold_onnx(model)
    return _raise_opset(model, name, opset)


def _raise_opset(model, name: str, opset: int):
    import onnx
    from onnx import version_converter

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if current >= opset:
        return model
    # The converter only sees initializers listed as graph inputs (the IR 3 convention): list them for it.
    listed = {value.name for value in model.graph.input}
    extra = [init for init in model.graph.initializer if init.name not in listed]
    if extra:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.graph.input.extend(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
                                 for init in extra)
    try:
        converted = version_converter.convert_version(model, opset)
        if extra:
            names = {init.name for init in extra}
            kept = [value for value in converted.graph.input if value.name not in names]
            del converted.graph.input[:]
            converted.graph.input.extend(kept)
        converted.ir_version = max(converted.ir_version, _IR_FOR_OPSET[opset])
        onnx.checker.check_model(converted)
    except Exception as err:  # the converter raises assorted errors
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ModelError(f"{name}: cannot move the model from opset {current} to {opset} "
                         f"(quantized ONNX needs it): {first}") from err
    return converted


def _int4_opset(model, name: str, notes: list) -> tuple:
    """Opset 21 for INT4 initializers, else INT8 storage of the INT4 values (the artifact packs them anyway)."""
    try:
        model = _raise_opset(model, name, INT4_OPSET)
    except ModelError as err:
        notes.append(f"INT4 weights stored one per byte in the ONNX file ({err}); the compiled artifact packs them")
        return model, "int8"
    model.ir_version = max(model.ir_version, _IR_FOR_OPSET[INT4_OPSET])
    return model, "int4"


def _check(model, name: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise ModelError(f"{name}: the quantized model fails the ONNX checker: {str(err).splitlines()[0]}") from err


def _engine_name() -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "none (nothing was run)"
    return f"onnxruntime {ort.__version__} (graph optimizations off)"
