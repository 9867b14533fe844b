"""Multi-partition artifacts: the partitioner's plan built stage by stage, one library per stage.

``compile --partition latency|throughput`` imports the model once, partitions it
(:func:`tvmedge.partition.report.partition_ops`), cuts the imported Relax module at the plan's stage
boundaries, builds each stage for its unit's TVM target and writes ``stage0.so``, ``stage1.so`` ... with the
plan in ``manifest.json``. The runtime (:class:`tvmedge.runtime.loader.Model`) runs the stages in order,
handing tensors over by name.

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

The runtime runs stages one after another in the calling thread (what the *latency* objective prices). The
throughput objective's pipelined execution (a thread per stage, inputs streaming through) is measured by
``benchmarks/partition_pipeline.py``.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .. import __version__
from ..devices.board import Board
from ..errors import ConfigError, PartitionError
from ..runtime.manifest import (PARTITIONED_FORMAT_VERSION, BuildInfo, Manifest, Stage, StoredPlan, TensorSpec,
                                sha256_file)
from .artifact import Artifact, _folding_tool, check_destination
from .cross import export_library
from .lower import build_executable

__all__ = ["StageModule", "split_module", "stage_boards", "compile_partitioned"]


@dataclass
class StageModule:
    """One stage's Relax module and the tensors it reads and writes (by name, in call / return order)."""

    index: int
    unit: str
    ops: list
    mod: object  # tvm.IRModule with one Relax function "main"
    inputs: list  # of TensorSpec (model inputs keep their names; intermediates are Relax variable names)
    outputs: list  # of TensorSpec


@dataclass
class StageBuild:
    """Which unit a stage was placed on and what it is actually built for."""

    unit: str
    board: Board  # the board with its target replaced by the unit's (or the fallback CPU's)
    built_for: str  # unit whose target the library uses
    fallback: Optional[str] = None  # "cpu" when the plan's unit cannot be built for / run
    reason: Optional[str] = None
    notes: list = field(default_factory=list)


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
        stages.append(StageModule(k, stage.unit, list(stage.ops), sub, [_spec(v) for v in inputs],
                                  [_spec(v) for v in outputs]))
    return stages, [_name(v) for v in out_vars]


def _name(var) -> str:
    return str(getattr(var, "name", None) or var.name_hint)


def _spec(var) -> TensorSpec:
    ty = var.ty
    return TensorSpec(_name(var), tuple(int(d) for d in ty.shape.values), str(ty.dtype))


def stage_boards(board: Board, devices, units) -> dict:
    """unit name -> :class:`StageBuild`: what each unit's stages are compiled for (see module docstring)."""
    host = devices.unit(devices.host)
    builds = {}
    for name in dict.fromkeys(units):
        unit = devices.unit(name)
        if unit.kind == "cpu" and unit.target is not None and unit.target.get("kind") == "llvm":
            builds[name] = StageBuild(name, board.model_copy(update={"target": dict(unit.target)}), name)
            continue
        if unit.target is None:
            reason = (f"TVM has no code generator for {name} ({unit.model or unit.kind}); its ops run on the "
                      f"{host.name} CPU instead (the plan's predicted cost is the {name}'s, not the fallback's)")
        else:
            reason = (f"{name} needs the {unit.target.get('kind')} runtime, which the tvmedge runtime does not "
                      f"drive (CPU only) and neither this host nor the emulated board provides; its ops run on the "
                      f"{host.name} CPU instead (the plan's predicted cost is the {name}'s, not the fallback's)")
        builds[name] = StageBuild(name, board.model_copy(update={"target": dict(host.target)}), host.name,
                                  fallback="cpu", reason=reason)
    return builds


