"""The activation sign each CPU's int8 dot-product instruction wants, set per target before scheduling.

The integer layers (:mod:`tvmedge.frontend.converters.quantized`) reduce ``activation x int8 weight -> int32``
with the activation in whatever type the model quantized it to. The instructions that make int8 fast are
sign-specific: x86's VNNI ``vpdpbusd`` multiplies **u8 x s8**, ARM's ``sdot`` **s8 x s8** (``usdot`` needs
``+i8mm``, which Cortex-A76 lacks). LLVM emits them from the lowered reduction loops by itself (checked in the
built objects: ``vpdpbusd`` on x86, ``sdot`` on rk3588) — but only when the types match. So here, per target,
an activation of the other sign is moved by 128:

    conv(x, w) = conv(x - 128, w) + 128 * sum(w)        (u8 -> s8, ARM)
    conv(x, w) = conv(x + 128, w) - 128 * sum(w)        (s8 -> u8, x86)

per output channel (``sum`` over the weight's reduction axes; the same with column sums for matmul). The shift
is an elementwise op that fuses into the producing requantize kernel, and the convolution's zero padding becomes
an explicit pad with the shifted zero, so the result is bit-identical to the unshifted one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["preferred_activation", "match_dot_product_sign", "pad_for_dot_product", "arrange_for_dot_product"]


def preferred_activation(target) -> str | None:
    """``uint8`` (x86: VNNI), ``int8`` (aarch64: SDOT) or None (no preference: RISC-V widens either sign)."""
    triple = str(target.attrs.get("mtriple", "")) if hasattr(target, "attrs") else ""
    if str(target.kind.name) != "llvm":
        return None
    if triple.startswith("aarch64") or triple.startswith("arm64"):
        return "int8"
    if triple == "" or triple.startswith("x86_64") or triple.startswith("i686"):
        return "uint8"
    return None


def match_dot_product_sign(mod, target):
    """``mod`` with every int8-weight ``conv1d`` / ``conv2d`` / ``matmul`` reading activations of the sign
    ``target``'s dot-product instruction wants (:func:`preferred_activation`); unchanged when it has none."""
    from tvm import relax

    want = preferred_activation(target)
    if want is None or not _has_other_sign(mod, want):
        return mod

    def rewriter(call, data, weight_const):
        weight = weight_const.value.numpy()
        if weight.dtype != np.int8 or str(call.ty.dtype) != "int32" or str(data.ty.dtype) not in ("uint8", "int8") \
                or str(data.ty.dtype) == want:
            return call
        shift = -128 if want == "int8" else 128  # x' = x + shift
        name = call.op.name
        if name == "relax.matmul":
            if weight.ndim != 2:
                return call
            sums, axis = weight.astype(np.int64).sum(axis=0), len(call.ty.shape.values) - 1
            moved = _shifted(data, shift, want)
            core = relax.Call(call.op, [moved, weight_const], call.attrs)
        else:
            layout = (str(call.attrs.data_layout), str(call.attrs.kernel_layout))
            if layout not in (("NCHW", "OIHW"), ("NCW", "OIW")):
                return call
            sums, axis = weight.astype(np.int64).reshape(weight.shape[0], -1).sum(axis=1), 1
            padding = [int(p) for p in call.attrs.padding]
            if any(padding):
                rank = weight.ndim - 2
                begin, end = padding[:rank], padding[rank:]
                width = [0, 0, 0, 0] + [p for pair in zip(begin, end) for p in pair]
                data = relax.op.nn.pad(data, width, pad_value=0.0)
            moved = _shifted(data, shift, want)
            attrs = dict(strides=[int(s) for s in call.attrs.strides], padding=[0] * len(padding),
                         dilation=[int(d) for d in call.attrs.dilation], groups=int(call.attrs.groups),
                         out_dtype="int32")
            op = relax.op.nn.conv2d if name == "relax.nn.conv2d" else relax.op.nn.conv1d
            core = op(moved, weight_const, **attrs)
        correction = -shift * sums
        if correction.min() < -2**31 or correction.max() >= 2**31:
            return call
        shape = [1] * len(call.ty.shape.values)
        shape[axis] = correction.size
        return relax.op.add(core, relax.const(correction.astype(np.int32).reshape(shape), "int32"))

    return _rewrite_constant_weight_calls(mod, _OPS, rewriter)


