"""Small ops TVM's importer lacks or gets wrong: BitCast, Celu, Swish, SwiGLU, LpNormalization,
RMSNormalization (TVM's fails to build for axis 0), Pow with mixed or integer types, ReverseSequence and
CenterCropPad."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te, tirx
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter, get_constant

__all__ = ["CONVERTERS"]


def _dtype(expr) -> str:
    return str(expr.ty.dtype)


def _shape(expr) -> list:
    return [int(v) for v in expr.ty.shape.values]


def _const(value, dtype):
    return relax.const(np.asarray(value, dtype=dtype), dtype)


class BitCast(OnnxOpConverter):
    """ONNX ``BitCast`` (opset 26) between types of the same width: the bits reinterpreted."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        from onnx import helper

        x = inputs[0]
        to = str(helper.tensor_dtype_to_np_dtype(int(attr["to"])))
        src = _dtype(x)
        width = lambda t: 8 if t == "bool" else tvm.runtime.DataType(t).bits  # noqa: E731
        if width(src) != width(to):
            raise ValueError(f"BitCast from {src} to {to} changes the element width; only same-width casts are supported")
        if src == "bool" or to == "bool":  # bool is a byte: the same as a uint8 cast
            return relax.op.astype(x, to)
        return bb.emit_te(lambda t: te.compute(t.shape, lambda *i: tirx.reinterpret(to, t(*i)), name="bitcast"), x,
                          primfunc_name_hint="bitcast")


class Celu(OnnxOpConverter):
    """ONNX ``Celu``: ``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        x = inputs[0]
        dtype = _dtype(x)
        alpha = _const(float(attr.get("alpha", 1.0)), dtype)
        neg = relax.op.multiply(alpha, relax.op.subtract(relax.op.exp(relax.op.divide(x, alpha)), _const(1, dtype)))
        return relax.op.add(relax.op.maximum(x, _const(0, dtype)), relax.op.minimum(neg, _const(0, dtype)))


def _swish(x, alpha):
    dtype = _dtype(x)
    return relax.op.multiply(x, relax.op.sigmoid(relax.op.multiply(x, _const(alpha, dtype))))


class Swish(OnnxOpConverter):
    """ONNX ``Swish``: ``x * sigmoid(alpha * x)``."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return _swish(inputs[0], float(attr.get("alpha", 1.0)))


class SwiGLU(OnnxOpConverter):
    """ONNX ``SwiGLU``: ``Swish_alpha(A) * B``."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return relax.op.multiply(bb.normalize(_swish(inputs[0], float(attr.get("alpha", 1.0)))), inputs[1])


class LpNormalization(OnnxOpConverter):
    """ONNX ``LpNormalization``: ``x / ||x||_p`` along ``axis`` (p 1 or 2)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        axis, p = int(attr.get("axis", -1)), int(attr.get("p", 2))
        if p == 1:
            norm = relax.op.sum(relax.op.abs(x), axis=[axis], keepdims=True)
        elif p == 2:
            norm = relax.op.sqrt(relax.op.sum(relax.op.multiply(x, x), axis=[axis], keepdims=True))
        else:
            raise ValueError(f"LpNormalization p={p}: the spec allows 1 or 2")
        return relax.op.divide(x, norm)


class RMSNormalization(OnnxOpConverter):
    """ONNX ``RMSNormalization`` (opset 23): ``x / sqrt(mean(x², axes from axis) + eps) * scale``, statistics in
    ``stash_type``."""

    @classmethod
    def _impl_v23(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        rank = len(_shape(x))
        axes = list(range(int(attr.get("axis", -1)) % rank, rank))
        dtype = _dtype(x)
        stash = "float32" if int(attr.get("stash_type", 1)) == 1 else dtype
        xs = bb.normalize(relax.op.astype(x, stash)) if stash != dtype else x
        mean_sq = relax.op.mean(relax.op.multiply(xs, xs), axis=axes, keepdims=True)
        y = relax.op.multiply(xs, relax.op.rsqrt(relax.op.add(mean_sq, _const(float(attr.get("epsilon", 1e-5)), stash))))
        if stash != dtype:
            y = relax.op.astype(y, dtype)
        return relax.op.multiply(y, scale)


class Pow(OnnxOpConverter):
    """ONNX ``Pow`` with a base and exponent of different types (the result has the base's type) or integer
    types (TVM's power is float-only: computed in float64, rounded back)."""

    @classmethod
    def _impl_v7(cls, bb, inputs, attr, params):
        base, exponent = inputs[0], inputs[1]
        dtype = _dtype(base)
        if "float" in dtype:
            if _dtype(exponent) != dtype:
                exponent = relax.op.astype(exponent, dtype)
            return relax.op.power(base, exponent)
        wide = relax.op.power(relax.op.astype(base, "float64"), relax.op.astype(exponent, "float64"))
        return relax.op.astype(relax.op.round(wide), dtype)


class ReverseSequence(OnnxOpConverter):
    """ONNX ``ReverseSequence``: per batch row, its first ``sequence_lens[b]`` steps reversed, the rest kept."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, lens = inputs[0], inputs[1]
        time_axis, batch_axis = int(attr.get("time_axis", 0)), int(attr.get("batch_axis", 1))
        shape = _shape(x)
        steps, batch = shape[time_axis], shape[batch_axis]
        t_shape = [1] * len(shape)
        t_shape[time_axis] = steps
        b_shape = [1] * len(shape)
        b_shape[batch_axis] = batch
        t = _const(np.arange(steps).reshape(t_shape), "int64")
        n = bb.normalize(relax.op.reshape(bb.normalize(relax.op.astype(lens, "int64")), b_shape))
        index = relax.op.where(relax.op.less(t, n), relax.op.subtract(relax.op.subtract(n, _const(1, "int64")), t), t)
        index = bb.normalize(relax.op.broadcast_to(index, shape))
        return relax.op.gather_elements(x, index, axis=time_axis)


class CenterCropPad(OnnxOpConverter):
    """ONNX ``CenterCropPad`` (opset 18): each listed axis center-cropped or zero-padded to the given size (a
    constant: freeze it when the model takes it as an input)."""

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        x, target = inputs[0], get_constant(inputs[1], params)
        if not isinstance(target, tvm.ir.GenericConst):
            raise ValueError("CenterCropPad needs a constant shape")
        sizes = [int(v) for v in target.value.numpy().reshape(-1)]
        shape = _shape(x)
        rank = len(shape)
        axes = [a % rank for a in attr.get("axes", range(rank))]
        pads = [0] * (2 * rank)
        for axis, size in zip(axes, sizes):
            dim = shape[axis]
            if size < dim:  # crop: the extra element of an odd difference comes off the end
                start = (dim - size) // 2
                x = relax.op.strided_slice(x, axes=[axis], begin=[start], end=[start + size])
            elif size > dim:  # relax pads take (before, after) per axis, interleaved
                pads[2 * axis] = (size - dim) // 2
                pads[2 * axis + 1] = size - dim - pads[2 * axis]
        x = bb.normalize(x)
        if any(pads):
            x = relax.op.nn.pad(x, pads)
        return x


CONVERTERS = {"BitCast": BitCast, "Celu": Celu, "Swish": Swish, "SwiGLU": SwiGLU, "LpNormalization": LpNormalization,
              "RMSNormalization": RMSNormalization, "Pow": Pow, "ReverseSequence": ReverseSequence,
              "CenterCropPad": CenterCropPad}
