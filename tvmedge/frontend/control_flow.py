"""ONNX control flow with a static schedule, unrolled before import: ``Loop`` with a constant trip count and
``Scan`` over inputs of static length.

``If`` needs nothing here: onnxslim (``fold_onnx``) keeps the branch of an ``If`` whose condition folds to a
constant (a frozen mode input, a shape-derived test), and TVM's importer turns an ``If`` on a run-time
condition into a Relax ``If``. TVM's importer has no ``Loop`` or ``Scan``; a loop whose trip count or
continue condition is known only at run time is refused with the node named (freeze the input it depends
on, or fix the input shapes, to unroll it).

Unrolling copies the body once per iteration with every body-local name made unique, binds the body's
inputs to the iteration's values (the iteration number as a constant) and stacks the scan outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError

__all__ = ["MAX_UNROLL", "unroll_control_flow"]

# A loop longer than this is refused rather than unrolled (the graph would grow by body x iterations).
MAX_UNROLL = 4096


def unroll_control_flow(model: onnx.ModelProto, path) -> bool:
    """Unroll every top-level ``Loop``/``Scan`` of ``model`` in place; True if the graph changed.

    ModelError naming the node for one whose iteration count is not known at compile time.
    """
    graph = model.graph
    if not any(n.op_type in ("Loop", "Scan") for n in graph.node):
        return False
    constants = _constants(graph)
    shapes = _static_shapes(model)
    nodes, counter = [], [0]
    for node in graph.node:
        if node.op_type == "Loop" and node.domain in ("", "ai.onnx"):
            nodes += _unroll_loop(node, constants, counter, path)
        elif node.op_type == "Scan" and node.domain in ("", "ai.onnx"):
            nodes += _unroll_scan(node, shapes, constants, counter, path, _opset(model))
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return True


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _constants(graph) -> dict:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _static_shapes(model) -> dict:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _name(node) -> str:
    return node.name or node.output[0]


def _const_node(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def _copy_body(body, bindings: dict, prefix: str) -> tuple:
    """The body's nodes with its inputs replaced by ``bindings`` (body input name -> outer name) and every
    value it defines renamed with ``prefix``; returns ``(nodes, renamed outputs in body-output order)``."""
    renamed = dict(bindings)
    nodes = []
    for init in body.initializer:
        new = prefix + init.name
        array = numpy_helper.to_array(init)
        nodes.append(_const_node(new, array))
        renamed[init.name] = new
    for node in body.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ModelError(f"control flow nested inside a loop body (node '{_name(node)}') is not unrolled")
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + node.name if node.name else ""
        del copy.input[:]
        copy.input.extend(renamed.get(i, i) if i else "" for i in node.input)
        outs = []
        for o in node.output:
            if o:
                renamed[o] = prefix + o
            outs.append(renamed.get(o, "") if o else "")
        del copy.output[:]
        copy.output.extend(outs)
        nodes.append(copy)
    return nodes, [renamed.get(o.name, o.name) for o in body.output]


def _unroll_loop(node, constants, counter, path) -> list:
    body = next(a.g for a in node.attribute if a.name == "body")
    trip, cond = (node.input[0] if len(node.input) > 0 else ""), (node.input[1] if len(node.input) > 1 else "")
    if not trip or trip not in constants:
        source = f"'{trip}'" if trip else "none (loops until its condition)"
        raise ModelError(f"Loop node '{_name(node)}': trip count {source} is not known at compile time; freeze the "
                         "input it comes from (--freeze-input NAME=VALUE) so it can be unrolled")
    count = int(np.asarray(constants[trip]).reshape(-1)[0])
    if cond and not (cond in constants and bool(np.asarray(constants[cond]).reshape(-1)[0])):
        raise ModelError(f"Loop node '{_name(node)}': its start condition '{cond}' is not a constant true")
    body_cond_in, body_cond_out = body.input[1].name, body.output[0].name
    if not _passes_through(body, body_cond_in, body_cond_out):
        raise ModelError(f"Loop node '{_name(node)}': its body computes the continue condition, so the number of "
                         "iterations is known only at run time; such loops are not unrolled")
    if count > MAX_UNROLL:
        raise ModelError(f"Loop node '{_name(node)}': {count} iterations exceed the unroll limit {MAX_UNROLL}")
    carried = list(node.input[2:])
    n_carried = len(carried)
    state = carried
    scans = [[] for _ in range(len(body.output) - 1 - n_carried)]
    nodes = []
    counter[0] += 1
    true_name = f"__loop{counter[0]}_true"
    nodes.append(_const_node(true_name, np.array(True)))
    for i in range(count):
        prefix = f"__loop{counter[0]}_it{i}_"
        iter_name = prefix + "iter"
        nodes.append(_const_node(iter_name, np.array(i, dtype=np.int64)))
        bindings = {body.input[0].name: iter_name, body_cond_in: true_name}
        bindings.update({b.name: s for b, s in zip(body.input[2:], state)})
        copied, outs = _copy_body(body, bindings, prefix)
        nodes += copied
        state = outs[1:1 + n_carried]
        for k, name in enumerate(outs[1 + n_carried:]):
            scans[k].append(name)
    for final, out in zip(state, node.output[:n_carried]):
        if out:
            nodes.append(helper.make_node("Identity", [final], [out]))
    for k, out in enumerate(node.output[n_carried:]):
        if out:
            nodes += _stack(scans[k], out, 0, f"__loop{counter[0]}_scan{k}_", reverse=False)
    return nodes


def _passes_through(body, cond_in, cond_out) -> bool:
    """True when the body's continue condition is its input condition unchanged (or a constant true)."""
    if cond_out == cond_in:
        return True
    for node in body.node:
        if cond_out in node.output:
            if node.op_type == "Identity" and node.input[0] == cond_in:
                return True
            if node.op_type == "Constant":
                return bool(numpy_helper.to_array(node.attribute[0].t).reshape(-1)[0])
            return False
    return any(init.name == cond_out and bool(numpy_helper.to_array(init).reshape(-1)[0]) for init in body.initializer)


