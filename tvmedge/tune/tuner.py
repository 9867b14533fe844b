"""Tuning a model's tasks with MetaSchedule under a budget, resumably, into a ``TuningDatabase``.

Two phases, because every task needs a decent schedule before any task gets a second one (measured: with
300 trials in MetaSchedule's default batches of 64, only 9 of shufflenet's 37 tasks got any trial):

1. *sampling* — ``per_task`` candidates per task, measured; the fastest is kept. The candidates are the
   shipped cost model's best predictions when the caller has them (``compile``'s quick search: it measures
   what :mod:`tvmedge.tune.predict` ranked highest), else random draws from MetaSchedule's design space (its
   ``replay-trace`` strategy). Tasks go heaviest first (calls x FLOPs), so a wall-time limit cuts the light ones.
2. *search* — what is left of the budget goes, a round at a time, to the task with the largest share of the
   model's estimated latency, using MetaSchedule's evolutionary search with its XGBoost cost model.

Each measured record is appended to the database at once, so a stopped run resumes where it was: tasks
that already have ``per_task`` records are not sampled again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..errors import TuningError, first_line
from .tasks import Task

__all__ = ["Budget", "TaskResult", "TuneReport", "tune_tasks", "QUICK_MINUTES", "QUICK_MIN_MEASURE"]

# compile's quick search: prediction + measuring stop after this long, whatever the number of tasks (import,
# task extraction and the final build come on top: ~3 min in all for resnet50 here) ...
QUICK_MINUTES = 2.5
QUICK_MIN_MEASURE = 0.5  # ... but measuring gets at least this long, however long the prediction took


@dataclass(frozen=True)
class Budget:
    """How much to measure.

    per_task: candidates sampled per task in the first phase (0 = no sampling).
    total: total trials of this run, both phases; None = only the sampling phase (unless ``minutes``).
    minutes: wall-clock limit for this run; None = no limit.
    round_trials: trials per evolutionary round in the second phase.
    """

    per_task: int = 8
    total: Optional[int] = None
    minutes: Optional[float] = None
    round_trials: int = 16
    improve: bool = True  # False: stop after the sampling phase even when time is left

    @classmethod
    def parse_search(cls, value) -> Optional["Budget"]:
        """``--search none|quick|N`` -> None (no search) or a sampling-only budget of N per task."""
        text = str(value).strip().lower()
        if text == "none":
            return None
        if text == "quick":
            return cls(per_task=8, minutes=QUICK_MINUTES, improve=False)
        if text.isdigit() and int(text) > 0:
            return cls(per_task=int(text))
        raise TuningError(f"--search '{value}' must be none, quick or a positive number of candidates per task")


@dataclass
class TaskResult:
    name: str
    weight: int
    records_before: int
    trials: int = 0
    best_us: Optional[float] = None
    error: Optional[str] = None  # MetaSchedule failed on this task; it keeps the fallback schedule

    @property
    def share_us(self) -> float:
        return (self.best_us or 0.0) * self.weight


@dataclass
class TuneReport:
    database: str
    tasks: list
    trials: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    # one entry per measured batch: {"trials": so far, "task": name, "best_us": task's best, "estimated_us": model}
    history: list = field(default_factory=list)
    plot: Optional[str] = None  # the tuning curve's PNG, when one was drawn

    @property
    def estimated_us(self) -> Optional[float]:
        if any(t.best_us is None for t in self.tasks):
            return None
        return sum(t.share_us for t in self.tasks)

    def summary(self) -> dict:
        return {
            "database": self.database,
            "tasks": [{"name": t.name, "calls": t.weight, "records_before": t.records_before, "trials": t.trials,
                       "best_us": t.best_us, "error": t.error} for t in self.tasks],
            "trials": self.trials,
            "seconds": round(self.seconds, 1),
            "estimated_model_us": self.estimated_us,
            "tuned_tasks": sum(t.best_us is not None for t in self.tasks),
            "interrupted": self.interrupted,
            "history": self.history,
            **({"plot": self.plot} if self.plot else {}),
        }


Progress = Optional[Callable[[dict], None]]


def tune_tasks(tasks: list, database, *, budget: Budget, builder, runner, progress: Progress = None,
               seed: int = 0, candidates: Optional[dict] = None) -> TuneReport:
    """Tune ``tasks`` (from :func:`tvmedge.tune.tasks.extract_tasks`) into ``database`` within ``budget``.

    ``candidates`` (task name -> schedules, best first) replaces the random samples of the first phase for
    the tasks it names. Ctrl-C stops the run cleanly: what was measured is kept, and the report says
    ``interrupted``.
    """
    candidates = candidates or {}
    tasks = sorted(tasks, key=_importance, reverse=True)
    start = time.monotonic()
    deadline = start + budget.minutes * 60 if budget.minutes else None
    results = [TaskResult(t.name, t.weight, database.count(t.mod)) for t in tasks]
    for task, result in zip(tasks, results):
        result.best_us = _best_us(database, task)
    report = TuneReport(database=str(database.path), tasks=results)
    say = progress or (lambda event: None)
    planned = sum(max(0, budget.per_task - r.records_before) for r in results)
    total = budget.total if budget.total is not None else (planned if not deadline else None)

    def left() -> Optional[int]:
        return None if total is None else total - report.trials

    def out_of_time() -> bool:
        return (deadline is not None and time.monotonic() > deadline) or (left() is not None and left() <= 0)

    def run(task: Task, result: TaskResult, trials: int, phase: str, **search) -> None:
        say({"event": "task", "phase": phase, "task": result.name, "trials": report.trials, "total": total})
        try:
            given = (candidates.get(task.name) or [])[:trials] if phase == "sample" else []
            if given:
                _measure_given(task, database, given, builder=builder, runner=runner)
            if trials > len(given):  # fewer candidates than trials: random samples for the rest
                _measure(task, database, trials - len(given), builder=builder, runner=runner, seed=seed, **search)
        except Exception as err:  # a ScheduleError on one task must not cost the others their search
            result.error = first_line(err, 200)
        result.trials += trials
        report.trials += trials
        result.best_us = _best_us(database, task)
        report.history.append({"trials": report.trials, "task": result.name, "best_us": result.best_us,
                               "estimated_us": report.estimated_us})
        say({"event": "done", "phase": phase, "task": result.name, "trials": report.trials, "total": total,
             "best_us": result.best_us, "estimated_us": report.estimated_us})

    cost_models: dict = {}
    try:
        for task, result in zip(tasks, results):  # phase 1: sampling, every task once
            need = budget.per_task - result.records_before
            if need > 0 and not out_of_time():
                run(task, result, min(need, left() or need), "sample", strategy="replay-trace", cost_model="random")
        while budget.improve and not out_of_time() and (total is not None or deadline is not None):  # phase 2: evolutionary search
            ranked = sorted((r.share_us, i) for i, r in enumerate(results) if r.best_us is not None and not r.error)
            if not ranked:
                break
            index = ranked[-1][1]
            if index not in cost_models:
                from tvm.s_tir.meta_schedule.cost_model import XGBModel

                cost_models[index] = XGBModel(num_warmup_samples=0)
            trials = min(budget.round_trials, left() or budget.round_trials)
            run(tasks[index], results[index], trials, "search", strategy="evolutionary", cost_model=cost_models[index])
    except KeyboardInterrupt:
        report.interrupted = True
    report.seconds = time.monotonic() - start
    return report


def _measure(task: Task, database, trials: int, *, builder, runner, seed: int, strategy: str, cost_model) -> None:
    """One MetaSchedule run of ``trials`` candidates on one task, committing records to the database."""
    import logging

    from tvm.s_tir import meta_schedule as ms

    with task.target:  # RVV's schedule rules ask for the current target when the context is made
        context = ms.TuneContext(
            mod=task.mod, target=task.target, space_generator="post-order-apply", search_strategy=strategy,
            task_name=task.name, rand_state=seed, num_threads=os.cpu_count() or 1,  # "physical": ~16 s (psutil)
            logger=logging.getLogger("tvmedge.tune.metaschedule"),
        )
    ms.tune.tune_tasks(
        tasks=[context], task_weights=[float(task.weight)], work_dir=str(database.path),
        max_trials_global=trials, max_trials_per_task=trials, num_trials_per_iter=trials,
        builder=builder, runner=runner, database=database.ms_database, cost_model=cost_model,
        measure_callbacks="default", task_scheduler="round-robin",
    )


def _measure_given(task: Task, database, schedules: list, *, builder, runner) -> None:
    """Build and run the given schedules of one task, committing each measured one as a record.

    Written here because MetaSchedule's tuning loop only measures what its search strategy draws; these
    candidates were chosen beforehand (by the shipped cost model, or written for the task).
    """
    from tvm.s_tir import meta_schedule as ms

    args_info = ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])
    built = builder.build([ms.builder.BuilderInput(s.mod, task.target) for s in schedules])
    runnable = [(s, b) for s, b in zip(schedules, built) if b.error_msg is None]
    device = "cpu" if task.target.kind.name == "llvm" else task.target.kind.name  # as MetaSchedule names it
    # a schedule that repacks its weights (tvmedge.tune.conv) is built without the repack, which a compile does
    # once ahead of time (MetaSchedule's builder drops it): it is run with the repacked weights' shapes
    futures = runner.run([ms.runner.RunnerInput(b.artifact_path, device_type=device,
                                                args_info=ms.arg_info.ArgInfo.from_entry_func(s.mod, True))
                          for s, b in runnable])
    db = database.ms_database
    workload = db.commit_workload(task.mod)
    for (schedule, build), future in zip(runnable, futures):
        result = future.result()
        if result.error_msg is None and result.run_secs:
            db.commit_tuning_record(ms.database.TuningRecord(
                trace=schedule.trace, workload=workload, run_secs=result.run_secs, target=task.target,
                args_info=args_info))
        try:
            os.remove(build.artifact_path)
        except OSError:
            pass


def _importance(task: Task) -> float:
    """Calls x FLOPs of a task: the order in which a time-limited search serves tasks."""
    try:
        from tvm.s_tir.analysis import estimate_tir_flops

        return float(task.weight) * float(estimate_tir_flops(task.mod))
    except Exception:  # FLOPs cannot be estimated (e.g. opaque calls): count calls only
        return float(task.weight)


def _best_us(database, task: Task) -> Optional[float]:
    best = database.best(task.mod, task.target)
    return None if best is None else best * 1e6