def compile_partitioned(model, board: Board, out, *, objective: str, input_shapes=None, tuning=None,
                        opt_level: int = 3, algorithm: Optional[str] = None, costs: str = "learned",
                        progress: Optional[Callable[[str], None]] = None, tune_progress=None) -> Artifact:
    """Partition ``model`` for ``board`` and write a multi-partition artifact to ``out`` -> ``Artifact``."""
    import tvm

    from ..devices.graph import DeviceGraph
    from ..partition.cost import CostModel
    from ..partition.opgraph import extract_ops
    from ..partition.report import OBJECTIVES, partition_ops
    from ..frontend.onnx import import_model
    from ..tune.auto import TuningOptions, auto_schedule

    if objective not in OBJECTIVES:
        raise ConfigError(f"--partition '{objective}' is not valid; choose from: {', '.join(OBJECTIVES)}")
    progress = progress or (lambda message: None)
    tuning = tuning or TuningOptions()
    out = Path(out)
    check_destination(out)
    cost_model = CostModel(costs)
    devices = DeviceGraph.from_board(board)
    progress(f"importing {Path(model).name} (check, fix shapes, fold, convert to Relax)")
    imported = import_model(model, input_shapes)
    if imported.quantized_weights is not None:
        raise ConfigError("--partition does not support quantized models yet; compile without --partition")
    ops = extract_ops(imported.mod, Path(str(model)).stem)
    if not ops.ops:
        raise PartitionError(f"{model}: the model has no operators to place (only constants)")
    progress(f"partitioning over {board.name}'s {devices.number_of_nodes()} units ({objective})")
    report = partition_ops(ops, devices, objective=objective, cost_model=cost_model, algorithm=algorithm)
    plan = report.plan
    stages, output_names = split_module(imported.mod, ops, plan)
    builds = stage_boards(board, devices, [s.unit for s in stages])
    entries, files = [], {}
    progress(f"scheduling and building {len(stages)} stage(s): " + ", ".join(
        f"stage{s.index} {len(s.ops)} ops on {s.unit}" + (f" (built for {builds[s.unit].built_for})"
                                                          if builds[s.unit].fallback else "") for s in stages))
    with tempfile.TemporaryDirectory(prefix="tvmedge-build-") as tmp:
        for stage, planned in zip(stages, plan.stages):
            build = builds[stage.unit]
            library_name = f"stage{stage.index}.so"
            scheduled, provenance = auto_schedule(stage.mod, build.board, tuning, progress=tune_progress)
            executable = build_executable(scheduled, build.board.tvm_target(), opt_level=opt_level)
            library = export_library(executable, Path(tmp) / library_name, board)
            files[library_name] = {"sha256": sha256_file(library), "bytes": library.stat().st_size}
            entries.append(Stage(
                library=library_name, inputs=tuple(stage.inputs), outputs=tuple(stage.outputs), index=stage.index,
                unit=stage.unit, built_for=build.built_for, target=build.board.tvm_target(), fallback=build.fallback,
                reason=build.reason, ops=tuple(stage.ops),
                predicted={"compute_ms": float(planned.compute_us / 1e3),
                           "transfer_in_ms": float(planned.transfer_in_us / 1e3),
                           "total_ms": float(planned.total_us / 1e3)},
                tuning=provenance))
        summary = plan.summary()
        stored = StoredPlan(
            stages=tuple(entries), outputs=tuple(output_names), objective=objective, algorithm=plan.algorithm,
            board=board.name, host=plan.host, correction=plan.correction, predicted=summary["predicted"],
            assignment=dict(plan.assignment), notes=tuple(dict.fromkeys(report.notes + plan.notes)))
        target = board.tvm_target()
        manifest = Manifest(
            board=board.name, arch=board.arch, triple=board.triple, target=target,
            inputs=list(imported.inputs), outputs=list(imported.outputs),
            library=entries[0].library, files=files,
            source_model={"file": Path(imported.source_path).name, "sha256": imported.source_sha256},
            build=BuildInfo(input_shapes=dict(sorted(imported.input_shapes.items())), opt_level=opt_level,
                            cross_compiler=board.cross_compiler, folding=_folding_tool(), partitions=len(entries)),
            tuning=entries[0].tuning if len({str(e.tuning) for e in entries}) == 1 else None,
            plan=stored, format_version=PARTITIONED_FORMAT_VERSION, tvm_version=tvm.__version__, tvmedge_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        progress(f"writing {out}/ ({len(files)} libraries + manifest.json)")
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.so"):  # a previous artifact's libraries (check_destination allowed replacing it)
            old.unlink()
        for name in files:
            shutil.move(str(Path(tmp) / name), out / name)
        manifest.write(out)
    return Artifact(out, manifest)
