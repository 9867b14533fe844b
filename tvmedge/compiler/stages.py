"""The stages an artifact is built as: one library per stage (a single library is the one-stage case).

Without a plan the imported module is one stage for the board's main CPU (``model.so``).
``compile --partition latency|throughput`` partitions the imported module
(:func:`tvmedge.partition.report.partition_ops`) and cuts it at the plan's stage boundaries, each stage for its
unit's TVM target (``stage0.so``, ``stage1.so`` ..., the plan in ``manifest.json``). Either way
:func:`tvmedge.compiler.artifact.build_artifact` builds the stages the same way, and the runtime
(:class:`tvmedge.runtime.loader.Model`) runs them in order, handing tensors over by name.

Why the cut is made in Relax, not in ONNX
-----------------------------------------
The plan places *Relax* ops (the bindings of ``main`` that :func:`tvmedge.partition.opgraph.extract_ops`
reads; ``Op.var`` names each one). TVM's ONNX importer keeps no link from a Relax binding back to the ONNX
node it came from, and one ONNX node often becomes several Relax ops (Conv with bias -> conv2d + reshape + add;
Clip -> isnan/where/maximum/minimum), so cutting the ONNX graph with ``onnx.utils.Extractor`` would need a
guessed mapping and could not honour a boundary that falls inside one ONNX node. Cutting the Relax function
itself is exact: every stage gets precisely the ops the plan gave its unit, and the stage sub-modules reuse the
already folded and imported module (no second import). How:

- ``main``'s bindings are taken in order (the op graph's topological order). A binding that computes an op
  goes to that op's stage; any other binding (tuple access, an identity broadcast) goes with the op before it.
- Bindings that depend on constants only (e.g. Clip's ``where(isnan(6.0), inf, 6.0)``) are copied into every
  stage that reads them rather than shipped between stages.
- A stage's inputs are the tensors it reads but does not compute (model inputs or earlier stages' results);
  its outputs are the tensors it computes that later stages or the model's result read. Each stage function
  returns a tuple of its outputs; they are named by their Relax variable (``lv12``) in the manifest.

Units and fallbacks
-------------------
A CPU unit's stage is built for that unit's own target (rk3588: ``cortex-a76`` vs ``cortex-a55`` ``mcpu``).
Two kinds of unit cannot be built for *and run* here, and their stages are built for the host CPU instead,
marked ``"fallback": "cpu"`` with the reason in the manifest's plan:

- ``target: null`` (the Rockchip NPU): TVM has no code generator; the plan's cost is what the NPU would take,
  the artifact runs those ops on the CPU.
- a GPU (Mali ``opencl``): TVM can generate OpenCL, but the tvmedge runtime drives only ``cpu`` devices and
  neither this host nor the emulated board has an OpenCL driver, so such a library could not be run or tested.

The runtime runs stages one after another in the calling thread (what the *latency* objective prices); the
throughput objective's pipelined execution (a thread per stage, inputs streaming through) is
:class:`tvmedge.runtime.pipeline.PipelineExecutor`, measured by ``benchmarks/partition_pipeline.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..devices.target import CompileTarget
from ..errors import ConfigError, PartitionError
from ..runtime.manifest import TensorSpec

__all__ = ["StageModule", "StagePlan", "single_stage", "partition_setup", "plan_stages", "split_module",
           "stage_targets"]


@dataclass
class StageModule:
    """One stage's Relax module, the tensors it reads and writes (by name, in call / return order) and what its
    library is built for."""

    index: int
    mod: object  # tvm.IRModule with one Relax function "main"
    inputs: list  # of TensorSpec (model inputs keep their names; intermediates are Relax variable names)
    outputs: list  # of TensorSpec
    target: Optional[CompileTarget] = None  # what the library is built for
    unit: Optional[str] = None  # the compute unit the plan placed it on (None: no plan, the board's main CPU)
    ops: list = field(default_factory=list)
    built_for: Optional[str] = None  # unit whose target the library uses
    fallback: Optional[str] = None  # "cpu" when the plan's unit cannot be built for / run
    reason: Optional[str] = None
    predicted: Optional[dict] = None  # the plan's cost of the stage (ms)


@dataclass
class StagePlan:
    """The imported module cut into stages, before they are built. ``partition`` (objective, algorithm,
    predicted costs, ...: the rest of the stored plan) is None for a single library."""

    target: CompileTarget  # the board's resolved target (each stage has its own: a unit's, or this one)
    stages: list  # of StageModule
    outputs: list  # the model's outputs by tensor name
    partition: Optional[dict] = None

    @property
    def partitioned(self) -> bool:
        return self.partition is not None


@dataclass
class StageTarget:
    """Which unit a stage was placed on and what it is actually built for."""

    unit: str
    target: CompileTarget  # the unit's target (or the fallback CPU's), resolved once per unit
    built_for: str  # unit whose target the library uses
    fallback: Optional[str] = None  # "cpu" when the plan's unit cannot be built for / run
    reason: Optional[str] = None


def single_stage(imported, target: CompileTarget) -> StagePlan:
    """The whole imported module as one stage for the board's main CPU."""
    return StagePlan(target, [StageModule(0, imported.mod, list(imported.inputs), list(imported.outputs), target)],
                     [spec.name for spec in imported.outputs])


