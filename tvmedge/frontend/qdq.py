"""Importing a quantized (QDQ) ONNX model so that its weights stay quantized through TVM's build.

The models come from :mod:`tvmedge.quant` (``tvmedge quantize``, ``compile --quant``) or from any other QDQ
exporter; :func:`tvmedge.frontend.onnx.import_model` applies this to every model holding quantized weights.

TVM's ONNX importer turns ``DequantizeLinear(int8 weight)`` into ``R.dequantize(const, scale, zp)``, and the
build's ``FoldConstant`` then evaluates that call on the constants: the artifact would hold float weights
again. :func:`keep_weights_quantized` prevents it, in four steps on the imported module:

1. Scales out of the reduction: ``conv(x, dequantize(q, s))`` -> ``conv(x, astype(q, float32)) * s`` (per output
   channel, symmetric: exact up to float rounding; a ``Gemm`` weight is transposed once, here). The layer
   kernel is then left with a plain int8 -> float cast per weight, which schedules inline into the weight
   loads: the kernel reads 1 byte per weight instead of 4 (this is what makes INT8 faster, not slower).
2. INT4: TVM's importer cannot read ONNX ``INT4`` tensors, so :func:`lower_int4_initializers` widens them to
   INT8 (same values) before import; here every int8 weight constant whose values fit in [-8, 7] is re-packed
   two per byte (``uint8``, ONNX's nibble order) behind a small TIR unpack kernel. Lossless by construction,
   so it is decided by the values, not by bookkeeping.
3. Every consumer gets its own copy of the constant-derived bindings it reads (identical weights and bias
   reshapes are merged by onnxslim and by the pattern rewriter; the constants stay shared).
4. Each weight cast (or an unfactored dequantize) is fused with its layer — conv1d / conv2d / matmul, the
   scale, bias add and ReLU — into one primitive function (``FuseOpsByPattern``, constants left as
   arguments). The call takes the activation, so ``FoldConstant`` cannot evaluate it: int8 / packed int4
   constants reach the executable's constant pool as they are.

This serves the layers that stay float: weight-only and dynamic quantization, INT4 weights, and any QDQ
pattern :mod:`.qoperator` does not turn into an integer layer (those compute float32 on int8 / int4 weight
storage). Layers with 8-bit activations and weights compute on integers: :mod:`.qoperator` rewrites them before
import, so they never reach this module.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keep_weights_quantized", "lower_int4_initializers", "has_quantized_weights", "UNPACK_NAME"]

UNPACK_NAME = "tvmedge_unpack_int4"
_CONSUMERS = ("relax.nn.conv2d", "relax.nn.conv1d", "relax.matmul")


def has_quantized_weights(model) -> bool:
    """True when an ONNX model dequantizes integer initializers (a QDQ or weight-quantized model)."""
    from onnx import TensorProto

    ints = {init.name for init in model.graph.initializer
            if init.data_type in (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT4, TensorProto.UINT4)}
    return any(node.op_type == "DequantizeLinear" and node.input and node.input[0] in ints
               for node in model.graph.node)


def lower_int4_initializers(model):
    """A copy of ``model`` whose INT4 initializers are INT8 with the same values (TVM cannot import INT4)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    from .int4 import unpack_int4

    if not any(init.data_type == TensorProto.INT4 for init in model.graph.initializer):
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for init in model.graph.initializer:
        if init.data_type == TensorProto.INT4:
            if not init.raw_data:  # int32_data form: one value per entry
                values = np.asarray(init.int32_data, np.int64)
                values = np.where(values > 7, values - 16, values).astype(np.int8).reshape(tuple(init.dims))
            else:
                values = unpack_int4(np.frombuffer(init.raw_data, np.uint8), tuple(init.dims))
            init.CopyFrom(numpy_helper.from_array(values, init.name))
    return model


def keep_weights_quantized(mod):
    """Factor scales out, pack INT4-range weights, fuse weight casts into their consumers -> ``(mod, stats)``.

    ``stats``: ``fused`` (quantized weights now inside a layer kernel), ``int4_packed``, ``int8_kept``,
    ``unfused`` (weight dequantizes left in ``main``: the build will fold those back to float).
    """
    from tvm import relax

    factored = _factor_scales(mod)
    packed, stats = _pack_int4(factored)
    unshared = relax.transform.DeadCodeElimination()(_one_weight_per_use(packed))
    fused = relax.transform.FuseOpsByPattern(_patterns(), bind_constants=False, annotate_codegen=False)(unshared)
    stats["fused"] = sum(1 for gv, func in fused.functions.items()
                         if isinstance(func, relax.Function) and func.attrs is not None
                         and "Composite" in func.attrs and str(func.attrs["Composite"]).startswith("tvmedge."))
    stats["unfused"] = _count_weight_dequantize(fused["main"])
    return fused, stats


