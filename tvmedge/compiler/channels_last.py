"""Integer layers in channels-last layout (NHWC): the layout the dot-product schedule reads and writes directly.

ONNX models are NCHW. An integer convolution on a dot-product instruction wants 4 consecutive input channels of a
pixel in one 32-bit word, and it produces one vector of output channels per pixel. In NCHW every convolution
first repacks its input (4 channel planes interleaved) and writes its output back one channel plane per lane
(a scatter of bytes), and a residual add reads its other input the same way: on resnet50's 1x1 convolutions that
write-back took 2/3 of the time. In NHWC both are contiguous, and the layout is kept from one integer layer to
the next, as ONNX Runtime and oneDNN do.

TVM's ``relax.transform.ConvertLayout`` cannot do this here: it does not look into ``call_tir`` (the requantize
kernels of :mod:`tvmedge.frontend.converters.quantized` are TE functions), so it would put a transpose back to
NCHW around every one of them (and it fails on some of the models' other ops). This pass is a forward walk over
the bindings instead:

- an ungrouped integer ``conv2d`` (8-bit data, int8 constant weight, int32 result) runs as NHWC (weights stay
  OIHW: the schedule repacks them at compile time anyway);
- an elementwise op (Relax arithmetic, casts, ``clip``; an elementwise ``call_tir`` such as the requantize) whose
  4-D tensor inputs are available in NHWC runs in NHWC: 4-D constants (per-channel scales, biases) are
  transposed, a ``call_tir``'s PrimFunc gets its buffers and iteration transposed
  (``transform_layout`` / ``transform_block_layout``);
- pooling and ``concat`` follow their input;
- anything else reads NCHW: one transpose back per tensor, inserted where it is first needed.

The arithmetic is unchanged (same integer sums, same requantize), so results are bit-identical.
"""

from __future__ import annotations

import numpy as np
from tvm.ir import Constant

__all__ = ["integer_layers_channels_last"]

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)
_ELEMENTWISE = {"relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.astype", "relax.maximum",
                "relax.minimum", "relax.clip", "relax.round", "relax.floor", "relax.nn.relu", "relax.negative"}
_POOLS = {"relax.nn.max_pool2d", "relax.nn.avg_pool2d"}
_REDUCTIONS = {"relax.sum", "relax.mean", "relax.max", "relax.min"}
_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}  # an NCHW axis -> the same axis of the NHWC tensor


def integer_layers_channels_last(mod, target):
    """``mod`` with its integer convolutions and the elementwise / pooling layers between them in NHWC (see the
    module docstring); unchanged when ``target`` has no integer schedule or the model no integer convolution."""
    from tvm import relax

    from ..tune.int8 import integer_unit

    if integer_unit(target) is None:
        return mod
    functions = [(gv, f) for gv, f in mod.functions.items() if isinstance(f, relax.Function) and _has_integer_conv(f)]
    if not functions:
        return mod
    walk = _ChannelsLast(mod)
    for gv, func in functions:
        walk.users = _users(func)
        walk.builder_.update_func(gv, walk.visit_expr(func))
    return relax.transform.DeadCodeElimination()(walk.builder_.get())


def _is_integer_conv(call) -> bool:
    from tvm import relax

    if not (isinstance(call, relax.Call) and getattr(call.op, "name", None) == "relax.nn.conv2d"):
        return False
    data, weight = call.args
    return isinstance(weight, Constant) and str(weight.ty.dtype) == "int8" \
        and str(data.ty.dtype) in ("uint8", "int8") and str(call.ty.dtype) == "int32" \
        and int(call.attrs.groups) == 1 and str(call.attrs.data_layout) == "NCHW" \
        and str(call.attrs.kernel_layout) == "OIHW" and str(call.attrs.out_layout) == "NCHW"


def _has_integer_conv(func) -> bool:
    from tvm import relax

    found = []
    relax.analysis.post_order_visit(func, lambda e: found.append(e) if _is_integer_conv(e) else None)
    return bool(found)


