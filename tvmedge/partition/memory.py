"""How much memory a model needs, from what TVM plans for it: weights, activations, kernel workspace.

- Activations: the storages Relax's ``StaticPlanBlockMemory`` planned, i.e. the ``vm.alloc_storage`` calls of
  the lowered ``main`` (model outputs included; storages are reused across tensors whose lifetimes do not
  overlap, so this is the run's activation footprint, not the sum of all tensors).
- Weights: the constants ``main`` holds, each counted once.
- Workspace: the largest total of one kernel's own intermediate buffers (one kernel runs at a time).

The compiler records these for every artifact (the manifest's ``build.memory``); :func:`planned_memory` gives the
same figures without building, for ``targets rank``'s fit.
"""

from __future__ import annotations

import re

__all__ = ["planned_memory", "memory_plan", "weight_bytes", "workspace_bytes"]


def planned_memory(mod, target="llvm") -> dict:
    """Legalize, fuse and plan ``mod`` (an imported Relax module) as a build would, without generating code ->
    ``{"weight_bytes", "activation_bytes", "workspace_bytes", "storages"}``."""
    import tvm
    from tvm import relax

    from ..tune.tasks import prepare

    target = tvm.target.Target(target) if isinstance(target, str) else target
    prepared = prepare(mod, target)
    with target:
        lowered = relax.get_pipeline("default")(prepared)
    return {"weight_bytes": weight_bytes(prepared), "workspace_bytes": workspace_bytes(prepared),
            **memory_plan(lowered)}


def memory_plan(lowered) -> dict:
    """``{"activation_bytes", "storages"}``: the storages the VM allocates per run of the lowered ``main`` (after
    ``StaticPlanBlockMemory``, outputs included); ``activation_bytes`` is None when a size is not static."""
    from tvm import relax

    sizes = []

    def visit(expr):
        if isinstance(expr, relax.Call) and getattr(expr.op, "name", None) in ("relax.vm.alloc_storage",
                                                                               "relax.memory.alloc_storage"):
            shape = expr.args[0]
            try:
                sizes.append(int(shape.values[0]))
            except (AttributeError, TypeError, IndexError):
                sizes.append(None)

    relax.analysis.post_order_visit(lowered["main"], visit)
    total = None if any(s is None for s in sizes) else sum(sizes)
    return {"activation_bytes": total, "storages": len(sizes)}


def weight_bytes(mod) -> int:
    """Bytes of the constants (weights) ``main`` holds, each counted once."""
    from tvm import relax
    from tvm.ir.expr import Constant  # TVM 0.27: Relax constants are tvm.ir Constants

    seen = {}

    def visit(expr):
        data = getattr(expr, "value", None)  # a tensor constant's value is a runtime Tensor (IntImm: an int)
        if isinstance(expr, Constant) and hasattr(data, "shape") and expr not in seen:
            count = 1
            for d in data.shape:
                count *= int(d)
            seen[expr] = count * _itemsize(str(data.dtype))

    relax.analysis.post_order_visit(mod["main"], visit)
    return int(sum(seen.values()))


def workspace_bytes(mod) -> int:
    """The largest total of one kernel's own buffers (allocated inside the PrimFunc, not its arguments)."""
    from tvm import tirx

    largest = 0
    for _, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc):
            largest = max(largest, sum(_buffer_bytes(b) for b in _allocated_buffers(func.body)))
    return largest


def _allocated_buffers(stmt) -> list:
    # TVM 0.27's Python API has no TIR statement visitor; the statement kinds that hold others are few.
    found, stack = [], [stmt]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        found.extend(getattr(node, "alloc_buffers", None) or ())
        if hasattr(node, "buffer") and type(node).__name__ == "AllocBuffer":
            found.append(node.buffer)
        seq = getattr(node, "seq", None)
        if seq is not None:
            stack.extend(seq)
        for attr in ("body", "block", "then_case", "else_case"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (int, float, str)):
                stack.append(child)
    return found


def _buffer_bytes(buffer) -> int:
    count = 1
    for d in buffer.shape:
        try:
            count *= int(d)
        except TypeError:
            return 0
    return count * _itemsize(str(buffer.dtype))


def _itemsize(dtype: str) -> int:
    if dtype == "bool":
        return 1
    match = re.search(r"(\d+)(?:x(\d+))?$", dtype)
    if not match:
        return 4
    bits = int(match.group(1)) * int(match.group(2) or 1)
    return max(1, bits // 8)
