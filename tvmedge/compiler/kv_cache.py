"""KV caches updated in place: a decode graph's ``present = Where(mask, new, past)`` becomes a write of ``new``
into ``past`` where the mask is true, and ``past`` itself is the result.

A decode graph with a static context (every shape static) returns each layer's cache as ``Where(slot == position,
new, past)``. Run as written, that is a full copy of the cache per layer and token: read ``past``, write
``present``, two passes over every cache byte to change one slot. For a small INT4 model the caches are a
quarter of the bytes a token reads, so the copy alone costs more than a third of the weights' traffic.

This rewrite replaces such a ``Where`` by ``R.call_tir_inplace`` of a kernel that walks the mask's own elements
and, where one is true, stores the broadcast ``new`` values into ``past``; ``past`` is its result. For any mask
that is exactly ``Where``'s result. What changes is ownership: the caller's ``past`` tensor *is* the result
afterwards. So it is applied only to the inputs the caller names as caches (an LM package's cache pairs,
:func:`tvmedge.compiler.lm.compile_lm`), and only where ``Where`` is that input's single use; the artifact's
manifest lists them (``build.updated_in_place``) and the LM runtime hands each step's result to the next step,
which is what it did already. Running the graph twice on the same inputs gives the same outputs (the write is
idempotent), so profiling and repeated runs are unaffected. Over TVM RPC (an emulated or remote board) such an
output is not fetched back: TVM's RPC cannot return a tensor that came in as an argument, and the caller already
holds it (``Model.run_stage(..., known=...)``, which the LM runtime uses).

Relax has an in-place pass (``DataflowUseInplaceCalls``), but it leaves graph inputs alone and keeps the
element-wise form (every element is still read and written); the point here is to touch only the new slot.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["update_caches_in_place", "KERNEL_NAME"]

KERNEL_NAME = "tvmedge_cache_write"


def _kernel(out_shape, dtype: str, cond_shape, cond_dtype: str, new_shape, when: bool):
    """TIR (parsed from generated TVMScript: the rank varies) of ``P[i] = X[i] where C[i] == when``, ``C`` and ``X``
    broadcast to ``P``'s shape as Where broadcasts them (right-aligned, extent-1 dims repeat)."""
    import tvm

    rank = len(out_shape)

    def index(shape):
        offset = rank - len(shape)
        return ", ".join(f"i{offset + d}" if int(n) != 1 else "0" for d, n in enumerate(shape)) or "0"

    cond_offset = rank - len(cond_shape)
    outer = [d for d in range(rank) if d >= cond_offset and int(cond_shape[d - cond_offset]) != 1]
    inner = [d for d in range(rank) if d not in outer]
    shape = lambda s: "(" + ", ".join(str(int(n)) for n in s) + ("," if len(s) == 1 else "") + ")"  # noqa: E731
    test = f"C[{index(cond_shape)}]" if cond_shape else "C[0]"
    lines = [
        "@T.prim_func(private=True)",
        f"def kernel(C: T.Buffer({shape(cond_shape) if cond_shape else '(1,)'}, \"{cond_dtype}\"), "
        f"X: T.Buffer({shape(new_shape) if new_shape else '(1,)'}, \"{dtype}\"), P: T.Buffer({shape(out_shape)}, "
        f"\"{dtype}\")):",
        '    T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})',
    ]
    depth = 1
    for d in outer:
        lines.append("    " * depth + f"for i{d} in range({int(out_shape[d])}):")
        depth += 1
    lines.append("    " * depth + f"if {'' if when else 'not '}{test}:")
    depth += 1
    for d in inner:
        lines.append("    " * depth + f"for i{d} in range({int(out_shape[d])}):")
        depth += 1
    lines.append("    " * depth + f"P[{index(out_shape)}] = X[{index(new_shape) if new_shape else '0'}]")
    from tvm.script import tirx as T

    return tvm.script.from_source("\n".join(lines), extra_vars={"T": T})


def _static(ty):
    try:
        return [int(d) for d in ty.shape.values], str(ty.dtype)
    except Exception:  # noqa: BLE001 - a symbolic shape: left as it is
        return None


def update_caches_in_place(mod, caches: Iterable[str]):
    """``(mod, names)``: ``mod`` with ``Where(mask, new, past)`` on each param of ``main`` named in ``caches``
    (Relax parameter names) written as an in-place update of that param, and the params it did so for."""
    import tvm
    from tvm import relax

    caches = set(caches)
    main = mod["main"]
    params = {p.name: p for p in main.params if p.name in caches}
    if not params:
        return mod, []
    uses = {name: 0 for name in params}

    @relax.expr_functor.visitor
    class _Uses(relax.PyExprVisitor):
        def visit_var_(self, var):
            if var.name in uses and var.same_as(params[var.name]):
                uses[var.name] += 1

    _Uses().visit_expr(main.body)
    where = tvm.ir.Op.get("relax.where")
    done: list = []

    @relax.expr_functor.mutator
    class _Rewrite(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not call.op.same_as(where) or len(call.args) != 3:
                return call
            cond, first, second = call.args
            for past, new, when in ((second, first, True), (first, second, False)):
                if not isinstance(past, relax.Var) or past.name not in params or uses[past.name] != 1:
                    continue
                out, c, x = _static(self.builder_.normalize(call).ty), _static(cond.ty), _static(new.ty)
                p = _static(past.ty)
                if None in (out, c, x, p) or out != p or x[1] != p[1]:
                    continue
                gv = self.builder_.add_func(_kernel(p[0], p[1], c[0], c[1], x[0], when), KERNEL_NAME)
                done.append(past.name)
                return relax.call_tir_inplace(gv, [cond, new, past], [2], past.ty)
            return call

    rewriter = _Rewrite(mod)
    new_main = rewriter.visit_expr(main)
    builder = rewriter.builder_
    builder.update_func(mod.get_global_var("main"), new_main)
    return builder.get(), sorted(done)