def partition_setup(target: CompileTarget, objective: str, costs: str = "learned") -> tuple:
    """``(device graph, cost model)`` for partitioning over ``target``'s board: checked before the (slow) import.

    Raises
    ------
    ConfigError
        Unknown objective or cost correction, or a board without compute units to place ops on.
    """
    from ..devices.graph import DeviceGraph
    from ..partition.cost import CostModel
    from ..partition.report import OBJECTIVES

    if objective not in OBJECTIVES:
        raise ConfigError(f"--partition '{objective}' is not valid; choose from: {', '.join(OBJECTIVES)}")
    return DeviceGraph.from_board(target.board), CostModel(costs)


def plan_stages(imported, target: CompileTarget, devices, cost_model, *, objective: str,
                algorithm: Optional[str] = None, progress: Optional[Callable[[str], None]] = None) -> StagePlan:
    """Partition ``imported`` over ``devices`` (``target``'s board: :func:`partition_setup`) with
    :func:`tvmedge.partition.report.partition_ops` and cut it into the plan's stages, each with its unit's
    resolved target."""
    from ..partition.opgraph import extract_ops
    from ..partition.report import partition_ops

    progress = progress or (lambda message: None)
    if imported.quantized_weights is not None:
        raise ConfigError("--partition does not support quantized models yet; compile without --partition")
    ops = extract_ops(imported.mod, Path(str(imported.source_path)).stem)
    if not ops.ops:
        raise PartitionError(f"{imported.source_path}: the model has no operators to place (only constants)")
    progress(f"partitioning over {target.name}'s {devices.number_of_nodes()} units ({objective})")
    report = partition_ops(ops, devices, objective=objective, cost_model=cost_model, algorithm=algorithm)
    plan = report.plan
    stages, output_names = split_module(imported.mod, ops, plan)
    targets = stage_targets(target, devices, [s.unit for s in stages])
    for stage, planned in zip(stages, plan.stages):
        placed = targets[stage.unit]
        stage.target, stage.built_for = placed.target, placed.built_for
        stage.fallback, stage.reason = placed.fallback, placed.reason
        stage.predicted = {"compute_ms": float(planned.compute_us / 1e3),
                           "transfer_in_ms": float(planned.transfer_in_us / 1e3),
                           "total_ms": float(planned.total_us / 1e3)}
    summary = plan.summary()
    partition = {"objective": objective, "algorithm": plan.algorithm, "board": target.name, "host": plan.host,
                 "correction": plan.correction, "predicted": summary["predicted"],
                 "assignment": dict(plan.assignment), "notes": tuple(dict.fromkeys(report.notes + plan.notes))}
    return StagePlan(target, stages, output_names, partition)


