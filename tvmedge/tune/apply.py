"""Applying schedules to a model before it is built: measured records first, then predicted, then the fallback."""

from __future__ import annotations

from .fallback import fallback_database

__all__ = ["schedule_module", "written_schedules", "written_database", "WRITTEN"]

WRITTEN = ("gemv", "conv", "int8", "pool")  # the sources of schedules written for a kind of layer


def schedule_module(prepared, tasks, target, records=None, *, prediction=None, fallback: bool = True,
                    cost_model: str = None, written=()) -> tuple:
    """Give every task a schedule and say where each came from.

    Parameters
    ----------
    prepared : tvm.IRModule
        The module after :func:`tvmedge.tune.tasks.prepare` (legalized and fused).
    tasks : list of Task
        Its tasks (:func:`tvmedge.tune.tasks.extract_tasks`).
    target : tvm.target.Target
    records : RecordSet or TuningDatabase, optional
        Measured records; a task's best record wins over anything predicted.
    prediction : Prediction, optional
        Schedules picked by the shipped cost model without measuring (:mod:`tvmedge.tune.predict`).
    fallback : bool
        Give the remaining tasks the no-search schedule (False leaves TVM's naive loops).
    cost_model : str, optional
        The cost model's label, recorded with the predicted tasks.
    written : sequence of (source, database, task names)
        Schedules written for a kind of task rather than searched: ``gemv`` (:func:`tvmedge.tune.gemv.gemv_database`)
        ``conv`` (:func:`tvmedge.tune.conv.conv_database`), ``int8`` (:mod:`tvmedge.tune.int8`) and ``pool``
        (:mod:`tvmedge.tune.pool`), for tasks without a record of this CPU; below those records, above
        transferred records (measured on another CPU) and predictions.

    Returns
    -------
    (scheduled module, provenance dict for the manifest's ``tuning`` block: counts per source and
    ``sources``, task name -> ``record`` | ``transferred`` (a record measured on another CPU of the same
    architecture) | ``gemv`` | ``conv`` | ``int8`` | ``pool`` | ``predicted`` | ``fallback`` | ``naive``)
    """
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    predicted_names = set(prediction.candidates) if prediction is not None else set()
    written_source = {name: source for source, _, names in written for name in names}
    sources = {}
    for task in tasks:
        recorded = records is not None and records.best(task.mod, target) is not None
        here = getattr(records, "measured_here", None)
        if recorded and (here is None or here(task.mod, target)):
            sources[task.name] = "record"
        elif task.name in written_source:  # a written schedule beats a record measured on another CPU
            sources[task.name] = written_source[task.name]
        elif recorded:
            sources[task.name] = "transferred"
        elif task.name in predicted_names:
            sources[task.name] = "predicted"
        else:
            sources[task.name] = "fallback" if fallback else "naive"
    # first the written schedules, of the tasks whose source they are (not of one measured since: an explicit
    # --search N measures convolutions too, and its record wins)
    layers = [_only(database, [t for t in tasks if sources[t.name] == source])
              for source, database, _ in written if source in sources.values()]
    if "record" in sources.values() or "transferred" in sources.values():
        layers.append(records.ms_database)
    if "predicted" in sources.values():
        layers.append(prediction.database)
    rest = [t for t in tasks if sources[t.name] == "fallback"]
    if rest:
        layers.append(fallback_database(rest, target))
    if layers:
        merged = layers[0] if len(layers) == 1 else ms.database.OrderedUnionDatabase(*layers)
        with target, merged, tvm.transform.PassContext(opt_level=3):
            prepared = relax.transform.MetaScheduleApplyDatabase()(prepared)
    if {"conv", "int8", "gemv"} & set(sources.values()):
        from .conv import prepack_weights

        with target, tvm.transform.PassContext(opt_level=3):
            prepared = prepack_weights(prepared)
    kinds = ("record", "transferred") + WRITTEN + ("predicted", "fallback")
    counts = {kind: sum(1 for s in sources.values() if s == kind) for kind in kinds}
    provenance = {
        "records": getattr(records, "label", None) if counts["record"] or counts["transferred"] else None,
        "tasks": len(tasks),
        "tuned": counts["record"],
        "transferred": counts["transferred"],
        "predicted": counts["predicted"],
        **{source: counts[source] for source, _, _ in written},
        "fallback": counts["fallback"],
        "fallback_schedule": ("parallel-vectorize" if fallback else "naive")
        if counts["fallback"] or not fallback else None,
        "cost_model": cost_model if counts["predicted"] else None,
        "sources": dict(sorted(sources.items())),
        "untuned_tasks": sorted(n for n, s in sources.items() if s not in WRITTEN + ("record", "transferred")),
    }
    if prediction is not None and prediction.failed:
        provenance["prediction_failed"] = dict(sorted(prediction.failed.items()))
    return prepared, provenance


def _only(database, tasks):
    """A MemoryDatabase with ``database``'s best record of each of ``tasks``."""
    from tvm.s_tir import meta_schedule as ms

    kept = ms.database.MemoryDatabase()
    for task in tasks:
        for record in database.get_top_k(database.commit_workload(task.mod), 1):
            kept.commit_tuning_record(ms.database.TuningRecord(
                trace=record.trace, workload=kept.commit_workload(task.mod), run_secs=record.run_secs,
                target=record.target, args_info=record.args_info))
    return kept


def written_schedules(tasks, target, schedule) -> dict:
    """task name -> ``schedule(task.mod, target)`` for every task it applies to (it returns None, or cannot
    transform the function: that task keeps its usual schedule)."""
    found = {}
    for task in tasks:
        try:
            sch = schedule(task.mod, target)
        except Exception:  # noqa: BLE001 - a function this schedule cannot transform keeps its usual schedule
            sch = None
        if sch is not None:
            found[task.name] = sch
    return found


def written_database(tasks, target, schedules: dict) -> tuple:
    """``(MetaSchedule MemoryDatabase holding the schedules (task name -> schedule, from
    :func:`written_schedules`) of ``tasks``, their names)``. Records carry a huge run time, like the fallback's, so
    that a measured record wins in an ordered union."""
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.MemoryDatabase()
    for task in tasks:
        if task.name in schedules:
            database.commit_tuning_record(ms.database.TuningRecord(
                trace=schedules[task.name].trace, workload=database.commit_workload(task.mod), run_secs=[1e9],
                target=target, args_info=ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])))
    return database, [t.name for t in tasks if t.name in schedules]
