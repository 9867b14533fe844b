"""Integer converters for ONNX's quantized operators (QOperator form), which TVM 0.27's importer lacks.

``QLinearConv``, ``ConvInteger``, ``QLinearMatMul``, ``MatMulInteger`` and, from ``com.microsoft`` (where ONNX
Runtime's quantizer writes them), ``QGemm``, ``QLinearAdd``, ``QLinearGlobalAveragePool``, ``QLinearConcat``.
QDQ models reach these too: :mod:`tvmedge.frontend.qoperator` rewrites ``DequantizeLinear -> Conv ->
QuantizeLinear`` and friends into them before import.

Every layer computes as the integer kernels of ONNX Runtime do:

- the reduction is ``int8 x int8`` (or ``uint8 x int8``) accumulated in ``int32`` (Relax ``conv2d`` / ``matmul``
  with ``out_dtype="int32"``); the activation's zero point is not subtracted from the data (that would widen
  it) but folded into the int32 bias as ``-zx * sum(w)`` per output channel; where the convolution pads, it
  pads with ``zx`` itself (the quantized zero), so the correction stays exact at the borders;
- requantize: ``clamp(nearbyint(float32(acc + bias) * (sx * sw[c] / sy)) + zy)`` with per-channel weight scales,
  float32 multiplier and round-half-to-even as ONNX Runtime's MLAS requantization does; a following
  ``Max`` / ``Clip`` on the quantized value (ReLU folded by :mod:`~tvmedge.frontend.qoperator`) fuses into the
  same kernel.

Constant scales and zero points are required (ONNX Runtime's quantizer writes them as initializers); a weight
zero point must be 0 per channel, or a scalar that shifts the weights into int8 exactly.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te, tirx
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter

__all__ = ["CONVERTERS", "weight_as_int8"]

_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}


# --- helpers ----------------------------------------------------------------------------------------

def _value(expr, what: str, op: str) -> np.ndarray:
    """The numpy value of a constant input; ValueError naming it otherwise."""
    if isinstance(expr, tvm.ir.Constant) and hasattr(expr.value, "numpy"):
        return expr.value.numpy()
    raise ValueError(f"{op}: {what} must be a constant (an initializer) for the integer path")


def _scalar(expr, what: str, op: str, default=0):
    if expr is None:
        return default
    value = _value(expr, what, op)
    if value.size != 1:
        raise ValueError(f"{op}: {what} must be a scalar, got shape {value.shape}")
    return value.reshape(()).item()


def _dtype(expr) -> str:
    return str(expr.ty.dtype)


def _shape(expr) -> list:
    return [int(d) for d in expr.ty.shape.values]


def weight_as_int8(w: np.ndarray, zero, op: str) -> np.ndarray:
    """``w - zero`` as int8: zero 0 per channel, or a scalar that keeps every value in int8 (uint8 weights
    with zero point 128 become int8 weights, exactly)."""
    zero = np.asarray(zero if zero is not None else 0)
    if zero.size > 1 and np.any(zero != zero.reshape(-1)[0]):
        raise ValueError(f"{op}: per-channel weight zero points must be 0, got {np.unique(zero)[:4].tolist()}")
    shifted = w.astype(np.int32) - int(zero.reshape(-1)[0] if zero.size else 0)
    if shifted.min(initial=0) < -128 or shifted.max(initial=0) > 127:
        raise ValueError(f"{op}: weights minus their zero point {int(zero.reshape(-1)[0])} do not fit int8")
    return shifted.astype(np.int8)


# Round-to-nearest-even float -> int32 without a conversion instruction: adding 1.5 * 2**23 to |v| <= 2**22
# leaves an integer in [2**23, 2**24], where a float's ulp is 1, so the add itself rounds (half to even, the
# default mode) and the integer is the low bits of the sum. Written out because LLVM's float -> int conversions
# on RISC-V vectors (``vfcvt.rtz``, ``vfncvt.rtz``, and ``frflags`` around ``nearbyint``) switch the rounding
# mode inside one instruction, which aborts qemu 7.2 (the emulated riscv64 boards: ``decode_save_opc``
# assertion); an add, a bit cast and an integer subtract are the same on every ISA and exact in this range.
_ROUNDING_BIAS = 12582912.0          # 1.5 * 2**23
_ROUNDING_BITS = 0x4B400000          # the bits of _ROUNDING_BIAS
_ROUNDABLE = 4194304.0               # 2**22


def _round_to_int32(value):
    """float32 -> int32, rounded half to even; values beyond +-2**22 saturate there (callers clamp further)."""
    bounded = tirx.max(tirx.min(value, _ROUNDABLE), -_ROUNDABLE)
    biased = bounded + tirx.const(_ROUNDING_BIAS, "float32")
    return tirx.reinterpret("int32", biased) - tirx.const(_ROUNDING_BITS, "int32")


def _quantize(bb, value, zero: int, dtype: str):
    """float32 -> ``clamp(rint(value) + zero)`` in ``dtype`` (round half to even, as ONNX does)."""
    low, high = _RANGES[dtype]

    def compute(x):
        def element(*index):
            shifted = _round_to_int32(x(*index)) + tirx.const(zero, "int32")
            return tirx.max(tirx.min(shifted, high), low).astype(dtype)

        return te.compute(x.shape, element, name="requantize")

    return bb.emit_te(compute, value, primfunc_name_hint="tvmedge_requantize")


def _per_channel(values, rank: int, axis: int, dtype: str):
    """A constant broadcasting along ``axis`` of a rank-``rank`` tensor (scalar stays a 0-d constant)."""
    values = np.asarray(values, dtype)
    if values.size == 1:
        return relax.const(values.reshape(()), dtype)
    shape = [1] * rank
    shape[axis] = values.size
    return relax.const(values.reshape(shape), dtype)


def _requantize(bb, acc, bias, multiplier, zero: int, dtype: str, axis: int):
    """int32 ``acc`` (+ int32 ``bias`` per channel along ``axis``) -> quantized ``dtype``."""
    rank = len(_shape(acc))
    if bias is not None and np.any(bias):
        acc = relax.op.add(acc, _per_channel(bias, rank, axis, "int32"))
    scaled = relax.op.multiply(relax.op.astype(acc, "float32"), _per_channel(multiplier, rank, axis, "float32"))
    return _quantize(bb, bb.normalize(scaled), zero, dtype)


def _dequantize_output(acc, bias, multiplier, axis: int):
    """int32 ``acc`` (+ bias) -> float32 ``(acc + bias) * multiplier`` (a float output at the graph's boundary)."""
    rank = len(_shape(acc))
    if bias is not None and np.any(bias):
        acc = relax.op.add(acc, _per_channel(bias, rank, axis, "int32"))
    return relax.op.multiply(relax.op.astype(acc, "float32"), _per_channel(multiplier, rank, axis, "float32"))


def _scales(sx, sw, sy=1.0) -> np.ndarray:
    """ONNX Runtime's multiplier ``sx * sw / sy``, evaluated in float32 in the same order."""
    return (np.float32(sx) * np.asarray(sw, np.float32).reshape(-1)) / np.float32(sy)


# --- convolution ------------------------------------------------------------------------------------

def _conv_pads(attr, in_shape, kernel, strides, dilations):
    rank = len(kernel)
    auto_pad = attr.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads_begin, pads_end = [], []
        for i in range(rank):
            out = -(-in_shape[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_shape[i])
            small, large = total // 2, total - total // 2
            pads_begin.append(small if auto_pad == "SAME_UPPER" else large)
            pads_end.append(large if auto_pad == "SAME_UPPER" else small)
        return pads_begin, pads_end
    if auto_pad == "VALID":
        return [0] * rank, [0] * rank
    pads = list(attr.get("pads", [0] * (2 * rank)))
    return pads[:rank], pads[rank:]


def _integer_conv(bb, x, zx: int, w: np.ndarray, attr, op: str):
    """``conv(x - zx, w)`` as ``(int32 conv(x_padded_with_zx, w), int32 correction per output channel)``."""
    rank = w.ndim - 2
    if rank not in (1, 2):
        raise ValueError(f"{op}: only 1-D and 2-D convolutions have an integer path, got {rank}-D")
    if _dtype(x) not in _RANGES:
        raise ValueError(f"{op}: input must be uint8 or int8, got {_dtype(x)}")
    kernel = list(w.shape[2:])
    strides = list(attr.get("strides", [1] * rank))
    dilations = list(attr.get("dilations", [1] * rank))
    groups = int(attr.get("group", 1))
    begin, end = _conv_pads(attr, _shape(x)[2:], kernel, strides, dilations)
    if zx != 0 and any(begin + end):
        # The float model pads with 0.0, whose quantized value is zx: pad explicitly so that the zero-point
        # correction below (which assumes every tap reads x - zx) holds at the borders too.
        width = [0, 0, 0, 0] + [p for pair in zip(begin, end) for p in pair]
        x = bb.normalize(relax.op.nn.pad(x, width, pad_value=float(zx)))
        begin, end = [0] * rank, [0] * rank
    weight = relax.const(w, "int8")
    if rank == 2:
        acc = relax.op.nn.conv2d(x, weight, strides, begin + end, dilations, groups, out_dtype="int32")
    else:
        acc = relax.op.nn.conv1d(x, weight, strides, begin + end, dilations, groups, out_dtype="int32")
    correction = -int(zx) * w.astype(np.int64).reshape(w.shape[0], -1).sum(axis=1)
    return bb.normalize(acc), correction.astype(np.int64)


def _bias(expr, channels: int, op: str) -> np.ndarray:
    if expr is None:
        return np.zeros(channels, np.int64)
    return _value(expr, "bias", op).astype(np.int64).reshape(-1)


def _to_int32(values: np.ndarray, op: str) -> np.ndarray:
    if values.min(initial=0) < -2**31 or values.max(initial=0) >= 2**31:
        raise ValueError(f"{op}: the int32 bias overflows after folding the zero point in")
    return values.astype(np.int32)


class QLinearConv(OnnxOpConverter):
    """ONNX ``QLinearConv`` (opset 10): integer convolution, requantized per output channel."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        op = "QLinearConv"
        x = inputs[0]
        sx, zx = _scalar(inputs[1], "x_scale", op), _scalar(inputs[2], "x_zero_point", op)
        w = weight_as_int8(_value(inputs[3], "weight", op), _value(inputs[5], "w_zero_point", op)
                           if inputs[5] is not None else 0, op)
        sw = _value(inputs[4], "w_scale", op)
        sy, zy = _scalar(inputs[6], "y_scale", op), _scalar(inputs[7], "y_zero_point", op)
        out_dtype = _dtype(inputs[7]) if inputs[7] is not None else "uint8"
        acc, correction = _integer_conv(bb, x, zx, w, attr, op)
        bias = _to_int32(_bias(inputs[8] if len(inputs) > 8 else None, w.shape[0], op) + correction, op)
        return _requantize(bb, acc, bias, _scales(sx, sw, sy), int(zy), out_dtype, axis=1)


class ConvInteger(OnnxOpConverter):
    """ONNX ``ConvInteger`` (opset 10): ``conv(x - x_zero_point, w - w_zero_point)`` in int32."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        op = "ConvInteger"
        x = inputs[0]
        zx = _scalar(inputs[2] if len(inputs) > 2 else None, "x_zero_point", op)
        zw = _value(inputs[3], "w_zero_point", op) if len(inputs) > 3 and inputs[3] is not None else 0
        w = weight_as_int8(_value(inputs[1], "weight", op), zw, op)
        acc, correction = _integer_conv(bb, x, zx, w, attr, op)
        if not np.any(correction):
            return acc
        return relax.op.add(acc, _per_channel(_to_int32(correction, op), len(_shape(acc)), 1, "int32"))


# --- matrix products --------------------------------------------------------------------------------

def _integer_matmul(bb, a, za: int, b: np.ndarray, op: str):
    """``(a - za) @ b`` as ``(int32 a @ b, int32 correction per output column)``."""
    if _dtype(a) not in _RANGES:
        raise ValueError(f"{op}: input A must be uint8 or int8, got {_dtype(a)}")
    if b.ndim != 2:
        raise ValueError(f"{op}: only a 2-D constant B has an integer path, got shape {b.shape}")
    acc = bb.normalize(relax.op.matmul(a, relax.const(b, "int8"), out_dtype="int32"))
    return acc, -int(za) * b.astype(np.int64).sum(axis=0)


class QLinearMatMul(OnnxOpConverter):
    """ONNX ``QLinearMatMul`` (opset 10) with a constant B: int8 product, requantized per column."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        op = "QLinearMatMul"
        a = inputs[0]
        sa, za = _scalar(inputs[1], "a_scale", op), _scalar(inputs[2], "a_zero_point", op)
        b = weight_as_int8(_value(inputs[3], "B", op), _value(inputs[5], "b_zero_point", op), op)
        sb = _value(inputs[4], "b_scale", op)
        sy, zy = _scalar(inputs[6], "y_scale", op), _scalar(inputs[7], "y_zero_point", op)
        acc, correction = _integer_matmul(bb, a, za, b, op)
        rank = len(_shape(acc))
        return _requantize(bb, acc, _to_int32(correction, op), _scales(sa, sb, sy), int(zy), _dtype(inputs[7]),
                           axis=rank - 1)


class MatMulInteger(OnnxOpConverter):
    """ONNX ``MatMulInteger`` (opset 10): with a constant 2-D B and scalar zero points the product runs on the
    int8 values (zero points folded into a per-column correction); otherwise TVM's own converter (int32)."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        from tvm.relax.frontend.onnx.onnx_frontend import MatMulInteger as _TvmMatMulInteger

        op = "MatMulInteger"
        a_zero = inputs[2] if len(inputs) > 2 else None
        b_zero = inputs[3] if len(inputs) > 3 else None
        try:
            za = _scalar(a_zero, "a_zero_point", op)
            b = weight_as_int8(_value(inputs[1], "B", op), _value(b_zero, "b_zero_point", op)
                               if b_zero is not None else 0, op)
            acc, correction = _integer_matmul(bb, inputs[0], za, b, op)
        except ValueError:
            return _TvmMatMulInteger._impl_v10(bb, inputs, attr, params)
        if not np.any(correction):
            return acc
        return relax.op.add(acc, _per_channel(_to_int32(correction, op), len(_shape(acc)), len(_shape(acc)) - 1,
                                              "int32"))


class QGemm(OnnxOpConverter):
    """``com.microsoft.QGemm``: ``alpha * (A - za) @ (B - zb) + C`` (int32 C at scale ``sa * sb``), quantized
    with ``y_scale`` / ``y_zero_point`` or, without them, a float32 output."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        op = "QGemm"
        a = inputs[0]
        if int(attr.get("transA", 0)):
            a = bb.normalize(relax.op.permute_dims(a))
        sa, za = _scalar(inputs[1], "a_scale", op), _scalar(inputs[2], "a_zero_point", op)
        b = _value(inputs[3], "B", op)
        if int(attr.get("transB", 0)):
            b = np.ascontiguousarray(b.T)
        b = weight_as_int8(b, _value(inputs[5], "b_zero_point", op), op)
        sb = _value(inputs[4], "b_scale", op)
        alpha = float(attr.get("alpha", 1.0))
        acc, correction = _integer_matmul(bb, a, za, b, op)
        bias = _bias(inputs[6] if len(inputs) > 6 else None, b.shape[1], op) + correction
        bias = _to_int32(np.broadcast_to(bias, (b.shape[1],)).copy(), op)
        y_scale = inputs[7] if len(inputs) > 7 else None
        if y_scale is None:
            return _dequantize_output(acc, bias, np.float32(alpha) * _scales(sa, sb), axis=1)
        sy, zy = _scalar(y_scale, "y_scale", op), _scalar(inputs[8] if len(inputs) > 8 else None, "y_zero_point", op)
        out_dtype = _dtype(inputs[8]) if len(inputs) > 8 and inputs[8] is not None else "uint8"
        return _requantize(bb, acc, bias, np.float32(alpha) * _scales(sa, sb, sy), int(zy), out_dtype, axis=1)


# --- elementwise, pooling, concatenation in the quantized domain ------------------------------------

def _dequantized(x, scale: float, zero: int):
    """float32 ``scale * (x - zero)`` (an input of a quantized elementwise op; fused into its kernel)."""
    shifted = relax.op.astype(x, "float32")
    if zero:
        shifted = relax.op.subtract(shifted, relax.const(np.float32(zero)))
    return relax.op.multiply(shifted, relax.const(np.float32(scale)))


class QLinearAdd(OnnxOpConverter):
    """``com.microsoft.QLinearAdd``: ``C = quantize(sa (A - za) + sb (B - zb), sc, zc)`` in one kernel."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        op = "QLinearAdd"
        sa, za = _scalar(inputs[1], "A_scale", op), _scalar(inputs[2], "A_zero_point", op)
        sb, zb = _scalar(inputs[4], "B_scale", op), _scalar(inputs[5], "B_zero_point", op)
        sc, zc = _scalar(inputs[6], "C_scale", op), _scalar(inputs[7] if len(inputs) > 7 else None, "C_zero_point", op)
        total = relax.op.add(_dequantized(inputs[0], np.float32(sa) / np.float32(sc), za),
                             _dequantized(inputs[3], np.float32(sb) / np.float32(sc), zb))
        return _quantize(bb, bb.normalize(total), int(zc), _dtype(inputs[0]))


class QLinearGlobalAveragePool(OnnxOpConverter):
    """``com.microsoft.QLinearGlobalAveragePool``: int32 sums over the spatial axes, one requantize."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        op = "QLinearGlobalAveragePool"
        x = inputs[0]
        sx, zx = _scalar(inputs[1], "x_scale", op), _scalar(inputs[2], "x_zero_point", op)
        sy, zy = _scalar(inputs[3], "y_scale", op), _scalar(inputs[4], "y_zero_point", op)
        shape = _shape(x)
        axes = list(range(1, len(shape) - 1)) if int(attr.get("channels_last", 0)) else list(range(2, len(shape)))
        count = int(np.prod([shape[i] for i in axes]))
        total = relax.op.sum(relax.op.astype(x, "int32"), axes, keepdims=True)
        if zx:
            total = relax.op.subtract(total, relax.const(np.int32(zx * count)))
        scaled = relax.op.multiply(relax.op.astype(total, "float32"),
                                   relax.const(np.float32(sx) / np.float32(sy) / np.float32(count)))
        return _quantize(bb, bb.normalize(scaled), int(zy), _dtype(x))


class QLinearConcat(OnnxOpConverter):
    """``com.microsoft.QLinearConcat``: inputs already at the output's scale and zero point are concatenated as
    they are; the others are requantized to it first."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        op = "QLinearConcat"
        sy, zy = _scalar(inputs[0], "Y_scale", op), _scalar(inputs[1], "Y_zero_point", op)
        dtype = _dtype(inputs[1])
        parts = []
        for i in range(2, len(inputs), 3):
            x, sx, zx = inputs[i], _scalar(inputs[i + 1], "x_scale", op), _scalar(inputs[i + 2], "x_zero_point", op)
            if np.float32(sx) == np.float32(sy) and zx == zy and _dtype(x) == dtype:
                parts.append(x)
                continue
            moved = _dequantized(x, np.float32(sx) / np.float32(sy), zx)
            parts.append(_quantize(bb, bb.normalize(moved), int(zy), dtype))
        return relax.op.concat(parts, axis=int(attr["axis"]))


from tvm.relax.frontend.onnx.onnx_frontend import QuantizeLinear as _TvmQuantizeLinear  # noqa: E402


def _per_tensor_quantize(impl):
    """Wrap one of TVM's ``QuantizeLinear`` implementations: a per-tensor float32 -> 8-bit quantize with constant
    parameters gets :func:`_quantize` (rounding without a conversion instruction, see there); anything else
    TVM's own lowering."""

    def convert(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        zero = inputs[2] if len(inputs) > 2 else None
        try:
            s = _scalar(scale, "scale", "QuantizeLinear")
            z = _scalar(zero, "zero_point", "QuantizeLinear")
        except ValueError:
            return impl.__func__(cls, bb, inputs, attr, params)
        dtype = _dtype(zero) if zero is not None else "uint8"
        if dtype not in _RANGES or _dtype(x) != "float32" or attr.get("block_size", 0):
            return impl.__func__(cls, bb, inputs, attr, params)
        divided = bb.normalize(relax.op.divide(x, relax.const(np.float32(s))))
        return _quantize(bb, divided, int(z), dtype)

    return classmethod(convert)


class QuantizeLinear(_TvmQuantizeLinear):
    """ONNX ``QuantizeLinear``: per-tensor 8-bit with constant parameters rounds as :func:`_round_to_int32` does
    (identical results to TVM's lowering, whose ``nearbyint`` the emulated RISC-V board cannot run); the rest is
    TVM's."""

    _impl_v10 = _per_tensor_quantize(_TvmQuantizeLinear._impl_v10)
    _impl_v13 = _per_tensor_quantize(_TvmQuantizeLinear._impl_v13)
    _impl_v19 = _per_tensor_quantize(_TvmQuantizeLinear._impl_v19)
    _impl_v21 = _per_tensor_quantize(_TvmQuantizeLinear._impl_v21)


CONVERTERS = {
    "QuantizeLinear": QuantizeLinear,
    "QLinearConv": QLinearConv,
    "ConvInteger": ConvInteger,
    "QLinearMatMul": QLinearMatMul,
    "MatMulInteger": MatMulInteger,
    "com.microsoft.QGemm": QGemm,
    "com.microsoft.QLinearAdd": QLinearAdd,
    "com.microsoft.QLinearGlobalAveragePool": QLinearGlobalAveragePool,
    "com.microsoft.QLinearConcat": QLinearConcat,
}