def _users(func) -> dict:
    """var -> the bound values (calls) of ``func`` that use it."""
    from tvm import relax

    users = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            found = []
            relax.analysis.post_order_visit(binding.value, lambda e: found.append(e) if isinstance(e, relax.Var)
                                            else None)
            for var in found:
                users.setdefault(var, []).append(binding.value)
    return users


def _flattened_into_products(call, users) -> bool:
    """``call`` flattens a 4-D tensor to ``[N, C*H*W]`` and its only users multiply that by constant matrices
    (a classifier head): the NHWC flattening works too, with the matrices' rows reordered to match."""
    from tvm import relax

    if getattr(call.op, "name", None) != "relax.reshape" or _rank(call) != 2 or _rank(call.args[0]) != 4:
        return False
    n, c, h, w = (int(v) for v in call.args[0].ty.shape.values)
    if [int(v) for v in call.ty.shape.values] != [n, c * h * w]:
        return False
    return all(getattr(u, "op", None) is not None and getattr(u.op, "name", None) == "relax.matmul"
               and isinstance(u.args[1], Constant) and len(u.args[1].value.shape) == 2
               and int(u.args[1].value.shape[0]) == c * h * w and not isinstance(u.args[0], relax.Tuple)
               for u in users)


def _rank(expr) -> int:
    ty = expr.ty
    return len(ty.shape.values) if hasattr(ty, "shape") and ty.shape is not None and hasattr(ty.shape, "values") \
        else -1


