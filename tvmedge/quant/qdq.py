"""The quantized ONNX model: weights as INT8 / INT4 initializers behind ``DequantizeLinear`` (QDQ form).

Which layers: ``Conv``, ``Gemm`` and ``MatMul`` whose weight (input 1) is a float initializer; per output
channel (Conv axis 0, Gemm axis 0 with ``transB=1`` else 1, MatMul the last axis). Biases stay float.
Activations entering a quantized layer get, by type:

- ``static``:  ``QuantizeLinear -> DequantizeLinear`` with the calibrated uint8 scale / zero point;
- ``dynamic``: ``DynamicQuantizeLinear -> DequantizeLinear`` (range of each input at run time);
- ``weight_only``: nothing.

The result is standard ONNX (opset >= 13; >= 21 when INT4 initializers are used) that ONNX Runtime runs and
TVM's importer reads (:mod:`tvmedge.frontend.qdq` handles the INT4 part).

Group-wise INT4 (``group_size``): a MatMul / Gemm layer whose weight is a :class:`~.blockwise.BlockQuantizedWeight`
becomes ONNX Runtime's ``com.microsoft.MatMulNBits`` instead (float activations whatever the type; a Gemm's bias
follows as an ``Add``; float16 scales of a float32 model pass through a ``Cast``, since MatMulNBits wants its
scales in A's type). :mod:`tvmedge.frontend.converters.nbits` imports it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["Layer", "ActivationPlan", "find_layers", "build_qdq", "weight_bytes_of", "INT4_OPSET", "MS_DOMAIN"]

INT4_OPSET = 21
MS_DOMAIN = "com.microsoft"
_QUANTIZABLE = ("Conv", "Gemm", "MatMul")


@dataclass
class Layer:
    """A quantizable node: its weight initializer, channel axis and (once decided) bit width."""

    node: str
    op: str
    weight: str
    axis: int
    shape: tuple
    activation: str
    excluded: bool = False
    bits: Optional[int] = None  # 8 or 4; None keeps the layer float
    sensitivity: Optional[dict] = None
    groupable: bool = False  # can be a MatMulNBits: MatMul, or Gemm without transA / alpha / beta
    transposed: bool = False  # the weight is stored N x K (Gemm transB=1)
    source_name: Optional[str] = None  # the node's name in the file before folding (when folding renamed it)
    stored_bytes: Optional[int] = None  # quantized weight bytes as stored (set once quantized)
    group_size: Optional[int] = None  # group-wise INT4 (MatMulNBits): weights per scale along K

    def matrix(self, w: np.ndarray) -> np.ndarray:
        """The weight as the ``K x N`` matrix ``y = x @ W`` multiplies by."""
        return np.ascontiguousarray(w.T) if self.transposed else w

    @property
    def params(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class ActivationPlan:
    """How activations entering quantized layers are treated: ``none``, ``dynamic`` or ``static``."""

    mode: str
    ranges: dict = field(default_factory=dict)  # tensor name -> calibrate.ActivationRange (static)


def _node_name(node, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def find_layers(model, exclude: tuple = (), source_names: Optional[dict] = None) -> tuple:
    """Quantizable layers of ``model`` -> ``(layers, patterns of exclude that matched nothing)``.

    A layer is excluded when its node name, its weight's name, or the name of a node that read the same weight
    before folding (``source_names``: :func:`tvmedge.frontend.onnx.node_names`) matches a pattern (exact or glob).
    """
    from onnx import TensorProto

    inits = {init.name: init for init in model.graph.initializer}
    layers, used = [], set()
    for index, node in enumerate(model.graph.node):
        if node.op_type not in _QUANTIZABLE or len(node.input) < 2 or node.input[1] not in inits:
            continue
        init = inits[node.input[1]]
        shape = tuple(int(d) for d in init.dims)
        if init.data_type != TensorProto.FLOAT or len(shape) < 2 or (node.op_type != "Conv" and len(shape) != 2):
            continue
        axis, groupable, trans_b = 0, False, 0
        if node.op_type == "Gemm":
            attrs = {a.name: a for a in node.attribute}
            trans_b = attrs["transB"].i if "transB" in attrs else 0
            axis = 0 if trans_b else 1
            groupable = (not (attrs["transA"].i if "transA" in attrs else 0)
                         and (attrs["alpha"].f if "alpha" in attrs else 1.0) == 1.0
                         and (attrs["beta"].f if "beta" in attrs else 1.0) == 1.0)
        elif node.op_type == "MatMul":
            axis, groupable = 1, True
        name = _node_name(node, index)
        sources = _source_names(init, source_names)
        names = [name, init.name] + sources
        hits = {p for p in exclude if any(fnmatch.fnmatchcase(n, p) for n in names)}
        used |= hits
        layers.append(Layer(name, node.op_type, init.name, axis, shape, node.input[0], excluded=bool(hits),
                            groupable=groupable, transposed=bool(trans_b),
                            source_name=None if name in sources or not sources else sources[0]))
    return layers, [p for p in exclude if p not in used]


def _source_names(init, source_names: Optional[dict]) -> list:
    """Names of the nodes that read this weight before folding (by name, or by value: folding may rename and
    transpose it)."""
    from onnx import numpy_helper

    from ..frontend.onnx import weight_digest

    if not source_names:
        return []
    found = list((source_names.get("weights") or {}).get(init.name, []))
    digests = source_names.get("digests") or {}
    if digests:
        value = numpy_helper.to_array(init)
        for candidate in (value, value.T) if value.ndim == 2 else (value,):
            found += digests.get(weight_digest(candidate), [])
    return found


def weight_bytes_of(model, layers: list, quantized: dict) -> tuple:
    """``(float bytes, quantized bytes)`` of all initializers; ``quantized`` maps node -> QuantizedWeight."""
    from onnx import helper

    sizes = {}
    for init in model.graph.initializer:
        count = int(np.prod(init.dims)) if init.dims else 1
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 1
        sizes[init.name] = count * itemsize
    total = sum(sizes.values())
    after = dict(sizes)
    still_float = {layer.weight for layer in layers if layer.bits is None}
    versions = {}
    for layer in layers:
        if layer.bits is not None:
            versions[(layer.weight, layer.bits)] = quantized[layer.node].nbytes
            if layer.weight not in still_float:
                after[layer.weight] = 0
    return total, sum(after.values()) + sum(versions.values())


def build_qdq(model, layers: list, quantized: dict, plan: ActivationPlan, *, int4_storage: str = "int4"):
    """The QDQ model: ``quantized`` maps node name -> ``QuantizedWeight`` (or ``BlockQuantizedWeight``: a
    MatMulNBits node) for every layer with ``bits`` set.

    ``int4_storage``: ``int4`` (ONNX INT4 initializers, needs opset 21) or ``int8`` (same values, one per
    byte, for models that cannot move to opset 21; the compiled artifact packs them either way).
    """
    import onnx
    from onnx import helper, numpy_helper

    from ..frontend.int4 import int4_tensor
    from .blockwise import BlockQuantizedWeight

    chosen = {layer.node: layer for layer in layers if layer.bits is not None and not layer.excluded}
    graph = model.graph
    new_inits, nodes, weight_outputs, act_outputs = [], [], {}, {}
    for index, node in enumerate(graph.node):
        layer = chosen.get(_node_name(node, index))
        if layer is None:
            nodes.append(node)
            continue
        if isinstance(quantized[layer.node], BlockQuantizedWeight):
            _matmul_nbits(node, layer, quantized[layer.node], nodes, new_inits, weight_outputs)
            continue
        key = (layer.weight, layer.bits)
        base = f"{layer.weight}.int{layer.bits}"
        if key not in weight_outputs:
            qw = quantized[layer.node]
            values = (int4_tensor(qw.values, base) if layer.bits == 4 and int4_storage == "int4"
                      else numpy_helper.from_array(qw.values, base))
            new_inits += [values, numpy_helper.from_array(qw.scale, f"{base}.scale")]
            weight_outputs[key] = []
        # One DequantizeLinear per consumer (the integer initializer is shared): each layer then gets its own
        # dequantize to fuse with (a shared one could be fused into one consumer only).
        suffix = f".{layer.node}" if weight_outputs[key] else ""
        dequantized = f"{base}.dequantized{suffix}"
        weight_outputs[key].append(dequantized)
        nodes.append(helper.make_node("DequantizeLinear", [base, f"{base}.scale"], [dequantized],
                                      name=f"{base}.DequantizeLinear{suffix}", axis=layer.axis))
        source = layer.activation
        if plan.mode != "none" and source not in act_outputs:
            act_outputs[source] = _activation_qdq(source, plan, nodes, new_inits)
        new_node = onnx.NodeProto()
        new_node.CopyFrom(node)
        new_node.input[1] = dequantized
        if plan.mode != "none":
            new_node.input[0] = act_outputs[source]
        nodes.append(new_node)
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    result.graph.initializer.extend(new_inits)
    if any(node.domain == MS_DOMAIN for node in nodes) and not any(o.domain == MS_DOMAIN for o in result.opset_import):
        result.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _drop_unused_initializers(result)
    return result


def _matmul_nbits(node, layer, bq, nodes: list, inits: list, done: dict) -> None:
    """``node`` (MatMul, or Gemm [+ bias]) -> ``com.microsoft.MatMulNBits`` on the group-wise weight ``bq``."""
    from onnx import TensorProto, helper, numpy_helper

    base = f"{layer.weight}.int4g{bq.block_size}"
    inputs = [node.input[0], base, f"{base}.scales"]
    if bq.zero_points is not None:
        inputs.append(f"{base}.zero_points")
    if (layer.weight, "nbits") not in done:
        done[(layer.weight, "nbits")] = True
        inits.append(numpy_helper.from_array(bq.packed, base))
        if bq.scales.dtype == np.float32:
            inits.append(numpy_helper.from_array(bq.scales, f"{base}.scales"))
        else:  # MatMulNBits' scales have A's type: float16 storage, widened by ONNX Runtime at load time
            inits.append(numpy_helper.from_array(bq.scales, f"{base}.scales.f16"))
            nodes.append(helper.make_node("Cast", [f"{base}.scales.f16"], [f"{base}.scales"],
                                          name=f"{base}.scales.Cast", to=TensorProto.FLOAT))
        if bq.zero_points is not None:
            inits.append(numpy_helper.from_array(bq.zero_points, f"{base}.zero_points"))
    has_bias = node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]
    out = f"{node.output[0]}.matmul" if has_bias else node.output[0]
    nodes.append(helper.make_node("MatMulNBits", inputs, [out], name=layer.node, domain=MS_DOMAIN, K=bq.k, N=bq.n,
                                  bits=4, block_size=bq.block_size, accuracy_level=0))
    if has_bias:
        nodes.append(helper.make_node("Add", [out, node.input[2]], [node.output[0]], name=f"{layer.node}.bias"))


def _activation_qdq(source: str, plan: ActivationPlan, nodes: list, inits: list) -> str:
    from onnx import helper, numpy_helper

    out = f"{source}.qdq"
    if plan.mode == "dynamic":
        nodes.append(helper.make_node("DynamicQuantizeLinear", [source], [f"{source}.q", f"{source}.scale",
                                                                          f"{source}.zero_point"],
                                      name=f"{source}.DynamicQuantizeLinear"))
    elif plan.mode == "static":
        scale, zero = plan.ranges[source].params
        inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{source}.scale"),
                  numpy_helper.from_array(np.array(zero, np.uint8), f"{source}.zero_point")]
        nodes.append(helper.make_node("QuantizeLinear", [source, f"{source}.scale", f"{source}.zero_point"],
                                      [f"{source}.q"], name=f"{source}.QuantizeLinear"))
    else:
        raise ValueError(f"unknown activation mode {plan.mode!r}")
    nodes.append(helper.make_node("DequantizeLinear", [f"{source}.q", f"{source}.scale", f"{source}.zero_point"],
                                  [out], name=f"{source}.DequantizeLinear"))
    return out


def _drop_unused_initializers(model) -> None:
    used = {name for node in model.graph.node for name in node.input}
    used |= {out.name for out in model.graph.output}
    keep = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
