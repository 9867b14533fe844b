"""Applying tuning records (and the no-search fallback) to a model before it is built."""

from __future__ import annotations

from .fallback import fallback_database

__all__ = ["schedule_module"]


def schedule_module(prepared, tasks, target, database=None, *, fallback: bool = True) -> tuple:
    """Give every task its best record, else the parallel+vectorise schedule.

    Parameters
    ----------
    prepared : tvm.IRModule
        The module after :func:`tvmedge.tune.tasks.prepare` (legalized and fused).
    tasks : list of Task
        Its tasks (:func:`tvmedge.tune.tasks.extract_tasks`).
    target : tvm.target.Target
    database : TuningDatabase, optional
        Measured records; looked up first.
    fallback : bool
        Give tasks without a record the no-search schedule (False leaves TVM's naive loops).

    Returns
    -------
    (scheduled module, provenance dict for the manifest)
    """
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    tuned = [t for t in tasks if database is not None and database.best(t.mod, target) is not None]
    tuned_names = {t.name for t in tuned}
    untuned = [t for t in tasks if t.name not in tuned_names]
    layers = []
    if tuned:
        layers.append(database.ms_database)
    if fallback and untuned:
        layers.append(fallback_database(untuned, target))
    if layers:
        merged = layers[0] if len(layers) == 1 else ms.database.OrderedUnionDatabase(*layers)
        with target, merged, tvm.transform.PassContext(opt_level=3):
            prepared = relax.transform.MetaScheduleApplyDatabase()(prepared)
    provenance = {
        "records": database.path.name if database is not None else None,
        "tasks": len(tasks),
        "tuned": len(tuned),
        "fallback": len(untuned),
        "fallback_schedule": ("parallel-vectorize" if fallback else "naive") if untuned else None,
        "untuned_tasks": sorted(t.name for t in untuned),
    }
    return prepared, provenance