# --- scales out of the reduction -----------------------------------------------------------------

def _factor_scales(mod):
    """``op(x, dequantize(q, s))`` -> ``op(x, astype(q, float32)) * s`` for per-output-channel symmetric weights.

    Exact up to float rounding (the scale is constant along the reduction), and it leaves the kernel a
    plain int8 -> float32 cast of each weight instead of a dequantize (plus, for ``Gemm``, a transpose:
    the constant is transposed here, once, instead of at every run).
    """
    from tvm import relax
    from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

    x, q, scale, zero = wildcard(), is_const(), is_const(), is_const()
    weight = is_op("relax.dequantize")(q, scale, zero)
    transposed = is_op("relax.permute_dims")(weight)
    patterns = [is_op("relax.matmul")(x, transposed), is_op("relax.matmul")(x, weight)]
    patterns += [is_op(op)(x, weight) for op in ("relax.nn.conv2d", "relax.nn.conv1d")]

    def rewriter(call, found):
        values = found[q].value.numpy()
        scales = found[scale].value.numpy()
        zeros = found[zero].value.numpy()
        dequant = found[weight]
        axis = int(dequant.attrs.axis) % values.ndim
        if values.dtype != np.int8 or zeros.any() or scales.dtype != np.float32 or scales.ndim != 1 \
                or scales.size != values.shape[axis]:
            return call
        name = call.op.name
        if name == "relax.matmul":
            if values.ndim != 2:
                return call
            if transposed in found:  # Gemm transB=1: weight (N, K) used as (K, N)
                if [int(a) for a in found[transposed].attrs.axes] != [1, 0] or axis != 0:
                    return call
                values = np.ascontiguousarray(values.T)
            elif axis != 1:
                return call
            shape = (scales.size,)
        else:
            layout = (str(call.attrs.data_layout), str(call.attrs.kernel_layout), str(call.attrs.out_layout))
            if axis != 0 or layout not in (("NCHW", "OIHW", "NCHW"), ("NCW", "OIW", "NCW")):
                return call
            shape = (1, scales.size) + (1,) * (values.ndim - 2)
        cast = relax.op.astype(relax.const(values, "int8"), "float32")
        core = relax.Call(call.op, [found[x], cast], call.attrs)
        return relax.op.multiply(core, relax.const(scales.reshape(shape), "float32"))

    # Bias reshapes of constants become constants: inside a fused kernel they would be a second producer
    # of its epilogue, which MetaSchedule's tiling rules cannot place (FoldConstant does this elsewhere).
    bias, shape = is_const(), wildcard()
    reshape = is_op("relax.reshape")(bias, shape)

    def fold_reshape(call, found):
        target = [int(d) for d in call.ty.shape.values]
        return relax.const(found[bias].value.numpy().reshape(target))

    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            for pattern in patterns:
                func = rewrite_call(pattern, rewriter, func)
            mod[gv] = rewrite_call(reshape, fold_reshape, func)
    return mod


# --- INT4 packing ---------------------------------------------------------------------------------