def split_module(mod, ops, plan) -> tuple:
    """Cut ``mod["main"]`` at the plan's stage boundaries -> ``(stages, model output tensor names)``.

    Raises
    ------
    PartitionError
        The function's shape is not what the importer produces (non-unique variable names, a tuple crossing a
        stage boundary, a model output that is not computed by an op).
    """
    import tvm
    from tvm import relax

    mod = relax.transform.ToNonDataflow()(mod)  # stage boundaries become function params: plain Vars
    func = mod["main"]
    body = func.body
    bindings = [b for block in body.blocks for b in block.bindings]
    names = [_name(p) for p in func.params] + [_name(b.var) for b in bindings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PartitionError(f"cannot cut the model: Relax variable names are not unique ({', '.join(duplicates[:5])})")
    stage_of_op = {p.op: p.stage for p in plan.placements}
    stage_of_var = {op.var: stage_of_op[op.name] for op in ops.ops}
    n_stages = len(plan.stages)

    # Which bindings depend on constants only (copied into each stage that reads them).
    params = set(func.params)
    const_vars, assigned = set(), {}
    current = 0
    for b in bindings:
        free = relax.analysis.free_vars(b.value)
        name = _name(b.var)
        if name in stage_of_var:
            current = stage_of_var[name]
            assigned[b.var] = current
        elif all(v in const_vars for v in free) and not any(v in params for v in free):
            const_vars.add(b.var)
        else:
            assigned[b.var] = current
    binding_of = {b.var: b for b in bindings}

    result = body.body
    out_vars = list(result.fields) if isinstance(result, relax.Tuple) else [result]
    for v in out_vars:
        if not isinstance(v, relax.Var) or v not in assigned:
            raise PartitionError(f"cannot cut the model: output {v} is not computed by an op of the plan")

    readers: dict = {}  # var -> set of stages reading it
    for b in bindings:
        if b.var in const_vars:
            continue
        for v in relax.analysis.free_vars(b.value):
            readers.setdefault(v, set()).add(assigned[b.var])

    stages = []
    for k in range(n_stages):
        own = [b for b in bindings if assigned.get(b.var) == k]
        needed_consts = set()
        stack = [v for b in own for v in relax.analysis.free_vars(b.value) if v in const_vars]
        while stack:
            v = stack.pop()
            if v not in needed_consts:
                needed_consts.add(v)
                stack.extend(u for u in relax.analysis.free_vars(binding_of[v].value) if u in const_vars)
        chosen = [b for b in bindings if b.var in needed_consts or assigned.get(b.var) == k]
        defined = {b.var for b in chosen}
        inputs = []
        for b in chosen:
            for v in relax.analysis.free_vars(b.value):
                if v not in defined and v not in inputs:
                    inputs.append(v)
        outputs = [b.var for b in own
                   if any(s > k for s in readers.get(b.var, ())) or b.var in out_vars]
        for v in inputs + outputs:
            if not isinstance(v.ty, relax.TensorType):
                raise PartitionError(f"cannot cut the model between stages: {_name(v)} is a {type(v.ty).__name__}, "
                                     f"not a tensor")
        ret = relax.Tuple(outputs)
        attrs = dict(func.attrs) if func.attrs is not None else {}
        attrs["num_input"] = len(inputs)
        stage_func = relax.Function(inputs, relax.SeqExpr([relax.BindingBlock(chosen)], ret),
                                    ret_ty=relax.TupleType([v.ty for v in outputs]))
        for key, value in attrs.items():
            stage_func = stage_func.with_attr(key, value)
        sub = tvm.IRModule({gv: f for gv, f in mod.functions.items() if _name(gv) != "main"})
        sub["main"] = stage_func
        sub = relax.transform.Normalize()(sub)
        sub = relax.transform.ConvertToDataflow(min_size=1)(sub)  # fusion works on dataflow blocks
        sub = relax.transform.DeadCodeElimination(["main"])(sub)
        stage = plan.stages[k]
        stages.append(StageModule(k, sub, [_spec(v) for v in inputs], [_spec(v) for v in outputs], unit=stage.unit,
                                  ops=list(stage.ops)))
    return stages, [_name(v) for v in out_vars]


def _name(var) -> str:
    return str(getattr(var, "name", None) or var.name_hint)


def _spec(var) -> TensorSpec:
    ty = var.ty
    return TensorSpec(_name(var), tuple(int(d) for d in ty.shape.values), str(ty.dtype))


def stage_targets(target: CompileTarget, devices, units) -> dict:
    """unit name -> :class:`StageTarget`: what each unit's stages are compiled for (see module docstring). Each
    distinct unit target is resolved once; a unit with the board's own target reuses ``target``."""
    host = devices.unit(devices.host)
    placed = {}
    for name in dict.fromkeys(units):
        unit = devices.unit(name)
        if unit.kind == "cpu" and unit.target is not None and unit.target.get("kind") == "llvm":
            placed[name] = StageTarget(name, target.for_unit(unit.target), name)
            continue
        if unit.target is None:
            reason = (f"TVM has no code generator for {name} ({unit.model or unit.kind}); its ops run on the "
                      f"{host.name} CPU instead (the plan's predicted cost is the {name}'s, not the fallback's)")
        else:
            reason = (f"{name} needs the {unit.target.get('kind')} runtime, which the tvmedge runtime does not "
                      f"drive (CPU only) and neither this host nor the emulated board provides; its ops run on the "
                      f"{host.name} CPU instead (the plan's predicted cost is the {name}'s, not the fallback's)")
        placed[name] = StageTarget(name, target.for_unit(host.target), host.name, fallback="cpu", reason=reason)
    return placed
