"""Quantized ONNX models onto the integer path: QDQ patterns rewritten to quantized operators, bad ones refused.

A QDQ model (ONNX Runtime's quantizer in its default format, or ``tvmedge quantize``) says "integer" only
through ``DequantizeLinear -> op -> QuantizeLinear`` around float ops; imported as it is, it computes in float.
:func:`to_qoperator` rewrites, on the ONNX graph (before import), each pattern it recognises into the operator
that computes it on integers — the same fusions ONNX Runtime makes at session start — and
:mod:`tvmedge.frontend.converters.quantized` lowers those to int8 x int8 -> int32 Relax:

====================================================  =============================================
pattern                                                becomes
====================================================  =============================================
DQ(x), DQ(w) -> Conv [-> Relu / Clip] -> Q             QLinearConv [-> Clip on the quantized value]
DQ(x), DQ(w) -> Conv -> (float consumers)              ConvInteger -> Cast -> Mul(sx * sw) [-> Add(bias)]
DQ(x), DQ(w) -> Gemm / MatMul [-> Relu / Clip] -> Q    com.microsoft.QGemm / QLinearMatMul [-> Clip]
DQ(x), DQ(w) -> Gemm / MatMul -> (float consumers)     com.microsoft.QGemm (float out) / MatMulInteger
DQ(a), DQ(b) -> Add | Sum [-> Relu] -> Q               com.microsoft.QLinearAdd [-> Clip]
DQ -> GlobalAveragePool -> Q                           com.microsoft.QLinearGlobalAveragePool
DQ(xi) ... -> Concat -> Q                              com.microsoft.QLinearConcat
DQ -> MaxPool / Flatten / Reshape / Transpose / ... -> Q (same scale and zero point): the op on the integers
====================================================  =============================================

Biases become int32 at scale ``sx * sw`` (as the quantizer wrote them, or rounded from float). ReLU / Clip
before a ``QuantizeLinear`` are exact as a clip of the quantized value (quantization is monotonic), so they fold
into the requantize kernel. Anything else that reads a dequantized tensor stays float, and each such layer gets a
one-line note (:class:`IntegerReport`) that the compile output and the manifest carry. INT4 weights are left to
:mod:`tvmedge.frontend.qdq` (packed storage, float compute).

:func:`tvmedge.frontend.qcheck.check_quantized` refuses malformed quantization parameters first, one line
each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError

__all__ = ["IntegerReport", "is_quantized", "to_qoperator", "QUANTIZED_OPS", "FLOAT_FALLBACK_OPS"]

QUANTIZED_OPS = ("QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "com.microsoft.QGemm",
                 "com.microsoft.QLinearAdd", "com.microsoft.QLinearGlobalAveragePool", "com.microsoft.QLinearConcat")
# Quantized operators ONNX Runtime's quantizer writes that have no integer kernel here: computed as
# DequantizeLinear -> float op -> QuantizeLinear (and noted). Value: (float op, number of quantized inputs).
FLOAT_FALLBACK_OPS = {"com.microsoft.QLinearSigmoid": ("Sigmoid", 1), "com.microsoft.QLinearLeakyRelu": ("LeakyRelu", 1),
                      "com.microsoft.QLinearAveragePool": ("AveragePool", 1), "com.microsoft.QLinearSoftmax": ("Softmax", 1),
                      "com.microsoft.QLinearMul": ("Mul", 2)}
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_INT8 = (2, 3)  # TensorProto.UINT8, INT8
_INT4_RANGE = {22: (-8, 7), 21: (0, 15)}  # TensorProto.INT4, UINT4
_MOVEMENT = ("MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity")
_RANGES = {2: (0, 255), 3: (-128, 127)}


@dataclass
class IntegerReport:
    """Which layers compute on integers and, one line each, which quantized layers stay float and why."""

    integer: list = field(default_factory=list)  # "name (op)" of each integer layer
    float_fallback: list = field(default_factory=list)  # one line per layer: "name (Op): float: reason"

    def summary(self) -> dict:
        return {"integer_layers": len(self.integer), "layers": list(self.integer),
                "float_fallback": list(self.float_fallback)}


def _op(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def is_quantized(model) -> bool:
    """True when the graph holds QuantizeLinear / DequantizeLinear or quantized operators."""
    return any(node.op_type in _QDQ or _op(node) in QUANTIZED_OPS or _op(node) in FLOAT_FALLBACK_OPS
               for node in model.graph.node)


# --- the graph, read once ---------------------------------------------------------------------------

class _Graph:
    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        self.inits = {init.name: init for init in model.graph.initializer}
        self._values = {}
        self.numpy = lambda name: self._values.setdefault(name, numpy_helper.to_array(self.inits[name]))
        self.outputs = {o.name for o in model.graph.output}
        self.producer, self.consumers = {}, {}
        for node in model.graph.node:
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def const(self, name):
        return self.numpy(name) if name and name in self.inits else None

    def only_consumer(self, name):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None


@dataclass
class _Q:
    """A (de)quantize node's parameters, all constants."""

    node: object
    data: str
    scale: np.ndarray
    zero: np.ndarray
    dtype: int  # TensorProto element type of the integer side
    axis: int

    @property
    def scalar(self) -> bool:
        return self.scale.size == 1

    def same(self, other) -> bool:
        return (self.scalar and other.scalar and self.dtype == other.dtype
                and np.float32(self.scale.reshape(-1)[0]) == np.float32(other.scale.reshape(-1)[0])
                and int(self.zero.reshape(-1)[0]) == int(other.zero.reshape(-1)[0]))


