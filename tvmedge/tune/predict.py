"""Schedules chosen without measuring anything: MetaSchedule's evolutionary search, scored by the shipped cost model.

This is what a compile gets for a board it cannot run on (every cross target without an attached board, a CI
job) and what ``--search none`` gets: for each task, MetaSchedule samples its design space and evolves the
population exactly as in a tuning run, but the cost model is the frozen ensemble shipped in
``tvmedge/tune/models/`` (:mod:`tvmedge.tune.costmodel`) and no candidate is built or run. The best predicted
candidate becomes the task's schedule; the next ones are kept for the quick search, which (where it can
measure) measures them instead of random samples.

One rule is applied on top of the model, because it holds on every CPU and the model learned it only from the
layers it saw: a candidate whose innermost loops leave the vector unit idle (no vectorised loop of at least
``min(lanes, 4)`` elements) is not chosen while a vectorised one exists.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

__all__ = ["Effort", "Prediction", "predict_schedules", "vector_lanes", "vectorised_extent"]

_SEEN: dict = {}  # predictions made in this process (a server or a test run compiles the same layers again)
PREDICTED_SECS = 1e8  # run time stored with a predicted record: any measured record wins over it


@dataclass(frozen=True)
class Effort:
    """How hard the search looks (nothing is measured whatever the effort; it costs compile time only).

    population: candidates per generation; iterations: generations of mutation; keep: best candidates kept
    per task (the first is applied, the rest are offered to a measured search).
    """

    # 32 x 1 generation, not MetaSchedule's 2048 x 4 nor our earlier 128 x 2: measured in one run on resnet50 and
    # zfnet512 (benchmarks/results.md), 128 x 2 gave 3.47x / 4.11x ONNX Runtime, 64 x 1 3.11x / 2.48x and 32 x 1
    # 2.33x / 2.86x — the frozen model's ranking is not sharp enough for a longer search to pay — while the
    # prediction took a third of the time (resnet50: 313 s -> 110 s on the loaded machine)
    population: int = 32
    iterations: int = 1
    keep: int = 8
    seed: int = 0
    heavy_share: float = 0.9  # tasks making up this share of the model's FLOPs get the full effort ...
    light_population: int = 16  # ... the others (pooling, reshapes, small layers) a smaller one
    light_iterations: int = 1


@dataclass
class Prediction:
    database: object  # MetaSchedule MemoryDatabase: one predicted record per task
    candidates: dict = field(default_factory=dict)  # task name -> [Schedule] best first (len <= keep)
    failed: dict = field(default_factory=dict)  # task name -> why no candidate was predicted
    seconds: float = 0.0


def vector_lanes(target) -> int:
    """float32 lanes of the target's vector unit (1 when it has none), from LLVM's view of the target."""
    from tvm.target import codegen

    attrs = target.attrs
    triple = str(attrs.get("mtriple", "") or "")
    mattr = [str(a) for a in (attrs.get("mattr") or [])]
    if triple.startswith("riscv") and "+v" not in mattr:
        return 1  # LLVM reports a 128-bit width for RISC-V targets without the V extension
    return max(1, int(codegen.llvm_get_vector_width(target)) // 32)


def vectorised_extent(schedule) -> int:
    """The longest vectorised loop of a candidate (0 when nothing is vectorised), from the ``Vectorize``
    instructions of its trace (TVM 0.27 has no Python visitor over TIR statements)."""
    longest = 0
    for inst in schedule.trace.insts:
        if inst.kind.name != "Vectorize":
            continue
        try:
            extent = schedule.get(inst.inputs[0]).extent
            longest = max(longest, int(extent.value if hasattr(extent, "value") else extent))
        except Exception:  # the loop was transformed after it was vectorised: not countable, not vectorised
            continue
    return longest


def predict_schedules(tasks: list, target, model, *, effort: Effort = Effort(),
                      progress: Optional[Callable[[dict], None]] = None) -> Prediction:
    """Pick a schedule for each task with ``model`` (a :class:`~tvmedge.tune.costmodel.ScheduleModel`);
    nothing is built or run."""
    from tvm.s_tir import meta_schedule as ms

    from .tasks import load_tensor_intrinsics

    load_tensor_intrinsics()
    start = time.monotonic()
    database = ms.database.MemoryDatabase()
    prediction = Prediction(database=database)
    lanes = vector_lanes(target)
    cost_model = model.cost_model()
    say = progress or (lambda event: None)
    heavy = _heavy_tasks(tasks, effort.heavy_share)
    light = Effort(population=effort.light_population, iterations=effort.light_iterations, keep=effort.keep,
                   seed=effort.seed)
    for index, task in enumerate(tasks):
        say({"event": "predict", "task": task.name, "index": index, "total": len(tasks)})
        chosen = effort if task.name in heavy else light
        # keyed by the printed workload, not its structural hash: two workloads can be structurally equal with
        # different block names, and a trace names the blocks it schedules
        key = (hashlib.sha256(task.mod.script().encode()).hexdigest(), str(target), model.label, chosen)
        try:
            ranked = _SEEN.get(key)
            if ranked is None:  # same workload, target, model and effort: same answer (the search is seeded)
                ranked = _SEEN[key] = _search(task, target, cost_model, model, chosen, lanes)
        except Exception as err:  # a task MetaSchedule cannot handle keeps the fallback schedule
            from ..errors import first_line

            prediction.failed[task.name] = first_line(err, 200)
            continue
        if not ranked:
            prediction.failed[task.name] = "no valid candidate in the design space"
            continue
        best = ranked[0]
        database.commit_tuning_record(ms.database.TuningRecord(
            trace=best.trace, workload=database.commit_workload(task.mod), run_secs=[PREDICTED_SECS],
            target=target, args_info=ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])))
        prediction.candidates[task.name] = ranked
    prediction.seconds = time.monotonic() - start
    say({"event": "predicted", "tasks": len(tasks), "predicted": len(prediction.candidates),
         "seconds": round(prediction.seconds, 1)})
    return prediction


def _untensorized(schedule) -> bool:
    """A candidate blockized for a tensor intrinsic (x86 VNNI, ARM dot product on int8 layers) whose tensorize
    postprocessor then failed: it does not build (``VectorizeLoop before LiftStorageAlloc``), and a measured search
    would have discarded it, so the prediction must not pick it (issue 15)."""
    insts = schedule.trace.insts
    wanted = any(inst.kind.name == "Annotate" and "meta_schedule.auto_tensorize" in str(inst.attrs) for inst in insts)
    return wanted and not any(inst.kind.name == "Tensorize" for inst in insts)


def _heavy_tasks(tasks: list, share: float) -> set:
    """Names of the heaviest tasks (calls x FLOPs) that together make up ``share`` of the model's FLOPs."""
    from .tuner import _importance

    weights = sorted(((_importance(t), t.name) for t in tasks), reverse=True)
    total = sum(w for w, _ in weights) or 1.0
    heavy, covered = set(), 0.0
    for weight, name in weights:
        if covered >= share * total:
            break
        heavy.add(name)
        covered += weight
    return heavy


