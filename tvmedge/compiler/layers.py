"""What an artifact's kernels are, at compile time: the ONNX layers each kernel call computes, its FLOPs, and the
stage's memory (weights, planned activations, kernel workspace).

The runtime times kernel calls (:mod:`tvmedge.runtime.profile`) but sees only kernel symbols
(``fused_conv2d_add_relu``); this is where those calls are tied back to the model:

- The imported module's bindings are named by ONNX tensor (:func:`tvmedge.frontend.layers.layer_of_bindings`).
- :func:`kernel_calls` legalizes and fuses the stage as :func:`tvmedge.tune.tasks.prepare` does, but stops before
  ``FuseTIR`` so that each fused group's primitives are still visible; each call site claims the legal bindings
  it computes (and so their ONNX tensors). ``FuseTIR``
  turns each group into one ``call_tir`` of a PrimFunc of the group's name, in the same order, so the i-th kernel
  call of the built module is the i-th group or ``call_tir`` here. The built (scheduled) module's call sequence is
  checked against it; if they differ the map is dropped, never guessed.
- FLOPs come from TVM's ``estimate_tir_flops`` on each scheduled PrimFunc.
- Memory (:mod:`tvmedge.partition.memory`, shared with ``targets rank``): activations are the storages
  ``StaticPlanBlockMemory`` planned in the lowered module this build records, weights the stage's constants,
  workspace the largest kernel-internal buffers.
"""

from __future__ import annotations

from typing import Optional

from ..partition.memory import memory_plan, weight_bytes, workspace_bytes  # noqa: F401 (re-exported for the build)

__all__ = ["kernel_calls", "recording_pipeline", "memory_plan", "weight_bytes", "workspace_bytes"]


def _call_tir_callee(value) -> Optional[str]:
    from tvm import relax

    if isinstance(value, relax.Call) and getattr(value.op, "name", None) == "relax.call_tir":
        return str(value.args[0].name_hint)
    return None


def _callee(value) -> Optional[str]:
    """What a binding calls: a ``call_tir`` PrimFunc, or a Relax function (e.g. a quantized layer's composite)."""
    from tvm import relax

    callee = _call_tir_callee(value)
    if callee is None and isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar):
        callee = str(value.op.name_hint)
    return callee


def _bindings(func) -> list:
    return [b for block in func.body.blocks for b in block.bindings]


def kernel_calls(stage_mod, scheduled, layer_of_var: dict, target, signatures: Optional[dict] = None) -> tuple:
    """``(calls, note)``: one ``{"kernel", "layers", "flops"}`` per kernel call of ``scheduled["main"]`` in order,
    ``layers`` the ONNX tensors it computes (empty when unknown); ``calls`` is None (and ``note`` says why) when
    the fused module does not line up with the scheduled one."""
    import tvm
    from tvm import relax

    layer_of_var = _recover_rewritten(stage_mod, layer_of_var, signatures or {})
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
    # Each kernel call claims the legal bindings it computes. A call_tir left alone keeps its binding (and name).
    # A fused group's function is shared by every call site with the same structure (two identical fire modules
    # call one fused function), so its inner names are those of one site only: each call site instead claims,
    # for every primitive its function calls, the earliest unclaimed legal binding calling that primitive (both
    # modules list bindings in topological order).
    legal_bindings = [(str(b.var.name), _callee(b.value)) for b in _bindings(legal["main"])]
    claimed: set = set()
    groups = []  # (kernel name, original binding names)
    for binding in _bindings(fused["main"]):
        value = binding.value
        callee = _call_tir_callee(value)
        if callee is not None:
            groups.append((callee, [str(binding.var.name)]))
            claimed.add(str(binding.var.name))
        elif isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar) \
                and isinstance(fused[value.op], relax.Function):
            groups.append((str(value.op.name_hint), [_callee(b.value) for b in _bindings(fused[value.op])]))
    for kernel, names in groups:
        if len(names) == 1 and names[0] in claimed:
            continue
        whole = next((n for n, used in legal_bindings if used == kernel and n not in claimed), None)
        if whole is not None:  # a function main already called before fusion (a quantized layer's composite)
            names[:] = [whole]
            claimed.add(whole)
            continue
        primitives, names[:] = list(names), []
        for primitive in primitives:
            if primitive is None:
                continue
            for name, used in legal_bindings:
                if used == primitive and name not in claimed:
                    names.append(name)
                    claimed.add(name)
                    break
    built = [c for c in (_call_tir_callee(b.value) for b in _bindings(scheduled["main"])) if c]
    if [k for k, _ in groups] != [_unpacked(k) for k in built]:
        return None, (f"the fused module's {len(groups)} kernel calls do not line up with the built module's "
                      f"{len(built)}; no layer map")
    flops: dict = {}
    integer: dict = {}
    unscheduled, unscheduled_names = None, set()  # the fused functions before scheduling (counted when a
    # tensorized kernel's operations cannot be)
    calls = []
    for (_, names), kernel in zip(groups, built):
        if kernel not in flops:
            flops[kernel] = _flops(scheduled, kernel)
            integer[kernel] = _integer_reduction(scheduled[kernel])
            if flops[kernel] is None and prepared:
                if unscheduled is None:
                    with target:
                        unscheduled = relax.transform.FuseTIR()(fused)
                    unscheduled_names = {gv.name_hint for gv in unscheduled.get_global_vars()}
                if _unpacked(kernel) in unscheduled_names:
                    flops[kernel] = _flops(unscheduled, _unpacked(kernel))
        layers = list(dict.fromkeys(t for n in names if n in layer_of_var for t in _as_tuple(layer_of_var[n])))
        calls.append({"kernel": kernel, "layers": layers, "flops": flops[kernel], "integer": integer[kernel]})
    return calls, None


