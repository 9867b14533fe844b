"""Converters where TVM's importer lacks an op (CumProd) or drops part of one (LayerNormalization's
``Mean`` / ``InvStdDev`` outputs, which it returned as 0-d placeholders)."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, topi
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter, get_constant

__all__ = ["CONVERTERS"]


class CumProd(OnnxOpConverter):
    """ONNX ``CumProd`` (opset 26): ``exclusive`` and ``reverse`` as CumSum; the axis must be a constant
    (freeze it when the model takes it as an input)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        data, axis = inputs[0], get_constant(inputs[1], params)
        if not isinstance(axis, tvm.ir.GenericConst):
            raise ValueError("CumProd needs a constant axis")
        axis = int(axis.value.numpy().reshape(-1)[0])
        reverse = bool(attr.get("reverse", 0))
        if reverse:
            data = bb.emit_te(topi.flip, data, axis=axis)
        data = bb.normalize(relax.op.cumprod(data, axis, exclusive=bool(attr.get("exclusive", 0))))
        return bb.emit_te(topi.flip, data, axis=axis) if reverse else data


class LayerNormalization(OnnxOpConverter):
    """ONNX ``LayerNormalization`` (opset 17) with all three outputs: ``Y``, ``Mean`` and ``InvStdDev``
    (shape ``X.shape[:axis] + [1] * (rank - axis)``), statistics in ``stash_type`` (float32 by default)."""

    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        rank = len(x.ty.shape.values)
        axis = int(attr.get("axis", -1)) % rank
        axes = list(range(axis, rank))
        eps = float(attr.get("epsilon", 1e-5))
        dtype = str(x.ty.dtype)
        stash = "float32" if int(attr.get("stash_type", 1)) == 1 else dtype
        xs = bb.normalize(relax.op.astype(x, stash)) if stash != dtype else x
        mean = bb.normalize(relax.op.mean(xs, axis=axes, keepdims=True))
        centered = bb.normalize(relax.op.subtract(xs, mean))
        var = relax.op.mean(relax.op.multiply(centered, centered), axis=axes, keepdims=True)
        inv_std = bb.normalize(relax.op.divide(relax.const(np.array(1, stash), stash),
                                               relax.op.sqrt(relax.op.add(var, relax.const(np.array(eps, stash), stash)))))
        y = relax.op.multiply(centered, inv_std)
        if stash != dtype:
            y = relax.op.astype(y, dtype)
        y = relax.op.multiply(y, scale)
        if bias is not None:
            y = relax.op.add(y, bias)
        return relax.Tuple([bb.normalize(y), mean, inv_std])


CONVERTERS = {"CumProd": CumProd, "LayerNormalization": LayerNormalization}
