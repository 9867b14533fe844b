"""Which ONNX tensor each Relax binding computes, and a debug model with every intermediate tensor exposed.

TVM's ONNX importer keeps no link from a Relax binding back to the ONNX node that produced it. It does keep one
while it runs: ``ONNXGraphImporter._nodes`` maps every ONNX tensor name to the Relax expression the importer
made for it. :func:`capture_tensor_exprs` wraps the importer's ``_construct_nodes`` for the duration of one
import and keeps that map; :func:`layer_of_bindings` then names, for every binding of ``main``, the ONNX tensor
it belongs to. The importer emits a node's bindings in order (a Conv with a bias is conv2d, reshape, add), so a
binding that computes no ONNX tensor itself belongs to the next binding that does. This is the map the profile
groups kernels by (:mod:`tvmedge.compiler.layers`).

:func:`expose_layers` is what per-layer accuracy comparison runs: the same graph with every floating-point
intermediate tensor also a graph output (ONNX Runtime and tvmedge then both return them by name).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import onnx

__all__ = ["capture_tensor_exprs", "layer_of_bindings", "expose_layers", "FLOAT_TYPES"]

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


@contextlib.contextmanager
def capture_tensor_exprs() -> Iterator[dict]:
    """While active, the ONNX importer's ``tensor name -> Relax expression`` map of the top-level graph is copied
    into the yielded dict (empty when the installed TVM's importer has no ``_construct_nodes``: the map is then
    simply unknown, nothing fails)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    importer = getattr(onnx_frontend, "ONNXGraphImporter", None)
    original = getattr(importer, "_construct_nodes", None)
    captured: dict = {}
    if original is None:
        yield captured
        return

    def construct_nodes(self, graph):
        original(self, graph)
        # subgraphs (If branches) are built by other importer instances first; the top-level graph finishes last
        captured.clear()
        captured.update(self._nodes)

    importer._construct_nodes = construct_nodes
    try:
        yield captured
    finally:
        importer._construct_nodes = original


def binding_signature(binding) -> str:
    """What a binding computes, enough to tell whether a later pass replaced it under the same name (TVM's passes
    name the bindings they create ``lv``, ``lv1``, ... like the importer does)."""
    value = binding.value
    op = getattr(value, "op", None)
    what = getattr(op, "name", None) or getattr(op, "name_hint", None) or type(value).__name__
    return f"{what}:{binding.var.ty}"


def layer_of_bindings(mod, exprs: dict) -> tuple:
    """``({Relax variable name of a binding of main: ONNX tensor name}, {name: binding_signature})`` from a
    :func:`capture_tensor_exprs` map; the second dict is in binding order.

    A binding is an ONNX tensor's when its value (or its variable) is the expression the importer recorded for
    that tensor. The helper bindings a node's conversion made (Conv: conv2d and the bias reshape before the add
    that is the tensor) are given the tensor of the binding that reads them, through other helpers: the importer
    emits an argument when it is first used, so helpers of two nodes can interleave and only the dataflow says
    whose they are. Bindings no tensor reads are left out. Names are the importer's own (a module renamed here
    would give its kernels other block names than the tuning records measured on the importer's names).
    """
    from tvm import relax

    by_expr: dict = {}
    for name, expr in exprs.items():
        by_expr.setdefault(expr, name)
    records, signatures = [], {}
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            name = str(binding.var.name)
            signatures[name] = binding_signature(binding)
            records.append((name, [str(v.name) for v in relax.analysis.free_vars(binding.value)],
                            by_expr.get(binding.value) or by_expr.get(binding.var)))
    result = {name: tensor for name, _, tensor in records if tensor is not None}
    reads = {name: args for name, args, _ in records}
    for name, _, tensor in reversed(records):  # a tensor's helpers: what it reads that is no tensor itself
        if tensor is None:
            continue
        stack = list(reads[name])
        while stack:
            arg = stack.pop()
            if arg in reads and arg not in result:
                result[arg] = tensor
                stack.extend(reads[arg])
    return result, signatures


def expose_layers(model: onnx.ModelProto, *, static_only: bool = True) -> onnx.ModelProto:
    """A copy of ``model`` whose graph also outputs every floating-point intermediate tensor (in node order),
    after its own outputs. Types come from ONNX shape inference; a tensor whose type it cannot infer is left
    out, and with ``static_only`` (what a tvmedge build needs) so is one whose shape is not fully known."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(exposed)
    except Exception:  # noqa: BLE001 (an op shape inference does not know): fall back to declared types
        inferred = exposed
    types = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    graph = exposed.graph
    present = {o.name for o in graph.output} | {i.name for i in graph.input} | {t.name for t in graph.initializer}
    constant = {t.name for t in graph.initializer} | {""}
    for node in graph.node:
        if all(name in constant for name in node.input):  # a weight's dequantize, a folded shape: no layer
            constant.update(node.output)
            continue
        for name in node.output:
            info = types.get(name)
            if not name or name in present or info is None:
                continue
            tensor = info.type.tensor_type
            if not info.type.HasField("tensor_type") or tensor.elem_type not in FLOAT_TYPES:
                continue
            if static_only and (not tensor.HasField("shape")
                                or any(not d.HasField("dim_value") for d in tensor.shape.dim)):
                continue
            graph.output.append(info)
            present.add(name)
    return exposed