def _params(graph: _Graph, node):
    """Scale / zero point / integer type of a Q or DQ node, or None when they are not constants."""
    scale = graph.const(node.input[1])
    if scale is None or (len(node.input) > 2 and node.input[2] and graph.const(node.input[2]) is None):
        return None
    if len(node.input) > 2 and node.input[2]:
        zero, dtype = graph.const(node.input[2]), graph.inits[node.input[2]].data_type
    else:
        zero, dtype = np.zeros(scale.shape, np.uint8), 2
    if node.op_type == "DequantizeLinear" and node.input[0] in graph.inits:
        dtype = graph.inits[node.input[0]].data_type
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if any(a.name == "block_size" and a.i for a in node.attribute):
        return None
    return _Q(node, node.input[0], scale, zero, dtype, axis)


def _dq(graph: _Graph, name: str):
    node = graph.producer.get(name)
    return _params(graph, node) if node is not None and node.op_type == "DequantizeLinear" else None


def _q_after(graph: _Graph, name: str):
    node = graph.only_consumer(name)
    if node is not None and node.op_type == "QuantizeLinear":
        q = _params(graph, node)
        if q is not None and q.scalar and q.dtype in _INT8:
            return q
    return None


# --- rewriting --------------------------------------------------------------------------------------

class _Rewriter:
    def __init__(self, model):
        self.graph = _Graph(model)
        self.replace = {}  # id(node) -> list of new nodes (empty: removed)
        self.inits = []
        self.report = IntegerReport()
        self.reasons = {}  # node name -> why it stays float
        self.taken = set(self.graph.inits) | set(self.graph.producer) | {i.name for i in model.graph.input}

    def name(self, node) -> str:
        return node.name or node.output[0]

    def add_init(self, name: str, value) -> str:
        """A new initializer under a name no tensor of the graph has (the quantizer's own names are similar)."""
        from onnx import numpy_helper

        taken = self.taken
        unique, n = name, 1
        while unique in taken:
            unique, n = f"{name}.{n}", n + 1
        taken.add(unique)
        self.inits.append(numpy_helper.from_array(np.asarray(value), unique))
        return unique

    # activation input: DQ of a non-constant tensor, per-tensor, 8-bit
    def activation(self, name: str):
        dq = _dq(self.graph, name)
        if dq is None or dq.data in self.graph.inits or not dq.scalar or dq.dtype not in _INT8:
            return None
        return dq

    def weight(self, name: str, axis: int):
        dq = _dq(self.graph, name)
        if dq is not None and dq.data not in self.graph.inits:
            dq = self.folded_weight(dq)
        if dq is None or dq.data not in self.graph.inits:
            return None, "weight is not a DequantizeLinear of a constant"
        if dq.dtype not in _INT8:
            return None, "INT4 weights (packed in the artifact, computed in float)" if dq.dtype in _INT4_RANGE \
                else "weights are not 8-bit"
        if not dq.scalar and dq.axis % self.graph.numpy(dq.data).ndim != axis:
            return None, f"weight scales along axis {dq.axis}, not the output channels"
        return dq, None

    def folded_weight(self, dq: _Q):
        """``DequantizeLinear(QuantizeLinear(float constant))`` — what ONNX Runtime's quantizer writes when the
        weights are also graph inputs (IR version 3 models): the QuantizeLinear evaluated here, once, as ONNX
        defines it (round half to even, saturate), so the layer gets int8 weights like any other."""
        q = self.graph.producer.get(dq.data)
        if q is None or q.op_type != "QuantizeLinear" or q.input[0] not in self.graph.inits:
            return dq
        params = _params(self.graph, q)
        if params is None or params.dtype not in _INT8 or not (params.scale.shape == dq.scale.shape
                                                                and np.array_equal(params.scale, dq.scale)):
            return dq
        w = self.graph.numpy(q.input[0]).astype(np.float32)
        shape = [1] * w.ndim
        if not params.scalar:
            shape[params.axis % w.ndim] = -1
        low, high = _RANGES[params.dtype]
        values = np.rint(w / params.scale.astype(np.float32).reshape(shape)) + params.zero.astype(np.float32).reshape(shape)
        values = np.clip(values, low, high).astype(np.uint8 if params.dtype == 2 else np.int8)
        folded = self.add_init(f"{dq.data}.folded", values)
        self.graph.inits[folded] = self.inits[-1]
        return _Q(dq.node, folded, dq.scale, dq.zero, params.dtype, dq.axis)

    def epilogue(self, out: str):
        """``(activation node or None, Q after it)``: Relu / Clip (constant bounds) then QuantizeLinear."""
        q = _q_after(self.graph, out)
        if q is not None:
            return None, q
        act = self.graph.only_consumer(out)
        if act is None or act.op_type not in ("Relu", "Clip"):
            return None, None
        if act.op_type == "Clip" and any(i and self.graph.const(i) is None for i in act.input[1:]):
            return None, None
        q = _q_after(self.graph, act.output[0])
        return (act, q) if q is not None else (None, None)

    def clip_bounds(self, act, q: _Q):
        """The quantized bounds a Relu / Clip becomes (quantization is monotonic, so this is exact)."""
        low, high = _RANGES[q.dtype]
        scale, zero = float(q.scale.reshape(-1)[0]), int(q.zero.reshape(-1)[0])
        if act.op_type == "Relu":
            return max(low, zero), high
        lo = self.graph.const(act.input[1]) if len(act.input) > 1 and act.input[1] else None
        hi = self.graph.const(act.input[2]) if len(act.input) > 2 and act.input[2] else None
        if lo is not None:
            low = int(np.clip(np.rint(np.float32(lo) / np.float32(scale)) + zero, low, high))
        if hi is not None:
            high = int(np.clip(np.rint(np.float32(hi) / np.float32(scale)) + zero, low, high))
        return low, high

    def finish(self, node, act, q, new_nodes, result: str):
        """Append the folded activation (a Clip of the quantized value), mark the replaced nodes."""
        from onnx import helper

        base = self.name(node)
        if act is not None:
            low, high = self.clip_bounds(act, q)
            np_type = np.uint8 if q.dtype == 2 else np.int8
            lo = self.add_init(f"{base}.qmin", np.array(low, np_type))
            hi = self.add_init(f"{base}.qmax", np.array(high, np_type))
            new_nodes.append(helper.make_node("Clip", [result, lo, hi], [q.node.output[0]], name=f"{base}.qclip"))
        self.replace[id(node)] = new_nodes
        for extra in (act, q.node if q is not None else None):
            if extra is not None:
                self.replace[id(extra)] = []

    def bias_int32(self, node, index: int, sx: float, sw: np.ndarray, channels: int):
        """The bias as int32 at scale ``sx * sw`` (as written when it already is, else rounded) or a float array."""
        name = node.input[index] if len(node.input) > index else ""
        if not name:
            return None, None
        dq = _dq(self.graph, name)
        if dq is not None and dq.data in self.graph.inits:
            values = self.graph.numpy(dq.data).astype(np.int64).reshape(-1)
            scale = np.broadcast_to(dq.scale.reshape(-1), values.shape).astype(np.float64)
            zero = np.broadcast_to(dq.zero.reshape(-1), values.shape).astype(np.int64)
            target = np.broadcast_to(np.float32(sx) * np.asarray(sw, np.float32).reshape(-1), (channels,))
            if np.allclose(scale, target, rtol=1e-6, atol=0) and not zero.any():
                return values.astype(np.int32), None
            floats = (values - zero) * scale
        elif name in self.graph.inits:
            floats = self.graph.numpy(name).astype(np.float64).reshape(-1)
        else:
            return None, "bias is not a constant"
        target = np.broadcast_to(np.float64(sx) * np.asarray(sw, np.float64).reshape(-1), floats.shape)
        return np.rint(floats / target).astype(np.int32), None

    # --- layers ---
    def layer(self, node):
        from onnx import TensorProto, helper

        op = node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        x = self.activation(node.input[0])
        if x is None:
            source = self.graph.producer.get(node.input[0])
            if source is not None and source.op_type == "DequantizeLinear" and self.graph.const(source.input[1]) is None:
                return "dynamic quantization (the activation's scale is known only at run time)"
            return "its input is not a per-tensor 8-bit DequantizeLinear"
        if op == "Gemm":
            if attrs.get("transA", 0):
                return "Gemm with transA"
            if len(node.input) > 2 and node.input[2] and attrs.get("beta", 1.0) != 1.0:
                return "Gemm with beta != 1"
            axis = 0 if attrs.get("transB", 0) else 1
        else:
            axis = 0 if op == "Conv" else 1
        w, why = self.weight(node.input[1], axis)
        if w is None:
            return why
        wq = self.graph.numpy(w.data)
        if op == "MatMul" and wq.ndim != 2:
            return "MatMul weight is not 2-D"
        if op == "Conv" and wq.ndim not in (3, 4):
            return "only 1-D and 2-D convolutions"
        if w.zero.size > 1 and np.any(w.zero != 0):
            return "per-channel weight zero points are not 0"
        channels = wq.shape[axis]
        sx, zx = float(x.scale.reshape(-1)[0]), x.zero.reshape(-1)[0]
        base = self.name(node)
        bias, why = self.bias_int32(node, 2, sx, w.scale, channels)
        if why:
            return why
        act, q = self.epilogue(node.output[0])
        xzp = self.add_init(f"{base}.x_zero_point", x.zero.reshape(()))
        wzp_values = w.zero.reshape(-1) if w.zero.size > 1 else w.zero.reshape(())
        wzp = self.add_init(f"{base}.w_zero_point", wzp_values)
        sxn = self.add_init(f"{base}.x_scale", np.float32(sx))
        swn = self.add_init(f"{base}.w_scale", w.scale.astype(np.float32).reshape(-1 if w.scale.size > 1 else ()))
        conv_attrs = {k: v for k, v in attrs.items() if k in ("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                                              "strides")}
        nodes = []
        if q is not None:  # quantized output
            out = f"{base}.q" if act is not None else q.node.output[0]
            syn = self.add_init(f"{base}.y_scale", np.float32(q.scale.reshape(-1)[0]))
            yzp = self.add_init(f"{base}.y_zero_point", q.zero.reshape(()))
            bias_name = self.add_init(f"{base}.bias_int32", bias) if bias is not None else ""
            if op == "Conv":
                inputs = [x.data, sxn, xzp, w.data, swn, wzp, syn, yzp] + ([bias_name] if bias_name else [])
                nodes.append(helper.make_node("QLinearConv", inputs, [out], name=base, **conv_attrs))
            elif op == "Gemm":
                inputs = [x.data, sxn, xzp, w.data, swn, wzp, bias_name, syn, yzp]
                nodes.append(helper.make_node("QGemm", inputs, [out], name=base, domain="com.microsoft",
                                              transB=int(attrs.get("transB", 0)), alpha=float(attrs.get("alpha", 1.0))))
            else:
                if bias is not None:
                    return "MatMul with a bias"
                inputs = [x.data, sxn, xzp, w.data, swn, wzp, syn, yzp]
                nodes.append(helper.make_node("QLinearMatMul", inputs, [out], name=base))
            self.finish(node, act, q, nodes, out)
            self.report.integer.append(f"{base} ({op})")
            return None
        # float output: integer product, then scale (and bias) in float32 at the boundary
        result = node.output[0]
        if op == "Gemm":
            alpha = float(attrs.get("alpha", 1.0))
            scaled = f"{base}.scaled" if bias is not None and len(node.input) > 2 and node.input[2] in self.graph.inits \
                else result
            inputs = [x.data, sxn, xzp, w.data, swn, wzp]
            int_bias = bias if scaled == result else None
            inputs.append(self.add_init(f"{base}.bias_int32", int_bias) if int_bias is not None else "")
            nodes.append(helper.make_node("QGemm", inputs, [scaled], name=base, domain="com.microsoft",
                                          transB=int(attrs.get("transB", 0)), alpha=alpha))
            if scaled != result:
                nodes.append(helper.make_node("Add", [scaled, node.input[2]], [result], name=f"{base}.bias"))
        else:
            shape = [1, channels] + [1] * (wq.ndim - 2) if op == "Conv" else [channels]
            multiplier = (np.float32(sx) * np.broadcast_to(w.scale.astype(np.float32).reshape(-1), (channels,)))
            integer = f"{base}.int32"
            kind = "ConvInteger" if op == "Conv" else "MatMulInteger"
            extra = conv_attrs if op == "Conv" else {}
            nodes.append(helper.make_node(kind, [x.data, w.data, xzp, wzp], [integer], name=base, **extra))
            nodes.append(helper.make_node("Cast", [integer], [f"{base}.float"], name=f"{base}.cast",
                                          to=TensorProto.FLOAT))
            mult = self.add_init(f"{base}.multiplier", multiplier.reshape(shape).astype(np.float32))
            if bias is None:
                nodes.append(helper.make_node("Mul", [f"{base}.float", mult], [result], name=f"{base}.scale"))
            else:
                nodes.append(helper.make_node("Mul", [f"{base}.float", mult], [f"{base}.scaled"], name=f"{base}.scale"))
                float_bias = (bias.astype(np.float64) * multiplier.astype(np.float64)).astype(np.float32)
                if len(node.input) > 2 and node.input[2] in self.graph.inits:  # keep a float bias exactly
                    float_bias = self.graph.numpy(node.input[2]).astype(np.float32).reshape(-1)
                b = self.add_init(f"{base}.bias_float", float_bias.reshape(shape))
                nodes.append(helper.make_node("Add", [f"{base}.scaled", b], [result], name=f"{base}.bias"))
        self.replace[id(node)] = nodes
        self.report.integer.append(f"{base} ({op}, float output)")
        return None

    def elementwise(self, node):
        from onnx import helper

        op, base = node.op_type, self.name(node)
        adds = op in ("Add", "Sum")  # a two-input Sum is an Add (resnet exports write residuals as Sum)
        act, q = (self.epilogue(node.output[0]) if adds else (None, _q_after(self.graph, node.output[0])))
        if q is None:
            return "its output is not quantized (no QuantizeLinear after it)"
        ins = [self.activation(name) for name in node.input]
        if any(i is None for i in ins):
            return "an input is not a per-tensor 8-bit DequantizeLinear"
        params = lambda i, tag: [i.data, self.add_init(f"{base}.{tag}_scale", np.float32(i.scale.reshape(-1)[0])),
                                 self.add_init(f"{base}.{tag}_zero_point", i.zero.reshape(()))]
        y = [self.add_init(f"{base}.y_scale", np.float32(q.scale.reshape(-1)[0])),
             self.add_init(f"{base}.y_zero_point", q.zero.reshape(()))]
        out = f"{base}.q" if act is not None else q.node.output[0]
        if adds:
            if len(ins) != 2:
                return f"{op} of {len(ins)} inputs (QLinearAdd takes two)"
            nodes = [helper.make_node("QLinearAdd", params(ins[0], "a") + params(ins[1], "b") + y, [out], name=base,
                                      domain="com.microsoft")]
        elif op == "GlobalAveragePool":
            nodes = [helper.make_node("QLinearGlobalAveragePool", params(ins[0], "x") + y, [out], name=base,
                                      domain="com.microsoft", channels_last=0)]
        else:
            axis = next(a.i for a in node.attribute if a.name == "axis")
            inputs = y + [n for k, i in enumerate(ins) for n in params(i, f"x{k}")]
            nodes = [helper.make_node("QLinearConcat", inputs, [out], name=base, domain="com.microsoft", axis=axis)]
        if any(i.dtype != q.dtype for i in ins):
            return "inputs and output have different integer types"
        self.finish(node, act, q, nodes, out)
        self.report.integer.append(f"{base} ({op})")
        return None

    def movement(self, node):
        """DQ -> data movement -> Q with the same parameters: the op runs on the integers themselves."""
        x = _dq(self.graph, node.input[0])
        q = _q_after(self.graph, node.output[0])
        if x is None or q is None or x.data in self.graph.inits or not x.same(q) or len(node.output) > 1 \
                and any(node.output[1:]):
            return "not between a DequantizeLinear and a QuantizeLinear of the same scale and zero point"
        from onnx import NodeProto

        moved = NodeProto()
        moved.CopyFrom(node)
        moved.input[0] = x.data
        moved.output[0] = q.node.output[0]
        self.replace[id(node)] = [moved]
        self.replace[id(q.node)] = []
        return None

    def run(self):
        for node in self.graph.model.graph.node:
            if id(node) in self.replace:
                continue
            why = None
            if node.op_type in ("Conv", "Gemm", "MatMul") and node.domain in ("", "ai.onnx"):
                why = self.layer(node)
            elif node.op_type in ("Add", "Sum", "GlobalAveragePool", "Concat") and node.domain in ("", "ai.onnx"):
                why = self.elementwise(node)
            elif node.op_type in _MOVEMENT:
                why = self.movement(node)
            if why:
                self.reasons[self.name(node)] = why


def to_qoperator(model):
    """Rewrite the QDQ patterns of ``model`` into quantized operators -> ``(model copy, IntegerReport)``.

    Unmatched quantized layers (ops reading a dequantized tensor) stay float and are listed, one line each,
    in ``report.float_fallback``. Call :func:`.qcheck.check_quantized` first for the one-line errors.
    """
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    _expand_to_float(model)
    rewriter = _Rewriter(model)
    rewriter.run()
    nodes = []
    for node in model.graph.node:
        nodes.extend(rewriter.replace.get(id(node), [node]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(rewriter.inits)
    _drop_dead(model)
    report = rewriter.report
    report.integer += [f"{n.name or n.output[0]} ({_op(n)})" for n in model.graph.node
                       if _op(n) in QUANTIZED_OPS and not any((n.name or n.output[0]) == r.split(" (")[0]
                                                               for r in report.integer)]
    graph = _Graph(model)
    for node in model.graph.node:
        if node.op_type in _QDQ:
            continue
        reads = [name for name in node.input if _dq(graph, name) is not None]
        if reads:
            name = node.name or node.output[0]
            why = rewriter.reasons.get(name, f"no integer kernel for {node.op_type}")
            report.float_fallback.append(f"{name} ({node.op_type}): float: {why}")
    if any(d.domain == "com.microsoft" for d in model.opset_import) is False and \
            any(n.domain == "com.microsoft" for n in model.graph.node):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return model, report


def _expand_to_float(model) -> None:
    """Quantized operators of :data:`FLOAT_FALLBACK_OPS` -> ``DequantizeLinear`` per input, the float op (same
    name and attributes), ``QuantizeLinear``; the float op is then noted like any layer left float."""
    from onnx import helper

    nodes = []
    for node in model.graph.node:
        op = _op(node)
        if op not in FLOAT_FALLBACK_OPS:
            nodes.append(node)
            continue
        float_op, count = FLOAT_FALLBACK_OPS[op]
        name = node.name or node.output[0]
        ins = list(node.input) + [""] * (3 * count + 2 - len(node.input))
        floats = []
        for i in range(count):
            x, scale, zero = ins[3 * i: 3 * i + 3]
            floats.append(f"{name}.input{i}")
            nodes.append(helper.make_node("DequantizeLinear", [x, scale] + ([zero] if zero else []), [floats[-1]],
                                          name=f"{name}.dequantize{i}"))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in ("opset", "channels_last")}
        if any(a.name == "channels_last" and a.i for a in node.attribute):
            raise ModelError(f"{op} '{name}' with channels_last=1 is not supported; export the model channels-first")
        nodes.append(helper.make_node(float_op, floats, [f"{name}.float"], name=name, **attrs))
        y_scale, y_zero = ins[3 * count], ins[3 * count + 1]
        nodes.append(helper.make_node("QuantizeLinear", [f"{name}.float", y_scale] + ([y_zero] if y_zero else []),
                                      [node.output[0]], name=f"{name}.quantize"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _drop_dead(model) -> None:
    """Remove nodes whose outputs nobody reads (the replaced patterns' DequantizeLinears), then unused
    initializers."""
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {name for node in model.graph.node for name in node.input} | outputs
        keep = [n for n in model.graph.node if any(o in used for o in n.output if o)]
        if len(keep) == len(model.graph.node):
            break
        del model.graph.node[:]
        model.graph.node.extend(keep)
    used = {name for node in model.graph.node for name in node.input} | outputs
    keep = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