def _unpacked(kernel: str) -> str:
    """The fused function's name before its weights were repacked at compile time: TVM's
    ``SplitLayoutRewritePreproc`` renames a kernel whose schedule prepacks its weights (:mod:`tvmedge.tune.conv`)
    ``<name>_prepacked``."""
    return kernel[:-len("_prepacked")] if kernel.endswith("_prepacked") else kernel


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _recover_rewritten(stage_mod, layer_of_var: dict, signatures: dict) -> dict:
    """The map for what ``main`` holds now. A pass after the import (quantized weights kept quantized) replaces
    bindings, and the bindings it creates may reuse the importer's names for other values: a name whose binding
    no longer computes what it did at import (:func:`~tvmedge.frontend.layers.binding_signature`) is not trusted.
    Such a binding stands where the replaced ones stood, between the trusted bindings before and after it in the
    import's order, and is given their tensors."""
    from ..frontend.layers import binding_signature

    if not signatures:
        return layer_of_var
    order = {name: i for i, name in enumerate(signatures)}
    bindings, seen, trust = _bindings(stage_mod["main"]), set(), []
    for b in bindings:  # per binding: a created binding may even repeat a name that is still in use
        name = str(b.var.name)
        trust.append(name not in seen and signatures.get(name) == binding_signature(b))
        seen.add(name)
    trusted = {str(b.var.name) for b, ok in zip(bindings, trust) if ok}
    gone = [(order[n], layer_of_var[n]) for n in signatures if n not in trusted and n in layer_of_var]
    result = {n: t for n, t in layer_of_var.items() if n in trusted}
    previous = -1
    for position, (binding, ok) in enumerate(zip(bindings, trust)):
        name = str(binding.var.name)
        if ok:
            previous = order[name]
            continue
        following = next((order[str(b.var.name)] for b, good in zip(bindings[position + 1:], trust[position + 1:])
                          if good), None)
        inside = [(k, t) for k, t in gone if k > previous and (following is None or k < following)]
        if inside and name not in result:
            result[name] = tuple(dict.fromkeys(t for _, t in inside))
            gone = [g for g in gone if g not in inside]
    return result


def _flops(mod, kernel: str) -> Optional[float]:
    import tvm
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(tvm.IRModule({"main": mod[kernel]})))
    except Exception:  # noqa: BLE001 (TVM cannot count some loops, e.g. data-dependent ones): unknown, not zero
        return None


def _integer_reduction(func) -> bool:
    """Whether the kernel reduces 8-bit integers into int32 (a quantized layer's arithmetic)."""
    import tvm
    from tvm import s_tir
    from tvm.tirx import IterVar

    try:
        sch = s_tir.Schedule(tvm.IRModule({"main": func}))
        pending = list(sch.get_child_blocks(sch.get_sblock("root", "main")))
    except Exception:  # noqa: BLE001 - not a function TVM can walk: not known to be integer
        return False
    while pending:
        rv = pending.pop()
        block = sch.get(rv)
        if any(iv.iter_type == IterVar.CommReduce for iv in block.iter_vars) \
                and any(str(w.source.dtype) == "int32" for w in block.writes) \
                and any(str(r.source.dtype) in ("int8", "uint8") for r in block.reads):
            return True
        pending.extend(sch.get_child_blocks(rv))
    return False


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
