"""The no-search schedule: parallelise, vectorise and unroll, without tiling and without measuring.

TVM's default CPU build applies no schedule at all (naive serial loops). MetaSchedule's own schedule rules
are reused here, restricted to the two that need no measurement to be safe (AutoInline and
ParallelizeVectorizeUnroll): one unmeasured draw from the full design space is *worse* than naive (measured,
design.md §2), while this restricted space is ~2x faster than naive. Tasks without a tuning record get it.
"""

from __future__ import annotations

__all__ = ["fallback_database"]

_SAFE_RULES = ("AutoInline", "ParallelizeVectorizeUnroll")


def fallback_database(tasks, target, seed: int = 0):
    """A MetaSchedule ``MemoryDatabase`` with one parallel+vectorised schedule per task (never persisted).

    Its records carry a huge run time so that any measured record wins in an ordered union.
    """
    from tvm.s_tir import meta_schedule as ms

    rules = [rule for rule in ms.ScheduleRule.create("llvm") if type(rule).__name__ in _SAFE_RULES]
    database = ms.database.MemoryDatabase()
    for task in tasks:
        context = ms.TuneContext(
            mod=task.mod, target=target, rand_state=seed, num_threads=1,
            space_generator=ms.space_generator.PostOrderApply(sch_rules=rules, postprocs="llvm", mutator_probs={}),
        )
        spaces = context.generate_design_space()
        if not spaces:
            continue
        schedule = spaces[0]
        if not all(postproc.apply(schedule) for postproc in context.space_generator.postprocs):
            continue
        database.commit_tuning_record(ms.database.TuningRecord(
            trace=schedule.trace,
            workload=database.commit_workload(task.mod),
            run_secs=[1e9],
            target=target,
            args_info=ms.arg_info.ArgInfo.from_prim_func(task.mod["main"]),
        ))
    return database
