"""``OpGraph``: the operators of a Relax module's ``main`` as a DAG, with FLOPs and bytes from their shapes.

This is the unit of work the cost model prices and the partitioner places: one node per Relax operator call
(``R.nn.conv2d``, ``R.add``, ``R.call_tir(maximum, ...)`` ...), in the binding order of the dataflow block
(already a topological order). Bindings computed from constants only (the importer's ``reshape`` of a bias,
``isnan(const)`` ...) are folded away: their results count as weights of the ops that read them.

Each op gets a *kind* in the vocabulary the board YAMLs use for ``ops:`` (conv2d, matmul, add, mul, relu,
clip, sigmoid, pool, softmax, concat, reshape, transpose, batch_norm, ...). The mapping is semantic: ONNX's
n-ary ``Sum`` imports as ``broadcast_to`` (to the shape it already has: dropped as a no-op) ``-> stack ->
sum(axis=stack axis)``, which is an ``add``; a global
average pool imports as ``mean`` over the spatial axes, which is a ``pool``. Anything unknown keeps its Relax
name (``strided_slice``, ``power`` ...), so only units with ``ops: all`` accept it.

>>> from tvmedge.frontend.onnx import import_model
>>> ops = extract_ops(import_model("examples/models/tiny_cnn.onnx").mod)
>>> [op.kind for op in ops.ops][:4]
['conv2d', 'add', 'relu', 'conv2d']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import networkx as nx

__all__ = ["Op", "OpGraph", "extract_ops", "op_kind"]

# Relax op (without "relax.") -> board op kind.
_KINDS = {
    "nn.conv2d": "conv2d", "nn.conv2d_transpose": "conv2d",
    "matmul": "matmul", "nn.linear": "dense",
    "add": "add", "subtract": "add", "multiply": "mul", "divide": "mul",
    "nn.relu": "relu", "clip": "clip", "maximum": "clip", "minimum": "clip", "sigmoid": "sigmoid",
    "nn.max_pool2d": "pool", "nn.avg_pool2d": "pool", "nn.adaptive_avg_pool2d": "pool",
    "nn.avg_pool3d": "pool", "nn.max_pool3d": "pool",
    "nn.softmax": "softmax", "concat": "concat", "stack": "concat",
    "reshape": "reshape", "squeeze": "reshape", "expand_dims": "reshape", "flatten": "reshape",
    "permute_dims": "transpose", "nn.batch_norm": "batch_norm",
}
# FLOPs per output element for element-wise kinds (exp-like functions cost several).
_ELEMENTWISE_FLOPS = {"add": 1, "mul": 1, "relu": 1, "clip": 1, "sigmoid": 4, "tanh": 4, "exp": 4, "power": 4,
                      "sqrt": 2, "rsqrt": 2, "erf": 8, "nn.gelu": 8, "nn.silu": 5, "batch_norm": 2, "softmax": 5}
_MOVEMENT = {"reshape", "transpose", "concat", "broadcast_to", "strided_slice", "split", "take", "tile",
             "repeat", "astype", "gather_elements", "layout_transform"}
_BITS = {"float32": 32, "float16": 16, "bfloat16": 16, "float64": 64, "int8": 8, "uint8": 8, "int16": 16,
         "int32": 32, "int64": 64, "bool": 8}


@dataclass
class Op:
    """One operator: what it is, what it reads and writes, and how much it computes."""

    name: str  # unique and readable: "conv2d_3" (kind + index among ops of that kind)
    index: int  # position in the topological order
    var: str  # the Relax variable it binds (lv12)
    relax_op: str  # "nn.conv2d", "call_tir:maximum"
    kind: str  # board vocabulary (see module docstring)
    dtype: str  # output dtype
    out_shape: tuple
    in_shapes: list  # shapes of the activation (non-constant) inputs
    flops: float
    bytes_in: int  # activations read
    bytes_weights: int  # constants read
    bytes_out: int
    attrs: dict = field(default_factory=dict)  # kernel, strides, groups, M/N/K ... (cost-model features)
    inputs: list = field(default_factory=list)  # producer op names; "input:<name>" for graph inputs
    in_edges: list = field(default_factory=list, repr=False)  # (producer, bytes) per tensor argument
    call: Any = field(default=None, repr=False, compare=False)  # the relax.Call (for measuring it alone)

    @property
    def bytes_total(self) -> int:
        return self.bytes_in + self.bytes_weights + self.bytes_out

    def signature(self) -> str:
        """A workload key: two ops with equal signatures cost the same (used to deduplicate measurements)."""
        attrs = ",".join(f"{k}={v}" for k, v in sorted(self.attrs.items()))
        return f"{self.relax_op}|{self.dtype}|{self.in_shapes}|{self.out_shape}|w{self.bytes_weights}|{attrs}"

    def summary(self) -> dict:
        return {"name": self.name, "kind": self.kind, "relax_op": self.relax_op, "var": self.var,
                "dtype": self.dtype, "out_shape": list(self.out_shape), "flops": self.flops,
                "bytes": self.bytes_total, "inputs": list(self.inputs)}


@dataclass
class OpGraph:
    """The ops of one model: ``ops`` in topological order and ``dag`` (a networkx DiGraph over op names).

    ``dag`` edges carry ``bytes``, the size of the tensor that flows along them. ``inputs`` maps each graph
    input to ``(bytes, consumer op names)``; ``outputs`` lists ``(op name, bytes)`` of the model's results.
    """

    name: str
    ops: list
    dag: nx.DiGraph
    inputs: dict
    outputs: list

    def __len__(self) -> int:
        return len(self.ops)

    def op(self, name: str) -> Op:
        return self.dag.nodes[name]["op"]

    def kinds(self) -> dict:
        counts: dict = {}
        for op in self.ops:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def total_flops(self) -> float:
        return float(sum(op.flops for op in self.ops))


def op_kind(relax_op: str) -> str:
    """Board op kind for a Relax op name (``nn.conv2d`` -> ``conv2d``); unknown ops keep their name."""
    if relax_op.startswith("call_tir:"):
        relax_op = relax_op.split(":", 1)[1]
    return _KINDS.get(relax_op, relax_op.replace("nn.", ""))


def extract_ops(mod, name: str = "model") -> OpGraph:
    """The ``OpGraph`` of ``mod["main"]`` (a Relax function with static shapes, as the importer produces)."""
    from tvm import relax

    func = mod["main"]
    producers: dict = {}  # var -> op name | ("input", name) | ("const", bytes) | ("alias", [sources])
    for param in func.params:
        producers[param] = ("input", _var_name(param))
    ops: list = []
    counters: dict = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.TupleGetItem) or isinstance(value, relax.Tuple) or isinstance(value, relax.Var):
                producers[binding.var] = ("alias", _sources(value, producers))
                continue
            if not isinstance(value, relax.Call):
                producers[binding.var] = ("const", _bytes(binding.var.ty))
                continue
            tensors = _tensor_args(value)
            sources = [_resolve(arg, producers) for arg in tensors]
            if all(src[0] == "const" for src in sources):
                producers[binding.var] = ("const", _bytes(binding.var.ty))
                continue
            if _is_identity(value, tensors, binding.var):
                producers[binding.var] = ("alias", sources[0][1])
                continue
            op = _make_op(value, binding.var, tensors, sources, producers, len(ops), counters)
            producers[binding.var] = op.name
            ops.append(op)
    return _assemble(name, ops, func, producers)


def _assemble(name, ops, func, producers) -> OpGraph:
    dag = nx.DiGraph()
    for op in ops:
        dag.add_node(op.name, op=op)
    inputs: dict = {}
    for op in ops:
        for src, nbytes in op.in_edges:
            if src.startswith("input:"):
                entry = inputs.setdefault(src[6:], [nbytes, []])
                entry[1].append(op.name)
            elif dag.has_edge(src, op.name):
                dag.edges[src, op.name]["bytes"] += nbytes
            else:
                dag.add_edge(src, op.name, bytes=nbytes)
    outputs = []
    for src in _flatten(_sources(func.body.body, producers)):
        if isinstance(src, str) and not src.startswith("input:"):
            outputs.append((src, dag.nodes[src]["op"].bytes_out))
    return OpGraph(name, ops, dag, {k: (v[0], v[1]) for k, v in inputs.items()}, outputs)


def _is_identity(call, tensors, var) -> bool:
    """A broadcast to the shape the tensor already has (ONNX Sum's import): no op at all."""
    return (_op_name(call) == "broadcast_to" and len(tensors) == 1
            and _shape(tensors[0].ty) is not None and _shape(tensors[0].ty) == _shape(var.ty))


def _var_name(var) -> str:
    return str(var.name)


def _sources(value, producers) -> list:
    """Which ops/inputs a Var, Tuple or TupleGetItem value refers to."""
    from tvm import relax

    if isinstance(value, relax.Tuple):
        return [s for field_ in value.fields for s in _sources(field_, producers)]
    if isinstance(value, relax.TupleGetItem):
        return _sources(value.tuple_value, producers)
    if isinstance(value, relax.Var):
        entry = producers.get(value)
        if entry is None:
            return []
        if isinstance(entry, tuple) and entry[0] == "alias":
            return list(entry[1])
        return [entry]
    return []


def _flatten(items) -> list:
    return [item for item in items if not (isinstance(item, tuple) and item[0] == "const")]


def _resolve(arg, producers):
    """``("const", bytes)``, ``("input", name)`` or ``("op", [op names])`` for one tensor argument."""
    from tvm import relax

    if not isinstance(arg, (relax.Var, relax.Tuple, relax.TupleGetItem)):
        return ("const", _bytes(arg.ty))
    sources = _sources(arg, producers)
    if not sources or all(isinstance(s, tuple) and s[0] == "const" for s in sources):
        return ("const", _bytes(arg.ty))
    return ("op", sources)


def _tensor_args(call) -> list:
    """The call's tensor arguments (tuple fields flattened; shapes, prim values and the callee dropped)."""
    from tvm import relax

    args = list(call.args)
    if _op_name(call).startswith("call_tir:"):
        args = list(args[1].fields) if isinstance(args[1], relax.Tuple) else [args[1]]
    flat = []
    for arg in args:
        if isinstance(arg, relax.Tuple):
            flat.extend(arg.fields)
        elif isinstance(_ty(arg), relax.TensorType):
            flat.append(arg)
    return [a for a in flat if isinstance(_ty(a), relax.TensorType)]


def _ty(expr):
    try:
        return expr.ty
    except Exception:  # some expressions have no type yet
        return None


def _op_name(call) -> str:
    op = call.op
    name = getattr(op, "name", None)
    if name == "relax.call_tir":
        return "call_tir:" + str(call.args[0].name_hint)
    if name is None:
        return "call:" + str(getattr(op, "name_hint", op))
    return name[len("relax."):] if name.startswith("relax.") else name


def _shape(ty) -> Optional[tuple]:
    from tvm import relax

    if isinstance(ty, relax.TensorType) and ty.shape is not None:
        try:
            return tuple(int(d) for d in ty.shape.values)
        except (TypeError, AttributeError):
            return None
    return None


def _bytes(ty) -> int:
    """Size of a tensor (or of all tensors of a tuple) type; 0 when unknown."""
    from tvm import relax

    if isinstance(ty, relax.TupleType):
        return sum(_bytes(f) for f in ty.fields)
    shape = _shape(ty)
    if shape is None:
        return 0
    return math.prod(shape) * _BITS.get(str(ty.dtype), 32) // 8


def _out_type(call, var):
    """The op's main output type (the first field of a tuple, e.g. batch_norm's normalised tensor)."""
    from tvm import relax

    ty = var.ty
    if isinstance(ty, relax.TupleType) and len(ty.fields):
        return ty.fields[0]
    return ty


def _make_op(call, var, tensors, sources, producers, index, counters) -> Op:
    relax_op = _op_name(call)
    out_ty = _out_type(call, var)
    out_shape = _shape(out_ty) or ()
    dtype = str(getattr(out_ty, "dtype", "float32"))
    in_shapes, edges, act_bytes, weight_bytes = [], [], 0, 0
    for arg, src in zip(tensors, sources):
        nbytes = _bytes(arg.ty)
        if src[0] == "const":
            weight_bytes += nbytes
            continue
        in_shapes.append(_shape(arg.ty) or ())
        act_bytes += nbytes
        for s in src[1]:
            edges.append(((f"input:{s[1]}" if isinstance(s, tuple) else s), nbytes))
    kind = _semantic_kind(relax_op, call, in_shapes, out_shape, sources, producers)
    attrs = _attrs(relax_op, call, in_shapes, out_shape, weight_shapes=[_shape(a.ty) for a, s in zip(tensors, sources) if s[0] == "const"])
    flops = _flops(relax_op, kind, attrs, in_shapes, out_shape)
    counters[kind] = counters.get(kind, -1) + 1
    return Op(name=f"{kind}_{counters[kind]}", index=index, var=_var_name(var), relax_op=relax_op, kind=kind,
              dtype=dtype, out_shape=out_shape, in_shapes=in_shapes, flops=float(flops), bytes_in=act_bytes,
              bytes_weights=weight_bytes, bytes_out=_bytes(out_ty), attrs=attrs, inputs=list(dict.fromkeys(e[0] for e in edges)),
              in_edges=edges, call=call)


def _semantic_kind(relax_op, call, in_shapes, out_shape, sources, producers) -> str:
    kind = op_kind(relax_op)
    if relax_op in ("sum", "mean") and call.attrs is not None:
        axes = [int(a) for a in (call.attrs.axis or [])]
        if relax_op == "mean" and len(out_shape) == 4 and sorted(a % 4 for a in axes) == [2, 3]:
            return "pool"  # global average pool
        if relax_op == "sum" and axes == [0] and len(in_shapes) == 1 and len(in_shapes[0]) == len(out_shape) + 1:
            return "add"  # n-ary Sum: sum over a stacked axis
    return kind


def _attrs(relax_op, call, in_shapes, out_shape, weight_shapes) -> dict:
    """Shape facts the cost model uses as features (all ints)."""
    attrs: dict = {}
    if relax_op in ("nn.conv2d", "nn.conv2d_transpose") and in_shapes:
        weight = next((w for w in weight_shapes if w and len(w) == 4), None)
        groups = int(call.attrs.groups)
        cin = in_shapes[0][1] if len(in_shapes[0]) == 4 else 0
        kh, kw = (weight[2], weight[3]) if weight else (1, 1)
        if weight is None and len(in_shapes) > 1 and len(in_shapes[1]) == 4:  # weights computed at run time
            kh, kw = in_shapes[1][2], in_shapes[1][3]
        attrs.update(kh=int(kh), kw=int(kw), stride=int(call.attrs.strides[0]), groups=groups,
                     cin=int(cin), cout=int(out_shape[1]) if len(out_shape) == 4 else 0)
    elif relax_op == "matmul" and in_shapes:
        a = in_shapes[0]
        attrs.update(k=int(a[-1]) if a else 0, m=int(a[-2]) if len(a) > 1 else 1,
                     n=int(out_shape[-1]) if out_shape else 0)
    elif relax_op.startswith("nn.") and "pool" in relax_op and call.attrs is not None:
        size = [int(s) for s in getattr(call.attrs, "pool_size", []) or []]
        attrs.update(window=math.prod(size) if size else 1)
    return attrs


def _flops(relax_op, kind, attrs, in_shapes, out_shape) -> int:
    out = math.prod(out_shape) if out_shape else 1
    if relax_op in ("nn.conv2d", "nn.conv2d_transpose"):
        cin = attrs.get("cin", 0) or 1
        return 2 * out * (cin // max(attrs.get("groups", 1), 1)) * attrs.get("kh", 1) * attrs.get("kw", 1)
    if relax_op in ("matmul", "nn.linear"):
        return 2 * out * attrs.get("k", 1)
    if kind == "pool":
        if "window" in attrs:
            return out * attrs["window"]
        return math.prod(in_shapes[0]) if in_shapes else out  # global pool: every input element once
    if relax_op in ("sum", "mean", "max", "min", "prod", "variance", "std"):
        return math.prod(in_shapes[0]) if in_shapes else out
    if kind in _MOVEMENT or relax_op in _MOVEMENT:
        return 0
    per = _ELEMENTWISE_FLOPS.get(relax_op, _ELEMENTWISE_FLOPS.get(kind, 1))
    return per * out
