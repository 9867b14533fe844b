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
