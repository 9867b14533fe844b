"""What ``compile`` does about schedules: look up records, run the quick search where it can measure, fall back.

``TuningOptions.search``:
- ``quick`` (default) / ``N``: tasks without records get N (quick: 8) measured candidates each — on this host
  for a native board; a cross board without an attached board cannot be measured here (emulated timings mean
  nothing), so it uses the records for its target, else the no-search schedule, and the manifest says so.
- ``none``: records if any, else the no-search schedule (parallel + vectorise); nothing is measured.
- ``naive``: TVM's default build, no records, no schedule (what "untuned" means in benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import TuningError
from .apply import schedule_module
from .database import TuningDatabase, default_log_root, target_key
from .tasks import extract_tasks, prepare
from .tuner import Budget, tune_tasks

__all__ = ["TuningOptions", "auto_schedule"]

SEARCH_CHOICES = "none, quick, naive or a number of candidates per task"


@dataclass(frozen=True)
class TuningOptions:
    search: str = "quick"
    records: Optional[str] = None  # a tuning database folder; default: <log root>/<target key>/
    use_records: bool = True
    log_root: Optional[str] = None
    tracker: Optional[str] = None  # measure on boards behind TVM's RPC tracker (HOST:PORT) ...
    key: Optional[str] = None  # ... registered under this key

    def __post_init__(self):
        text = str(self.search).lower()
        if text not in ("none", "quick", "naive") and not (text.isdigit() and int(text) > 0):
            raise TuningError(f"--search '{self.search}' is not valid; choose {SEARCH_CHOICES}")


def auto_schedule(mod, target, options: TuningOptions, *, progress: Optional[Callable[[dict], None]] = None):
    """Returns ``(module to build, tuning provenance for the manifest)`` for ``target`` (a
    :class:`~tvmedge.devices.target.CompileTarget`: the board resolved once by the caller)."""
    search = str(options.search).lower()
    if search == "naive":
        return mod, {"search": "naive", "records": None, "measured_on": None, "trials": 0,
                     "note": "TVM's default build: no schedule applied"}
    budget = Budget.parse_search(search)
    will_measure = budget is not None and (target.is_native or bool(options.tracker))
    database = None
    if options.records:
        database = TuningDatabase(options.records, create=False)
    elif options.use_records:
        folder = Path(options.log_root or default_log_root()) / target_key(target.spec)
        if will_measure or folder.is_dir():  # a lookup alone must not leave empty databases behind
            database = TuningDatabase(folder, create=will_measure)
    prepared = prepare(mod, target.tvm_target)
    tasks = extract_tasks(prepared, target.tvm_target)
    measured_on, trials, note = None, 0, None
    if budget is not None and tasks and not will_measure:
        note = (f"cross target {target.arch}: no board attached to measure on, so no search ran "
                f"(records for this target were used where present; tune on a board with `tvmedge tune --tracker`)")
    elif budget is not None and database is not None and tasks:
        from .measure import measurer_for

        builder, runner, measured_on = measurer_for(target, options.tracker, options.key)
        report = tune_tasks(tasks, database, budget=budget, builder=builder, runner=runner, progress=progress)
        trials = report.trials
        if report.interrupted:
            raise KeyboardInterrupt
    scheduled, provenance = schedule_module(prepared, tasks, target.tvm_target, database, fallback=True)
    provenance.update(search=search, measured_on=measured_on, trials=trials, note=note)
    return scheduled, provenance