def _search(task, target, cost_model, model, effort: Effort, lanes: int) -> list:
    """The task's best predicted schedules, best first."""
    import numpy as np
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.feature_extractor import PerStoreFeature

    pool = max(effort.keep * 4, 32)  # more than we keep: the vector rule and dedup may drop some
    strategy = ms.search_strategy.EvolutionarySearch(
        population_size=effort.population, init_measured_ratio=0.0, init_min_unmeasured=effort.population,
        genetic_num_iters=effort.iterations, eps_greedy=0.0)
    cost_model.forget()
    with target:  # RVV's schedule rules ask for the current target when the context is made
        context = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply",
                                 search_strategy=strategy, task_name=task.name, rand_state=effort.seed,
                                 num_threads=os.cpu_count() or 1)
        context.pre_tuning(max_trials=pool, num_trials_per_iter=pool,
                           design_spaces=context.generate_design_space(),
                           database=ms.database.MemoryDatabase(), cost_model=cost_model)
        candidates = context.generate_measure_candidates() or []
        context.post_tuning()
    candidates = [c for c in candidates if not _untensorized(c.sch)]
    if not candidates:
        return []
    known = cost_model.scores
    cost_model.forget()
    fresh = [c for c in candidates if c.sch not in known]  # scored during the search: not extracted again
    if fresh:
        features = [x.numpy().astype("float32") for x in PerStoreFeature().extract_from(context, fresh)]
        known.update(zip((c.sch for c in fresh), model.predict(features)))
    scores = np.array([known[c.sch] for c in candidates])
    wanted = min(lanes, 4)
    vectorised = [vectorised_extent(c.sch) >= wanted for c in candidates] if wanted > 1 else [True] * len(candidates)
    if not any(vectorised):
        vectorised = [True] * len(candidates)  # nothing here vectorises (e.g. a scalar reduction): rank them all
    order = sorted(range(len(candidates)), key=lambda i: (not vectorised[i], -scores[i]))
    return [candidates[i].sch for i in order[:effort.keep]]
