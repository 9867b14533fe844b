"""ONNX -> Relax ``IRModule``: read and check the file, fix input shapes, fold shape subgraphs, import.

Real exported models compute shapes at run time (Shape -> Gather -> Concat -> Reshape chains) and carry
symbolic dims; TVM's importer needs those folded. We fix input shapes from the user and let onnxslim
(a maintained ONNX optimiser) fold, rather than writing our own folding.

Two steps, so that whatever happens between them (quantization, in ``compile --quant``) works on the same
read and folded model: :func:`load_onnx` reads and checks the file once, fixes shapes and folds once ->
:class:`OnnxModel`; :func:`import_model` converts it to Relax (a model holding quantized weights keeps them
quantized: :mod:`.qdq`) -> :class:`ImportedModel`. ``import_model(path)`` does both: it is the one import
of every verb (compile, tune, partition, rank).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Optional

import numpy as np
import onnx
from onnx import helper

from ..errors import ConfigError, ModelError, ShapeInputError, UnsupportedOpError, first_line
from ..runtime.manifest import TensorSpec
from .coverage import op_histogram, unsupported_ops
from .opset import check_opsets

__all__ = [
    "ImportedModel",
    "ModelReport",
    "OnnxModel",
    "import_model",
    "input_specs",
    "fold_onnx",
    "inspect_onnx",
    "load_onnx",
    "node_names",
    "weight_digest",
    "output_specs",
    "parse_input_shapes",
    "read_onnx",
]


@dataclass
class ModelReport:
    """What ``tvmedge inspect`` shows: IO specs, op histogram and every op TVM cannot import."""

    path: str
    sha256: str
    opset: int
    inputs: list  # of TensorSpec (dims: ints, or names where the shape is symbolic)
    outputs: list  # of TensorSpec
    ops: dict
    unsupported: dict
    needs_shape: list = field(default_factory=list)  # inputs whose shape is still symbolic
    needs_freeze: dict = field(default_factory=dict)  # inputs whose values set shapes -> where
    frozen: dict = field(default_factory=dict)  # inputs frozen with --freeze-input -> values
    problems: list = field(default_factory=list)  # other reasons the import would stop (one line each)

    def summary(self) -> dict:
        return {
            "model": self.path,
            "sha256": self.sha256,
            "opset": self.opset,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            "ops": dict(sorted(self.ops.items(), key=lambda kv: (-kv[1], kv[0]))),
            "unsupported_ops": dict(sorted(self.unsupported.items())),
            "needs_input_shape": self.needs_shape,
            "needs_freeze_input": self.needs_freeze,
            "frozen_inputs": self.frozen,
            "problems": self.problems,
            "importable": not (self.unsupported or self.needs_shape or self.needs_freeze or self.problems),
        }


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX model read and checked once, its input shapes fixed and its shape subgraphs folded."""

    proto: onnx.ModelProto  # after shape fixing and folding
    path: str  # the file it was read from
    sha256: str  # of that file
    input_shapes: dict  # name -> dims, as the user fixed them
    frozen_inputs: dict = field(default_factory=dict)  # name -> value, as the user froze them
    # names in the file before folding (folding renames fused nodes): weight initializer -> the nodes reading it,
    # and node name -> op type (:func:`node_names`); the quantizer matches exclude_layers against them too
    source_names: dict = field(default_factory=dict)

    def with_proto(self, proto: onnx.ModelProto) -> "OnnxModel":
        """The same source with another graph (e.g. its quantized version): path and sha256 stay the file's."""
        return replace(self, proto=proto)


@dataclass
class ImportedModel:
    """A Relax module with its IO specs and where it came from."""

    mod: object  # tvm.IRModule
    inputs: list  # of TensorSpec
    outputs: list  # of TensorSpec
    source_path: str
    source_sha256: str
    input_shapes: dict
    onnx_model: onnx.ModelProto  # after shape fixing and folding
    # quantized weights kept quantized (keep_weights_quantized's counts), None for a float model
    quantized_weights: Optional[dict] = None
    frozen_inputs: dict = field(default_factory=dict)  # inputs made constants (--freeze-input) -> values
    # integer layers and float fallbacks of a quantized model (qoperator.IntegerReport), None for a float model
    integer: Optional[object] = None
    # Relax variable name of each binding of main -> the ONNX tensor it computes (:mod:`.layers`)
    layer_of_var: dict = field(default_factory=dict)
    binding_signatures: dict = field(default_factory=dict)  # name -> what it computed at import, in binding order
    exposed_layers: Optional[int] = None  # a debug import: this many intermediate tensors made outputs too
    # inputs the graph updates in place (KV caches: tvmedge.compiler.kv_cache); their tensors are the results after
    updated_in_place: tuple = ()