def _elementwise_primfunc(func) -> bool:
    """``func`` is one spatial block writing a 4-D buffer at its 4 iteration vars, reading 4-D buffers at those
    vars (or at 0 where the buffer broadcasts) and scalars: it computes the same in any layout."""
    from tvm import s_tir, tirx

    try:
        sch = s_tir.Schedule(func)
        blocks = [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root", "main"))]
    except Exception:  # noqa: BLE001 - no root block: not a TE function
        return False
    if len(blocks) != 1:
        return False
    block = blocks[0]
    ivs = [iv.var for iv in block.iter_vars]
    if len(ivs) != 4 or any(iv.iter_type != tirx.IterVar.DataPar for iv in block.iter_vars) \
            or len(block.writes) != 1 or len(block.writes[0].region) != 4 \
            or not all(r.min.same_as(v) for r, v in zip(block.writes[0].region, ivs)):
        return False
    for read in block.reads:
        region = read.region
        if len(region) == 0:
            continue
        if len(region) != 4:
            return False
        for r, v, extent in zip(region, ivs, read.source.shape):
            if not (r.min.same_as(v) or (isinstance(r.min, tirx.IntImm) and int(r.min) == 0 and int(extent) == 1)):
                return False
    return True


def _channels_last_primfunc(func):
    """The elementwise ``func`` (:func:`_elementwise_primfunc`) with every 4-D buffer and its iteration in NHWC."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    block = sch.get_child_blocks(sch.get_sblock("root", "main"))[0]
    node = sch.get(block)
    for index, read in enumerate(node.reads):
        if len(read.region) == 4:
            sch.transform_layout(block, ("read", index), lambda n, c, h, w: (n, h, w, c))
    sch.transform_layout(block, ("write", 0), lambda n, c, h, w: (n, h, w, c))
    sch.transform_block_layout(block, lambda n, c, h, w: (n, h, w, c))
    return sch.mod["main"]


def _constant_channels_last(const):
    """A constant broadcasting against an NCHW tensor, as one broadcasting against its NHWC form."""
    from tvm import relax

    value = const.value.numpy()
    if value.ndim == 0:
        return const
    value = value.reshape((1,) * (4 - value.ndim) + value.shape)
    return relax.const(np.ascontiguousarray(value.transpose(TO_NHWC)), str(value.dtype))


class _ChannelsLast:
    """The forward walk (see the module docstring) as a Relax expression mutator."""

    def __new__(cls, mod):
        import tvm
        from tvm import relax
        from tvm.relax.expr_functor import PyExprMutator, mutator

        @mutator
        class Mutator(PyExprMutator):
            def __init__(self, mod):
                super().__init__(mod)
                self.mod_ = mod
                self.nhwc = {}       # original var -> its NHWC value (a new var)
                self.only_nhwc = set()  # original vars computed in NHWC whose NCHW value is not emitted (yet)
                self.functions = {}  # PrimFunc global var -> its channels-last twin
                self.users = {}      # var -> the calls that use it (of the function being walked)
                self.flat = {}       # original var -> (C, H, W) of an NHWC tensor it flattens

            # --- helpers -------------------------------------------------------------------------------------
            def as_nhwc(self, expr):
                """``expr`` (an argument of a converted op) in NHWC, or None when it cannot be."""
                if isinstance(expr, Constant):
                    return _constant_channels_last(expr) if _rank(expr) <= 4 else None
                if isinstance(expr, relax.Var):
                    if expr in self.nhwc:
                        return self.nhwc[expr]
                    if _rank(expr) == 0:
                        return self.visit_expr(expr)
                    if _rank(expr) == 4:
                        value = self.builder_.emit(relax.op.permute_dims(self.visit_expr(expr), list(TO_NHWC)))
                        self.nhwc[expr] = value
                        return value
                return None

            def restore(self, expr):
                """Make sure a var that exists only in NHWC has its NCHW value before a non-converted use."""
                if expr in self.only_nhwc:
                    self.only_nhwc.discard(expr)
                    self.set_var_remap(expr, self.builder_.emit(
                        relax.op.permute_dims(self.nhwc[expr], list(TO_NCHW))))

            def any_nhwc(self, args) -> bool:
                return any(isinstance(a, relax.Var) and a in self.nhwc for a in args)

            def channels_last_function(self, gv):
                if gv not in self.functions:
                    func = self.mod_[gv]
                    twin = _channels_last_primfunc(func)
                    self.functions[gv] = self.builder_.add_func(twin, gv.name_hint + "_nhwc")
                return self.functions[gv]

            # --- the walk ------------------------------------------------------------------------------------
            def converted(self, call):
                """The NHWC form of ``call`` (emitted), or None to leave it in NCHW."""
                op = getattr(call.op, "name", None)
                if _rank(call) != 4:
                    return None
                if _is_integer_conv(call):
                    data = self.as_nhwc(call.args[0])
                    a = call.attrs
                    return relax.op.nn.conv2d(data, call.args[1], strides=[int(s) for s in a.strides],
                                              padding=[int(p) for p in a.padding],
                                              dilation=[int(d) for d in a.dilation], groups=1, data_layout="NHWC",
                                              kernel_layout="OIHW", out_layout="NHWC", out_dtype="int32")
                args = list(call.args[1].fields) if op == "relax.call_tir" and isinstance(call.args[1], relax.Tuple) \
                    else list(call.args[0].fields) if op == "relax.concat" and isinstance(call.args[0], relax.Tuple) \
                    else list(call.args)
                if not self.any_nhwc(args):
                    return None
                if op in _ELEMENTWISE:
                    if any(_rank(a) not in (0, 4) and not isinstance(a, Constant) for a in call.args):
                        return None
                    args = [self.as_nhwc(a) for a in call.args]
                    return None if any(a is None for a in args) else relax.Call(call.op, args, call.attrs)
                if op in _POOLS and str(call.attrs.layout) == "NCHW" and str(call.attrs.out_layout) == "NCHW":
                    a = call.attrs
                    pool = relax.op.nn.max_pool2d if op == "relax.nn.max_pool2d" else relax.op.nn.avg_pool2d
                    extra = {} if op == "relax.nn.max_pool2d" else \
                        {"count_include_pad": bool(a.count_include_pad)}
                    return pool(self.as_nhwc(call.args[0]), pool_size=[int(v) for v in a.pool_size],
                                strides=[int(v) for v in a.strides], padding=[int(v) for v in a.padding],
                                dilation=[int(v) for v in a.dilation], ceil_mode=bool(a.ceil_mode), layout="NHWC",
                                out_layout="NHWC", **extra)
                if op == "relax.concat" and isinstance(call.args[0], relax.Tuple) and int(call.attrs.axis) in (1, -3):
                    fields = [self.as_nhwc(f) for f in call.args[0].fields]
                    return None if any(f is None for f in fields) else relax.op.concat(fields, axis=3)
                if op == "relax.strided_slice" and isinstance(call.args[1], relax.Tuple):
                    data = self.as_nhwc(call.args[0])
                    axes = relax.Tuple([tvm.tirx.IntImm("int64", _AXIS[int(a) % 4]) for a in call.args[1].fields])
                    return relax.Call(call.op, [data, axes, *call.args[2:]], call.attrs)
                if op in _REDUCTIONS and bool(call.attrs.keepdims) and call.attrs.axis is not None:
                    data = self.as_nhwc(call.args[0])
                    reduce = getattr(relax.op, op.split(".")[1])
                    return reduce(data, axis=[_AXIS[int(a) % 4] for a in call.attrs.axis], keepdims=True)
                if op == "relax.call_tir" and isinstance(call.args[0], relax.GlobalVar) \
                        and isinstance(call.args[1], relax.Tuple) and len(call.ty_args) == 1:
                    func = self.mod_[call.args[0]]
                    if not _elementwise_primfunc(func):
                        return None
                    fields = [self.as_nhwc(f) for f in call.args[1].fields]
                    if any(f is None for f in fields):
                        return None
                    out = relax.TensorType([call.ty_args[0].shape.values[k] for k in TO_NHWC],
                                           call.ty_args[0].dtype)
                    return relax.call_tir(self.channels_last_function(call.args[0]), fields, out)
                return None

            def visit_var_binding_(self, binding):
                value = binding.value
                if isinstance(binding.var, relax.DataflowVar) and isinstance(value, relax.Call) \
                        and value.args and value.args[0] in self.only_nhwc \
                        and _flattened_into_products(value, self.users.get(binding.var, [])):
                    _, c, h, w = (int(v) for v in value.args[0].ty.shape.values)
                    self.flat[binding.var] = (c, h, w)
                    self.set_var_remap(binding.var, self.builder_.emit(
                        relax.op.reshape(self.nhwc[value.args[0]], value.ty.shape)))
                    return
                if isinstance(value, relax.Call) and getattr(value.op, "name", None) == "relax.matmul" \
                        and isinstance(value.args[0], relax.Var) and value.args[0] in self.flat:
                    c, h, w = self.flat[value.args[0]]
                    weight = value.args[1].value.numpy()
                    rows = weight.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(weight.shape)  # NHWC order
                    new = relax.Call(value.op, [self.visit_expr(value.args[0]), relax.const(rows, str(weight.dtype))],
                                     value.attrs)
                    self.set_var_remap(binding.var, self.builder_.emit(new) if isinstance(
                        binding.var, relax.DataflowVar) else self.builder_.emit_output(new))
                    return
                if isinstance(binding.var, relax.DataflowVar) and isinstance(value, relax.Call):
                    new = self.converted(value)
                    if new is not None:
                        self.nhwc[binding.var] = self.builder_.emit(new)
                        self.only_nhwc.add(binding.var)
                        return
                # a use in NCHW: transposes back what exists only in NHWC
                relax.analysis.post_order_visit(value, lambda e: self.restore(e) if isinstance(e, relax.Var) else None)
                super().visit_var_binding_(binding)

        return Mutator(mod)