def _stack(names, out, axis, prefix, reverse) -> list:
    """Unsqueeze each per-iteration value at ``axis`` and concatenate them into ``out``."""
    nodes, parts = [], []
    axes_name = prefix + "axes"
    nodes.append(_const_node(axes_name, np.array([axis], dtype=np.int64)))
    for i, name in enumerate(reversed(names) if reverse else names):
        part = f"{prefix}{i}"
        nodes.append(helper.make_node("Unsqueeze", [name, axes_name], [part]))
        parts.append(part)
    if not parts:
        raise ModelError(f"a loop with zero iterations cannot produce the scan output '{out}'")
    nodes.append(helper.make_node("Concat", parts, [out], axis=axis))
    return nodes


def _unroll_scan(node, shapes, constants, counter, path, opset) -> list:
    if opset < 9:
        raise ModelError(f"Scan node '{_name(node)}': opset-8 Scan (batched, with sequence_lens) is not unrolled")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    body = attrs["body"]
    n_scan = int(attrs["num_scan_inputs"])
    n_state = len(node.input) - n_scan
    scan_in = list(node.input[n_state:])
    in_axes = list(attrs.get("scan_input_axes", [0] * n_scan))
    in_dirs = list(attrs.get("scan_input_directions", [0] * n_scan))
    n_scan_out = len(body.output) - n_state
    out_axes = list(attrs.get("scan_output_axes", [0] * n_scan_out))
    out_dirs = list(attrs.get("scan_output_directions", [0] * n_scan_out))
    lengths = set()
    for name, axis in zip(scan_in, in_axes):
        if name not in shapes:
            raise ModelError(f"Scan node '{_name(node)}': the length of scan input '{name}' is not known at compile "
                             "time; fix the input shapes (--input-shape) so it can be unrolled")
        shape = shapes[name]
        lengths.add(shape[axis % len(shape)])
    if len(lengths) != 1:
        raise ModelError(f"Scan node '{_name(node)}': scan inputs of different lengths {sorted(lengths)}")
    count = lengths.pop()
    if count > MAX_UNROLL:
        raise ModelError(f"Scan node '{_name(node)}': {count} iterations exceed the unroll limit {MAX_UNROLL}")
    counter[0] += 1
    base = f"__scan{counter[0]}_"
    nodes, state = [], list(node.input[:n_state])
    scans = [[] for _ in range(n_scan_out)]
    for t in range(count):
        prefix = f"{base}it{t}_"
        bindings = {b.name: s for b, s in zip(body.input[:n_state], state)}
        for k, (name, axis, direction) in enumerate(zip(scan_in, in_axes, in_dirs)):
            index = prefix + f"idx{k}"
            nodes.append(_const_node(index, np.array(count - 1 - t if direction else t, dtype=np.int64)))
            sliced = prefix + f"in{k}"
            nodes.append(helper.make_node("Gather", [name, index], [sliced], axis=axis))
            bindings[body.input[n_state + k].name] = sliced
        copied, outs = _copy_body(body, bindings, prefix)
        nodes += copied
        state = outs[:n_state]
        for k, name in enumerate(outs[n_state:]):
            scans[k].append(name)
    for final, out in zip(state, node.output[:n_state]):
        if out:
            nodes.append(helper.make_node("Identity", [final], [out]))
    for k, out in enumerate(node.output[n_state:]):
        if out:
            nodes += _stack(scans[k], out, out_axes[k], f"{base}out{k}_", reverse=bool(out_dirs[k]))
    return nodes