def arrange_for_dot_product(mod, target):
    """The arrangements the integer layers need on ``target``: :func:`match_dot_product_sign`, then
    :func:`pad_for_dot_product`, then channels-last layout between them
    (:func:`tvmedge.compiler.channels_last.integer_layers_channels_last`)."""
    from .channels_last import integer_layers_channels_last

    return integer_layers_channels_last(pad_for_dot_product(match_dot_product_sign(mod, target), target), target)


def pad_for_dot_product(mod, target):
    """``mod`` with the int8-weight ``conv2d`` / ``matmul`` layers padded to the shape of ``target``'s dot-product
    instruction or vector (:func:`tvmedge.tune.int8.integer_unit`), so its schedule takes them too:

    - a reduction (input channels, K) that is not a multiple of 4: zero weights and zero inputs added
      (a 3-channel image becomes 4 channels; the products of the added channel are 0, so the sums are unchanged);
    - output channels (N) that are not a multiple of the instruction's lanes: zero weight rows added and the
      result sliced back (squeezenet's 1000 classes are computed as 1008).

    Unchanged for a target without a vector unit. Exact: only zeros are added.
    """
    from tvm import relax

    from ..tune.int8 import GROUP, integer_unit

    unit = integer_unit(target)
    if unit is None:
        return mod
    lanes = unit[1]

    def rewriter(call, data, weight_const):
        weight = weight_const.value.numpy()
        if weight.dtype != np.int8 or str(call.ty.dtype) != "int32" or str(data.ty.dtype) not in ("uint8", "int8"):
            return call
        if call.op.name == "relax.matmul":
            if weight.ndim != 2:
                return call
            reduction_axis, out_axis, data_axis = 0, 1, len(data.ty.shape.values) - 1
        else:
            if (str(call.attrs.data_layout), str(call.attrs.kernel_layout)) != ("NCHW", "OIHW") \
                    or int(call.attrs.groups) != 1:
                return call
            reduction_axis, out_axis, data_axis = 1, 0, 1
        depth, width = weight.shape[reduction_axis], weight.shape[out_axis]
        more_depth, more_width = -depth % GROUP, -width % lanes
        if not (more_depth or more_width):
            return call
        widths = [(0, 0)] * weight.ndim
        widths[reduction_axis], widths[out_axis] = (0, more_depth), (0, more_width)
        padded = relax.const(np.pad(weight, widths), "int8")
        if more_depth:
            rank = len(data.ty.shape.values)
            pad_width = [0] * (2 * rank)
            pad_width[2 * data_axis + 1] = more_depth
            data = relax.op.nn.pad(data, pad_width, pad_value=0.0)
        core = relax.Call(call.op, [data, padded], call.attrs)
        if not more_width:
            return core
        axis = len(call.ty.shape.values) - 1 if call.op.name == "relax.matmul" else 1
        return relax.op.strided_slice(core, axes=[axis], begin=[0], end=[width])

    return _rewrite_constant_weight_calls(mod, ("relax.nn.conv2d", "relax.matmul"), rewriter)


def _rewrite_constant_weight_calls(mod, ops, rewriter):
    """A copy of ``mod`` with every call ``op(data, constant weight)`` of ``ops`` in its Relax functions replaced by
    ``rewriter(call, data, weight constant)`` (which returns the call itself to leave it)."""
    from tvm import relax
    from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

    mod = mod.clone()
    x, w = wildcard(), is_const()
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            for op in ops:
                func = rewrite_call(is_op(op)(x, w), lambda call, found: rewriter(call, found[x], found[w]), func)
            mod[gv] = func
    return mod


def _has_other_sign(mod, want: str) -> bool:
    """True when some int32 conv / matmul of ``mod`` reads 8-bit activations of the other sign than ``want``."""
    import tvm
    from tvm import relax

    found = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name in _OPS \
                and str(expr.ty.dtype) == "int32" and str(expr.args[0].ty.dtype) in ("uint8", "int8") \
                and str(expr.args[0].ty.dtype) != want:
            found.append(expr)

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return bool(found)


_OPS = ("relax.nn.conv2d", "relax.nn.conv1d", "relax.matmul")


def _shifted(data, shift: int, dtype: str):
    """``data + shift`` in ``dtype`` (exact: the values move from one 8-bit range to the other)."""
    from tvm import relax

    wide = relax.op.add(relax.op.astype(data, "int16"), relax.const(np.int16(shift)))
    return relax.op.astype(wide, dtype)
