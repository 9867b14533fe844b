"""What an artifact's kernels are, at compile time: the ONNX layers each kernel call computes, its FLOPs, and the
stage's memory (weights, planned activations, kernel workspace).

The runtime times kernel calls (:mod:`tvmedge.runtime.profile`) but sees only kernel symbols
(``fused_conv2d_add_relu``); this is where those calls are tied back to the model:

- The imported module's bindings are named by ONNX tensor (:func:`tvmedge.frontend.layers.layer_of_bindings`).
- :func:`kernel_calls` legalizes and fuses the stage as :func:`tvmedge.tune.tasks.prepare` does, but stops before
  ``FuseTIR`` so that each fused group's Relax bindings (and so its ONNX tensors) are still visible. ``FuseTIR``
  turns each group into one ``call_tir`` of a PrimFunc of the group's name, in the same order, so the i-th kernel
  call of the built module is the i-th group or ``call_tir`` here. The built (scheduled) module's call sequence is
  checked against it; if they differ the map is dropped, never guessed.
- FLOPs come from TVM's ``estimate_tir_flops`` on each scheduled PrimFunc.
- Activations: the sizes of the storages ``StaticPlanBlockMemory`` planned (``vm.alloc_storage`` in the lowered
  ``main``, model outputs included); weights: the constants the stage holds; workspace: the largest sum of a
  kernel's own intermediate buffers (one kernel runs at a time).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["kernel_calls", "memory_plan", "weight_bytes", "workspace_bytes", "recording_pipeline"]


def _call_tir_callee(value) -> Optional[str]:
    from tvm import relax

    if isinstance(value, relax.Call) and getattr(value.op, "name", None) == "relax.call_tir":
        return str(value.args[0].name_hint)
    return None


def _bindings(func) -> list:
    return [b for block in func.body.blocks for b in block.bindings]


def kernel_calls(stage_mod, scheduled, layer_of_var: dict, target) -> tuple:
    """``(calls, note)``: one ``{"kernel", "layers", "flops"}`` per kernel call of ``scheduled["main"]`` in order,
    ``layers`` the ONNX tensors it computes (empty when unknown); ``calls`` is None (and ``note`` says why) when
    the fused module does not line up with the scheduled one."""
    import tvm
    from tvm import relax

    # A scheduled module was legalized and fused by tvmedge.tune.tasks.prepare; an unscheduled one (--search
    # naive) is only legalized by TVM's default build pipeline (no constant folding, no fusion): mirror which.
    prepared = not scheduled.same_as(stage_mod)  # auto_schedule returns the module itself for a naive build
    with target:
        if prepared:
            legal = tvm.transform.Sequential([
                relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
                relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
            ])(stage_mod)
            fused = relax.transform.FuseOps()(legal)
        else:
            legal = tvm.transform.Sequential([relax.backend.DispatchSampling(), relax.backend.DispatchSortScan(),
                                              relax.transform.LegalizeOps()])(stage_mod)
            fused = scheduled = legal
    legal_bindings = _bindings(legal["main"])
    groups, others = [], set()  # (kernel name, original binding names); other bindings of main (kept names)
    for binding in _bindings(fused["main"]):
        value = binding.value
        callee = _call_tir_callee(value)
        if callee is not None:
            groups.append((callee, [str(binding.var.name)]))
        elif isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar) \
                and isinstance(fused[value.op], relax.Function):
            # FuseOps keeps the group's bindings but its output binding (the last) gets a new name (``gv``)
            inner = [str(b.var.name) for b in _bindings(fused[value.op])][:-1]
            groups.append((str(value.op.name_hint), inner))
        else:
            others.add(str(binding.var.name))
    claimed = {n for _, names in groups for n in names} | others
    for kernel, names in groups:  # find each group's output binding: the first unclaimed one reading the group
        known = set(names)
        for b in legal_bindings:
            name = str(b.var.name)
            if name in claimed or not known:
                continue
            if any(str(v.name) in known for v in relax.analysis.free_vars(b.value)):
                names.append(name)
                claimed.add(name)
                break
    built = [c for c in (_call_tir_callee(b.value) for b in _bindings(scheduled["main"])) if c]
    if [k for k, _ in groups] != built:
        return None, (f"the fused module's {len(groups)} kernel calls do not line up with the built module's "
                      f"{len(built)}; no layer map")
    flops: dict = {}
    calls = []
    for kernel, names in groups:
        if kernel not in flops:
            flops[kernel] = _flops(scheduled, kernel)
        layers = list(dict.fromkeys(layer_of_var[n] for n in names if n in layer_of_var))
        calls.append({"kernel": kernel, "layers": layers, "flops": flops[kernel]})
    return calls, None


def _flops(mod, kernel: str) -> Optional[float]:
    import tvm
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(tvm.IRModule({"main": mod[kernel]})))
    except Exception:  # noqa: BLE001 (TVM cannot count some loops, e.g. data-dependent ones): unknown, not zero
        return None


def recording_pipeline(store: dict):
    """TVM's default Relax build pipeline followed by a pass that keeps the lowered module in ``store["mod"]``
    (what :func:`memory_plan` reads)."""
    import tvm
    from tvm import relax

    @tvm.transform.module_pass(opt_level=0, name="tvmedge.RecordLowered")
    def record(mod, _ctx):
        store["mod"] = mod
        return mod

    return tvm.transform.Sequential([relax.get_pipeline("default"), record])


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
    import re

    if dtype == "bool":
        return 1
    match = re.search(r"(\d+)(?:x(\d+))?$", dtype)
    if not match:
        return 4
    bits = int(match.group(1)) * int(match.group(2) or 1)
    return max(1, bits // 8)
