"""Quantization parameters no integer kernel can honour, refused before import with one line each.

Checked on the ONNX graph of every quantized model (QDQ or quantized operators) by
:func:`tvmedge.frontend.onnx.import_model`, before :mod:`.qoperator` rewrites it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .qoperator import _INT4_RANGE, _QDQ, _Graph, _op, _params

__all__ = ["check_quantized"]


def check_quantized(model, path="model") -> None:
    """Refuse quantization parameters no integer kernel can honour, one line each (ModelError).

    Non-positive or non-finite scales; a zero point whose shape differs from its scale's; per-axis scales
    whose count differs from the axis length; INT4 zero points outside the 4-bit range; a QuantizeLinear
    feeding a DequantizeLinear with another scale or zero point (inconsistent pair); quantized operators
    whose weight zero point is per-channel and not zero.
    """
    graph = _Graph(model)
    for node in model.graph.node:
        where = f"{path}: {node.op_type} '{node.name or node.output[0]}'"
        if node.op_type in _QDQ:
            _check_qdq(graph, node, where)
        elif _op(node) in ("QLinearConv", "QLinearMatMul", "com.microsoft.QGemm"):
            zero_index = {"QLinearConv": 5, "QLinearMatMul": 5, "com.microsoft.QGemm": 5}[_op(node)]
            zero = graph.const(node.input[zero_index]) if len(node.input) > zero_index else None
            if zero is not None and zero.size > 1 and np.any(zero != 0):
                raise ModelError(f"{where}: per-channel weight zero points must be 0 (symmetric weights), got "
                                 f"{sorted(set(zero.reshape(-1).tolist()))[:4]}")
            for index in (1, 4) + ((6,) if _op(node) != "com.microsoft.QGemm" else (7,)):
                scale = graph.const(node.input[index]) if len(node.input) > index and node.input[index] else None
                if scale is not None and (not np.all(np.isfinite(scale)) or np.any(scale <= 0)):
                    raise ModelError(f"{where}: scale '{node.input[index]}' must be positive and finite, got "
                                     f"{scale.reshape(-1)[:4].tolist()}")


def _check_qdq(graph: _Graph, node, where: str) -> None:
    scale = graph.const(node.input[1])
    if scale is None:
        return
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelError(f"{where}: scale must be positive and finite, got {scale.reshape(-1)[:4].tolist()}")
    if len(node.input) > 2 and node.input[2] in graph.inits:
        init = graph.inits[node.input[2]]
        zero = graph.numpy(node.input[2]) if init.data_type not in _INT4_RANGE else None
        if init.data_type in _INT4_RANGE:
            low, high = _INT4_RANGE[init.data_type]
            raw = list(init.int32_data)
            if raw and (min(raw) < low or max(raw) > high):
                bad = next(v for v in raw if v < low or v > high)
                kind = "INT4" if init.data_type == 22 else "UINT4"
                raise ModelError(f"{where}: {kind} zero point {bad} is outside {low}..{high}")
            shape = tuple(init.dims)
        else:
            shape = zero.shape
        if int(np.prod(shape)) != scale.size:
            raise ModelError(f"{where}: zero point '{node.input[2]}' has {int(np.prod(shape))} values but the scale "
                             f"has {scale.size}")
    data = graph.inits.get(node.input[0])
    if data is not None and scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        dims = list(data.dims)
        if not dims or dims[axis % len(dims)] != scale.size and not any(a.name == "block_size" for a in node.attribute):
            raise ModelError(f"{where}: {scale.size} per-axis scales for axis {axis} of a {tuple(dims)} tensor")
    if node.op_type == "DequantizeLinear":
        source = graph.producer.get(node.input[0])
        if source is not None and source.op_type == "QuantizeLinear":
            q, dq = _params(graph, source), _params(graph, node)
            if q is not None and dq is not None and q.scalar and dq.scalar and not q.same(dq):
                raise ModelError(
                    f"{where}: inconsistent with QuantizeLinear '{source.name or source.output[0]}' that feeds it: "
                    f"scale {float(dq.scale.reshape(-1)[0]):g} / zero point {int(dq.zero.reshape(-1)[0])} vs "
                    f"{float(q.scale.reshape(-1)[0]):g} / {int(q.zero.reshape(-1)[0])}")
