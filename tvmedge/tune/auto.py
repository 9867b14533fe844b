"""What ``compile`` does about schedules: records, then the shipped cost model's predictions, then the fallback.

``TuningOptions.search``:
- ``none``: measures nothing. Tasks with a tuning record use it; the others get the schedule the shipped cost
  model predicts best (:mod:`tvmedge.tune.predict`); a task it cannot predict gets the no-search schedule
  (parallel + vectorise). This is also what every cross target without an attached board gets.
- ``quick`` (default) / ``N``: as ``none``, then — where it can measure (this host for a native board, or a
  board behind TVM's RPC tracker) — measures the top N (quick: 8) predicted candidates of each task without a
  record, heaviest tasks first, and keeps the fastest as a record. For quick, prediction and measuring together
  stop after :data:`~tvmedge.tune.tuner.QUICK_MINUTES` (measuring gets at least ``QUICK_MIN_MEASURE``), so a
  model with many tasks does not take longer.
- ``naive``: TVM's default build, no records, no schedule (what "untuned" means in benchmarks).

``TuningOptions.gemv`` (set by ``compile`` for LM packages): matrix-vector products without a record get the GEMV
schedule (:mod:`tvmedge.tune.gemv`) instead of a predicted one, under ``none`` and ``quick`` alike.
``TuningOptions.conv`` (default on): float NCHW convolutions without a record of this CPU get the register-tile
schedule of :mod:`tvmedge.tune.conv` instead of a predicted one (or a record transferred from another CPU). The
quick search does not measure them (the written schedule beat the predicted candidates on every convolution
measured); an explicit ``--search N`` does, the written schedule first, so a record is kept only if it is faster.
``TuningOptions.int8`` (default on): the same for the integer layers of quantized models, with the dot-product
schedule of :mod:`tvmedge.tune.int8` (VNNI or AVX2 pairs on x86, SDOT on ARM). Pooling layers get the row
schedule of :mod:`tvmedge.tune.pool` with ``conv``.

The manifest's ``tuning`` block says, for every task, where its schedule came from (``sources``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from ..errors import TuningError
from .apply import schedule_module, written_database, written_schedules
from .database import RecordSet, TuningDatabase, default_log_root, record_set, target_key
from .tasks import extract_tasks, prepare
from .tuner import QUICK_MIN_MEASURE, Budget, tune_tasks

__all__ = ["TuningOptions", "auto_schedule", "measuring_budget"]

SEARCH_CHOICES = "none, quick, naive or a number of candidates per task"


@dataclass(frozen=True)
class TuningOptions:
    search: str = "quick"
    records: Optional[str] = None  # a tuning database folder; default: user's + shipped records for the target
    use_records: bool = True
    log_root: Optional[str] = None  # an explicit root replaces both the user's and the shipped records
    tracker: Optional[str] = None  # measure on boards behind TVM's RPC tracker (HOST:PORT) ...
    key: Optional[str] = None  # ... registered under this key
    predict: bool = True  # False: tasks without a record get the no-search schedule (benchmarks compare it)
    # matrix-vector products get tvmedge.tune.gemv's schedule; None: only in LM compiles (compile_lm sets True)
    gemv: Optional[bool] = None
    # float convolutions get tvmedge.tune.conv's register-tile schedule instead of a predicted one (False:
    # benchmarks compare the predicted schedules)
    conv: bool = True
    # integer convolutions and matrix products get tvmedge.tune.int8's dot-product schedule (False: benchmarks)
    int8: bool = True

    def __post_init__(self):
        text = str(self.search).lower()
        if text not in ("none", "quick", "naive") and not (text.isdigit() and int(text) > 0):
            raise TuningError(f"--search '{self.search}' is not valid; choose {SEARCH_CHOICES}")


def measuring_budget(search: str, budget: Budget, predict_seconds: float) -> Budget:
    """What is left to measure: the quick search's minutes cover its prediction too (at least
    ``QUICK_MIN_MEASURE`` of measuring stays); other budgets are the user's and stand as given."""
    if search != "quick" or budget.minutes is None:
        return budget
    return replace(budget, minutes=max(QUICK_MIN_MEASURE, budget.minutes - predict_seconds / 60))