def parse_input_shapes(items: Iterable[str]) -> dict:
    """``["x=1,3,224,224", "mask=1,128"]`` -> ``{"x": (1, 3, 224, 224), "mask": (1, 128)}``."""
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            shape = tuple(int(d) for d in dims.split(","))
            if not shape or any(d <= 0 for d in shape):
                raise ValueError
        except ValueError:
            raise ConfigError(f"--input-shape '{item}' must look like NAME=D0,D1,... with positive integers") from None
        shapes[name] = shape
    return shapes


def read_onnx(path) -> tuple:
    """Read and check an ONNX file; returns ``(model, sha256)``. ModelError for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ModelError(f"{path} is not a valid ONNX file (could not parse the protobuf: truncated or not ONNX)") from err
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path} is not a valid ONNX file (no graph inside: truncated or not ONNX)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise ModelError(f"{path} fails the ONNX checker: {first_line(err)}") from err
    return model, hashlib.sha256(data).hexdigest()


def _graph_inputs(model: onnx.ModelProto) -> list:
    initializers = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def _dims(value: onnx.ValueInfoProto) -> list:
    shape = value.type.tensor_type.shape
    # A negative dim_value (Paddle2ONNX writes -1) is a dynamic dim, like a named one.
    return [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else (d.dim_param or "?") for d in shape.dim]


def _dtype(value: onnx.ValueInfoProto) -> str:
    elem = value.type.tensor_type.elem_type
    try:
        return str(helper.tensor_dtype_to_np_dtype(elem))
    except (KeyError, ValueError):
        return onnx.TensorProto.DataType.Name(elem).lower()


def input_specs(model: onnx.ModelProto) -> list:
    """:class:`TensorSpec` of each graph input that is not an initializer (dims: ints, or the dim's name)."""
    return [TensorSpec(v.name, tuple(_dims(v)), _dtype(v)) for v in _graph_inputs(model)]


def output_specs(model: onnx.ModelProto) -> list:
    """:class:`TensorSpec` of each graph output, as the ONNX file declares it."""
    return [TensorSpec(v.name, tuple(_dims(v)), _dtype(v)) for v in model.graph.output]


def _fix_shapes(model: onnx.ModelProto, shapes: Mapping[str, tuple]) -> list:
    """Write user shapes into the graph inputs; return the names of inputs still symbolic."""
    inputs = {value.name: value for value in _graph_inputs(model)}
    for name, value in inputs.items():
        if value.type.WhichOneof("value") != "tensor_type":
            kind = value.type.WhichOneof("value") or "untyped"
            raise ModelError(f"input '{name}' is a {kind.replace('_type', '')} value; tvmedge compiles models whose inputs are tensors")
    for name, shape in shapes.items():
        if name not in inputs:
            raise ConfigError(f"--input-shape names unknown input '{name}'; the model's inputs are: {', '.join(inputs)}")
        dims = inputs[name].type.tensor_type.shape.dim
        if dims and len(dims) != len(shape):
            raise ConfigError(f"--input-shape {name}: model input has rank {len(dims)}, got {len(shape)} dims {shape}")
        for i, size in enumerate(shape):
            if i < len(dims) and dims[i].HasField("dim_value") and dims[i].dim_value >= 0 and dims[i].dim_value != size:
                raise ConfigError(f"--input-shape {name}: dim {i} is fixed to {dims[i].dim_value} in the model, got {size}")
        del dims[:]
        for size in shape:
            dims.add().dim_value = size
    return [name for name, value in inputs.items() if any(not isinstance(d, int) for d in _dims(value))
            or not value.type.tensor_type.HasField("shape")]


def _needs_shape_message(model: onnx.ModelProto, names: list) -> str:
    described = []
    for value in _graph_inputs(model):
        if value.name in names:
            dims = _dims(value)
            example = ",".join(str(d) if isinstance(d, int) else "1" for d in dims) or "1"
            described.append(f"{value.name} {tuple(dims)} (e.g. --input-shape {value.name}={example})")
    return "input shape needed: " + "; ".join(described)


def inspect_onnx(path, input_shapes: Optional[Mapping[str, tuple]] = None,
                 frozen_inputs: Optional[Mapping[str, list]] = None) -> ModelReport:
    """IO specs, op histogram, and every reason the import would stop, all at once (no import, no build):
    ops the importer lacks, symbolic input shapes, inputs that must be frozen, loops it cannot unroll."""
    model, sha = read_onnx(path)
    problems = []
    try:
        check_opsets(model, path)
    except ModelError as err:
        problems.append(str(err))
    frozen = _freeze(model, frozen_inputs)
    needs = _fix_shapes(model, dict(input_shapes or {}))
    needs_freeze = {}
    if not needs:
        from .freeze import shape_inputs

        model = fold_onnx(model)
        needs_freeze = shape_inputs(model)
        if not needs_freeze:
            try:
                model = _unroll(model, path)
            except ModelError as err:
                problems.append(str(err))
            needs_freeze = shape_inputs(model)
    return ModelReport(
        path=str(path),
        sha256=sha,
        opset=_opset(model),
        inputs=input_specs(model),
        outputs=output_specs(model),
        ops=dict(op_histogram(model)),
        unsupported=dict(unsupported_ops(model)),
        needs_shape=needs,
        needs_freeze=needs_freeze,
        frozen=frozen,
        problems=problems,
    )


def _freeze(model: onnx.ModelProto, frozen_inputs) -> dict:
    from .freeze import freeze_inputs

    return freeze_inputs(model, dict(frozen_inputs or {})) if frozen_inputs else {}


def _unroll(model: onnx.ModelProto, path) -> onnx.ModelProto:
    """Unroll static Loop/Scan (then fold again: the copies hold constants to fold)."""
    from .control_flow import unroll_control_flow

    return fold_onnx(model) if unroll_control_flow(model, path) else model


def _check_shape_inputs(model: onnx.ModelProto, path) -> None:
    from .freeze import shape_inputs

    found = shape_inputs(model)
    if found:
        listed = ", ".join(f"'{name}' ({where})" for name, where in found.items())
        example = " ".join(f"--freeze-input {name}=VALUE" for name in found)
        raise ShapeInputError(f"{path}: input(s) {listed} set shapes or constants the compiled code needs: their "
                              f"values must be known at compile time; freeze them: {example}", found)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def node_names(model: onnx.ModelProto) -> dict:
    """Layer names as the file has them, taken before folding: onnxslim renames what it fuses (a MatMul + Add
    becomes a Gemm named after its output, its weight transposed and renamed), and users name layers as their
    exporter wrote them (``exclude_layers: [final_fc]``).

    ``{"weights": {initializer: [reading nodes]}, "digests": {weight_digest(value): [reading nodes]},
    "ops": {node: op type}}``; digests are taken of the weights of MatMul / Gemm / Conv nodes only.
    """
    from onnx import numpy_helper

    inits = {init.name: init for init in model.graph.initializer}
    weights, digests, ops = {}, {}, {}
    for index, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        ops[name] = node.op_type
        for position, value in enumerate(node.input):
            if value in inits:
                weights.setdefault(value, []).append(name)
                if position == 1 and node.op_type in ("MatMul", "Gemm", "Conv"):
                    digests.setdefault(weight_digest(numpy_helper.to_array(inits[value])), []).append(name)
    return {"weights": weights, "digests": digests, "ops": ops}


def weight_digest(value) -> str:
    """A digest of an array's shape and values (what identifies a weight across renames)."""
    import numpy as np

    value = np.ascontiguousarray(value)
    return hashlib.blake2b(f"{value.dtype}{value.shape}".encode() + value.tobytes(), digest_size=16).hexdigest()


def fold_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold shape subgraphs and constants with onnxslim (inputs must have static shapes).

    Folding is what lets exported models with run-time shape computations import; a model onnxslim
    cannot process (e.g. opset < 7) goes to TVM's importer as it is, which handles static graphs itself.
    """
    import onnxslim

    try:
        return onnxslim.slim(model)
    except Exception:  # onnxslim raises assorted errors on models it does not support
        return model


def load_onnx(path, input_shapes: Optional[Mapping[str, tuple]] = None,
              frozen_inputs: Optional[Mapping[str, list]] = None) -> OnnxModel:
    """Read and check an ONNX file (once), freeze the inputs the user fixed, fix its input shapes, fold its
    shape subgraphs and constant conditions, unroll static loops (once).

    Raises
    ------
    ModelError
        Unreadable file, an opset or domain outside what the importer knows, a symbolic input shape the user
        did not fix, a loop whose trip count is known only at run time.
    ShapeInputError
        Inputs whose values set shapes and were not frozen (all of them).
    UnsupportedOpError
        Ops the importer lacks (all of them, with counts).
    ConfigError
        A bad --input-shape or --freeze-input.
    """
    model, sha = read_onnx(path)
    check_opsets(model, path)
    frozen = _freeze(model, frozen_inputs)
    shapes = dict(input_shapes or {})
    needs = _fix_shapes(model, shapes)
    if needs:
        raise ModelError(_needs_shape_message(model, needs))
    missing = Counter({op: n for op, n in unsupported_ops(model).items() if op not in _UNROLLED})
    if missing:
        _raise_unsupported(path, missing)
    names = node_names(model)
    model = fold_onnx(model)
    _check_shape_inputs(model, path)  # first: a loop's trip count may be such an input
    model = _unroll(model, path)
    _check_shape_inputs(model, path)  # a loop body may use one
    missing = unsupported_ops(model)
    if missing:
        _raise_unsupported(path, missing)
    return OnnxModel(model, str(path), sha, {k: list(v) for k, v in shapes.items()}, frozen, names)


_UNROLLED = ("Loop", "Scan")  # unrolled by load_onnx when their iteration count is static


def import_model(model, input_shapes: Optional[Mapping[str, tuple]] = None, *,
                 frozen_inputs: Optional[Mapping[str, list]] = None, keep_weights_quantized: bool = True) -> ImportedModel:
    """Import an ONNX model into Relax: a path (read, checked, shapes fixed and folded by :func:`load_onnx`) or an
    :class:`OnnxModel` already loaded (``input_shapes`` are then its own).

    A quantized model computes on integers where its patterns allow (:func:`.qoperator.to_qoperator`: QDQ
    patterns become quantized operators, whose converters emit int8 x int8 -> int32 Relax); weights still
    dequantized after that (a QDQ model's float layers, INT4 weights) are kept quantized through TVM's build
    (:func:`.qdq.keep_weights_quantized`). ``keep_weights_quantized=False`` imports the model as TVM's importer
    alone would, for comparison.

    Raises
    ------
    ModelError
        Unreadable file, a symbolic input shape the user did not fix, or the importer failing.
    UnsupportedOpError
        Ops TVM's importer lacks (all of them, with counts).
    """
    from . import qcheck, qdq, qoperator

    source = model if isinstance(model, OnnxModel) else load_onnx(model, input_shapes, frozen_inputs)
    proto, stats, integer = source.proto, None, None
    if keep_weights_quantized and qoperator.is_quantized(proto):
        qcheck.check_quantized(proto, source.path)
        proto, integer = qoperator.to_qoperator(proto)
    quantized = keep_weights_quantized and qdq.has_quantized_weights(proto)
    if quantized:
        proto = qdq.lower_int4_initializers(proto)  # TVM's importer cannot read INT4 tensors: widened to INT8
    proto = _direct_nbits_scales(proto)
    nbits = _check_matmul_nbits(proto, source.path)
    mod, (layer_of_var, signatures) = _to_relax(proto, source.path)
    if quantized:
        mod, stats = qdq.keep_weights_quantized(mod)
    if nbits:
        stats = dict(stats or {}, **nbits)
    outputs = _relax_output_specs(mod, [v.name for v in source.proto.graph.output], source.path)
    return ImportedModel(mod, input_specs(source.proto), outputs, source.path, source.sha256,
                         dict(source.input_shapes), source.proto, quantized_weights=stats,
                         frozen_inputs=dict(source.frozen_inputs), integer=integer, layer_of_var=layer_of_var,
                         binding_signatures=signatures)


def _direct_nbits_scales(model: onnx.ModelProto) -> onnx.ModelProto:
    """MatMulNBits scales written as float16 behind a ``Cast`` (its scales must have A's type; the quantizer's
    ``scale_dtype: float16``) are read from the float16 initializer itself: the kernel widens them in registers
    (a copy of ``model`` is changed; the Cast goes when nothing else reads it)."""
    from onnx import TensorProto

    inits = {init.name: init for init in model.graph.initializer}
    casts = {node.output[0]: node for node in model.graph.node if node.op_type == "Cast" and node.input
             and node.input[0] in inits and inits[node.input[0]].data_type == TensorProto.FLOAT16}
    targets = [node for node in model.graph.node if node.op_type == "MatMulNBits" and len(node.input) > 2
               and node.input[2] in casts]
    if not targets:
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    casts = {node.output[0]: node for node in model.graph.node if node.op_type == "Cast" and node.output[0] in casts}
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and len(node.input) > 2 and node.input[2] in casts:
            node.input[2] = casts[node.input[2]].input[0]
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    kept = [node for node in model.graph.node if not (node.op_type == "Cast" and node.output[0] in casts
                                                      and node.output[0] not in used)]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def _check_matmul_nbits(model: onnx.ModelProto, path) -> dict:
    """One-line ModelError for a MatMulNBits node the importer cannot run; counts of those it runs (packed 4-bit
    weights kept packed: :mod:`.converters.nbits`) for the manifest."""
    from .converters.nbits import check_matmul_nbits

    nodes = [node for node in model.graph.node if node.op_type == "MatMulNBits" and node.domain == "com.microsoft"]
    if not nodes:
        return {}
    inits = {init.name: init for init in model.graph.initializer}
    shapes = {value.name: _dims(value) for value in list(model.graph.input) + list(model.graph.value_info)}
    packed = 0
    for node in nodes:
        try:
            check_matmul_nbits(node, inits, shapes.get(node.input[0]))
        except ValueError as err:
            raise ModelError(f"{path}: {err}") from None
        packed += int(np.prod(inits[node.input[1]].dims))
    return {"matmul_nbits": len(nodes), "int4_packed_bytes": packed}


def _raise_unsupported(path, missing) -> None:
    listed = ", ".join(f"{op} (x{n})" for op, n in sorted(missing.items()))
    raise UnsupportedOpError(f"{path}: TVM's ONNX importer cannot convert {len(missing)} op type(s): {listed}", missing)


def _to_relax(model: onnx.ModelProto, path) -> tuple:
    """``(Relax module, (binding name -> ONNX tensor, binding name -> signature))`` (:mod:`.layers`)."""
    from tvm.relax.frontend.onnx import from_onnx

    from .converters import qualify_domains, register
    from .layers import capture_tensor_exprs, layer_of_bindings

    register()
    try:
        with capture_tensor_exprs() as exprs, warnings.catch_warnings():
            # said once per weight of every model whose weights are not also graph inputs (ONNX IR >= 4's norm)
            warnings.filterwarnings("ignore", message=".* in initializer but not in graph input")
            mod = from_onnx(qualify_domains(model), keep_params_in_input=False)
    except Exception as err:  # the importer raises TVMError, ValueError, KeyError, ...
        raise ModelError(f"{path}: TVM's ONNX importer failed: {first_line(err)}") from err
    return mod, layer_of_bindings(mod, exprs)


def _relax_output_specs(mod, names: list, path) -> list:
    from tvm import relax

    ret = mod["main"].ret_ty  # TVM 0.27 renamed StructInfo to Type (TensorType, TupleType)
    fields = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    specs = []
    for name, info in zip(names, fields):
        if not isinstance(info, relax.TensorType) or info.shape is None:
            raise ModelError(f"{path}: output '{name}' is not a tensor of known shape after import")
        try:
            shape = tuple(int(d) for d in info.shape.values)
        except (TypeError, AttributeError) as err:
            raise ModelError(f"{path}: output '{name}' has a dynamic shape {info.shape}; fix the input shapes") from err
        specs.append(TensorSpec(name, shape, str(info.dtype)))
    if len(specs) != len(names):
        raise ModelError(f"{path}: the model has {len(names)} outputs but the import produced {len(fields)}")
    return specs