def _pack_int4(mod):
    """Constant int8 weights (cast or dequantized) whose values fit 4 bits -> packed bytes + unpack kernel."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    from .int4 import fits_int4, pack_int4

    stats = {"int4_packed": 0, "int8_kept": 0}
    dequantize, astype = tvm.ir.Op.get("relax.dequantize"), tvm.ir.Op.get("relax.astype")

    @mutator
    class _Packer(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not (call.op.same_as(dequantize) or call.op.same_as(astype)) or not _is_tensor_const(call.args[0]):
                return call
            values = call.args[0].value.numpy()
            if values.dtype != np.int8 or (call.op.same_as(dequantize) and not _zero_point_fits(call.args[2])):
                return call
            if not fits_int4(values):
                stats["int8_kept"] += 1
                return call
            stats["int4_packed"] += 1
            source = relax.const(pack_int4(values), "uint8")
            unpacked = self.builder_.call_te(_unpack_te, source, values.shape, primfunc_name_hint=UNPACK_NAME)
            return relax.Call(call.op, [unpacked] + list(call.args[1:]), call.attrs, call.ty_args)

    packer = _Packer(mod)
    for gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            packer.builder_.update_func(gv, packer.visit_expr(func))
    return packer.builder_.get(), stats


def _is_tensor_const(expr) -> bool:
    import tvm

    return isinstance(expr, tvm.ir.Constant) and hasattr(expr.value, "numpy")


def _zero_point_fits(zp) -> bool:
    if not _is_tensor_const(zp):
        return False
    values = zp.value.numpy()
    return values.size == 0 or (values.min() >= -8 and values.max() <= 7)


def _unpack_te(packed, shape):
    """TE: uint8 nibbles (low first) -> int8 tensor of ``shape`` (sign-extended from 4 bits)."""
    from tvm import te, tirx

    strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]

    def value(*index):
        flat = sum(i * s for i, s in zip(index, strides))
        byte = packed[flat // 2].astype("int32")
        nibble = tirx.bitwise_and(tirx.shift_right(byte, (flat % 2) * 4), 15)
        return tirx.Select(nibble > 7, nibble - 16, nibble).astype("int8")

    return te.compute(tuple(int(d) for d in shape), value, name="unpack_int4")


# --- one weight expression per consumer ----------------------------------------------------------

def _one_weight_per_use(mod):
    """Give every consumer its own copy of the constant-derived bindings it reads (weight casts, bias reshapes).

    The pattern rewriter merges identical expressions, and onnxslim merges identical initializers, so a
    weight cast or a bias reshape can feed two layers; fused into one layer's kernel, it would leave the other
    reading a variable that no longer exists. The constants themselves stay shared (stored once).
    """
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    call_tir = tvm.ir.Op.get("relax.call_tir")

    @mutator
    class _Copier(PyExprMutator):
        def is_leaf(self, expr) -> bool:
            return _is_tensor_const(expr) or isinstance(expr, relax.ShapeExpr) \
                or (isinstance(expr, relax.Tuple) and all(self.is_leaf(f) or self.derived(f) is not None for f in expr.fields))

        def derived(self, expr):
            """The call bound to ``expr`` if ``expr`` is a variable computed from constants only, else None."""
            if not isinstance(expr, relax.Var):
                return None
            value = self.lookup_binding(expr)
            if not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.Op):
                return None
            args = value.args[1:] if value.op.same_as(call_tir) else value.args
            if value.op.same_as(call_tir) and not value.args[0].name_hint.startswith(UNPACK_NAME):
                return None
            return value if all(self.is_leaf(a) or self.derived(a) is not None for a in args) else None

        def copy(self, expr):
            if isinstance(expr, relax.Tuple):
                return relax.Tuple([self.copy(f) for f in expr.fields])
            value = self.derived(expr)
            if value is None:
                return expr
            return self.builder_.emit(relax.Call(value.op, [self.copy(a) for a in value.args], value.attrs,
                                                 value.ty_args))

        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not isinstance(call.op, tvm.ir.Op) or call.op.same_as(call_tir) \
                    or all(self.derived(a) is None for a in call.args):
                return call
            if all(self.is_leaf(a) or self.derived(a) is not None for a in call.args):
                return call  # itself constant-derived: copied where it is used
            return relax.Call(call.op, [self.copy(a) for a in call.args], call.attrs, call.ty_args)

    copier = _Copier(mod)
    for gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            copier.builder_.update_func(gv, copier.visit_expr(func))
    return copier.builder_.get()


# --- fusion patterns ------------------------------------------------------------------------------

def _patterns():
    """Longest first: consumer(x, cast weight) * scale [+ bias [+ ReLU]]; then the unfactored dequantize forms."""
    from tvm.relax.dpl import is_call_tir, is_const, is_op, wildcard

    source = is_const() | is_call_tir(UNPACK_NAME, [is_const()])
    cast = is_op("relax.astype")(source)
    dequantized = is_op("relax.dequantize")(source, is_const(), is_const())
    dequantized = is_op("relax.permute_dims")(dequantized) | dequantized
    patterns = []
    for consumer in _CONSUMERS:
        short = consumer.rsplit(".", 1)[-1]
        for kind, core in (("", is_op("relax.multiply")(is_op(consumer)(wildcard(), cast), is_const())),
                           ("_dq", is_op(consumer)(wildcard(), dequantized))):
            bias = is_op("relax.add")(core, is_const())
            patterns += [
                (f"tvmedge.q{short}{kind}_bias_relu", is_op("relax.nn.relu")(bias)),
                (f"tvmedge.q{short}{kind}_bias", bias),
                (f"tvmedge.q{short}{kind}", core),
            ]
    return patterns


def _count_weight_dequantize(func) -> int:
    """Weight dequantizes / casts left in ``func`` (FoldConstant would re-expand them to float)."""
    from tvm import relax

    bound = {binding.var: binding.value for block in func.body.blocks for binding in block.bindings
             if isinstance(binding, relax.VarBinding)}

    def is_weight(arg) -> bool:
        arg = bound.get(arg, arg)
        if _is_tensor_const(arg):
            return arg.value.numpy().dtype == np.int8
        return (isinstance(arg, relax.Call) and len(arg.args) > 0 and isinstance(arg.args[0], relax.GlobalVar)
                and arg.args[0].name_hint.startswith(UNPACK_NAME))

    count = 0
    for value in list(bound.values()):
        if isinstance(value, relax.Call) and getattr(value.op, "name", "") in ("relax.dequantize", "relax.astype") \
                and is_weight(value.args[0]):
            count += 1
    return count