def auto_schedule(mod, target, options: TuningOptions, *, progress: Optional[Callable[[dict], None]] = None):
    """Returns ``(module to build, tuning provenance for the manifest)`` for ``target`` (a
    :class:`~tvmedge.devices.target.CompileTarget`: the board resolved once by the caller)."""
    search = str(options.search).lower()
    if search == "naive":
        return mod, {"search": "naive", "records": None, "measured_on": None, "trials": 0,
                     "note": "TVM's default build: no schedule applied"}
    budget = Budget.parse_search(search)
    will_measure = budget is not None and (target.is_native or bool(options.tracker))
    key = target_key(target.spec)
    if options.records:
        records = RecordSet([TuningDatabase(options.records, create=False)])
    elif options.use_records:
        records = record_set(key, options.log_root)
    else:
        records = RecordSet([])
    prepared = prepare(mod, target.tvm_target)
    if options.gemv:  # products with constant weights marked: the GEMV schedule repacks those (and only those)
        from .gemv import mark_constant_weights

        prepared = mark_constant_weights(prepared)
    tasks = extract_tasks(prepared, target.tvm_target)
    recorded = {t.name for t in tasks if records.best(t.mod, target.tvm_target) is not None}
    unrecorded = [t for t in tasks if t.name not in recorded]
    written = []  # (source, database, task names): schedules written for these tasks, neither predicted nor measured
    if options.gemv and unrecorded:
        from .gemv import gemv_database

        written.append(("gemv", *gemv_database(unrecorded, target.tvm_target)))
        unrecorded = [t for t in unrecorded if t.name not in written[-1][2]]
    handwritten = {}  # task name -> its written schedule (convolution, integer layer, pooling)
    kinds = []
    if options.conv and options.predict:
        from .conv import conv_schedule
        from .pool import pool_schedule

        kinds += [("conv", conv_schedule), ("pool", pool_schedule)]
    if options.int8 and options.predict:
        from .int8 import int8_schedule

        kinds.append(("int8", int8_schedule))
    if kinds:
        # also over records transferred from another CPU: on this project's host the shipped znver5 records ran
        # light_resnet50 at 4.1x ONNX Runtime, the written schedule at 2.4x (benchmarks/results.md)
        mine = [t for t in tasks if t.name not in recorded or not records.measured_here(t.mod, target.tvm_target)]
        for source, schedule in kinds:
            found = written_schedules([t for t in mine if t.name not in handwritten], target.tvm_target, schedule)
            if found:
                written.append((source, *written_database(mine, target.tvm_target, found)))
                handwritten.update(found)
        if not (will_measure and search != "quick"):  # an explicit --search N measures them too (below)
            unrecorded = [t for t in unrecorded if t.name not in handwritten]

    prediction, model = None, None
    if options.predict and unrecorded:
        from .costmodel import load_schedule_model
        from .predict import predict_schedules

        model = load_schedule_model()
        if model is not None:
            prediction = predict_schedules(unrecorded, target.tvm_target, model, progress=progress)

    measured_on, trials, note = None, 0, None
    if budget is not None and unrecorded and not will_measure:
        note = (f"cross target {target.arch}: no board attached, so nothing was measured; schedules without a "
                f"record were written for their kind (convolutions, integer layers, pooling) or predicted by the "
                f"shipped cost model (tune on a board with `tvmedge tune --tracker`)")
    elif budget is not None and unrecorded:
        from .measure import measurer_for

        budget = measuring_budget(search, budget, prediction.seconds if prediction is not None else 0.0)

        writable = TuningDatabase(options.records or Path(options.log_root or default_log_root()) / key,
                                  create=True, label=f"user:{key}")
        builder, runner, measured_on = measurer_for(target, options.tracker, options.key)
        candidates = dict(prediction.candidates) if prediction is not None else {}
        if search != "quick":  # the written schedule first: a record must beat it
            for task in unrecorded:
                if task.name in handwritten:
                    candidates[task.name] = [handwritten[task.name]] + candidates.get(task.name, [])
        report = tune_tasks(unrecorded, writable, budget=budget, builder=builder, runner=runner, progress=progress,
                            candidates=candidates)
        trials = report.trials
        if report.interrupted:
            raise KeyboardInterrupt
        # the records just measured are in ``writable``: a database opened on the same folder before measuring
        # does not see them (its records were read when it was opened), so ``writable`` takes its place
        records = RecordSet([writable] + [d for d in records.databases if d.path != writable.path])
    scheduled, provenance = schedule_module(prepared, tasks, target.tvm_target, records, prediction=prediction,
                                            fallback=True, cost_model=model.label if model is not None else None,
                                            written=written)
    provenance.update(search=search, measured_on=measured_on, trials=trials, note=note)
    if prediction is not None:
        provenance["predict_seconds"] = round(prediction.seconds, 1)
    return scheduled, provenance
