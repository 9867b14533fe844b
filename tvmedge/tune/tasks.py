"""Tuning tasks: the fused TIR functions of a Relax module, as MetaSchedule extracts them.

Compile and tune prepare the module the same way (decompose, legalize, fuse), so the workloads a tuning
run records are exactly the ones compile looks up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Task", "prepare", "extract_tasks"]


@dataclass
class Task:
    """One tunable function: its name, its IRModule (the workload) and how often the model calls it."""

    name: str
    mod: object  # tvm.IRModule holding one PrimFunc "main"
    weight: int
    target: object  # tvm.target.Target


def prepare(mod, target):
    """Legalize and fuse a Relax module (TVM's zero pipeline) under ``target``: the form tuning keys on."""
    import tvm
    from tvm import relax

    with target:
        return tvm.transform.Sequential([
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.get_pipeline("zero"),
        ])(mod)


def extract_tasks(prepared_mod, target) -> list:
    """The module's tunable functions, heaviest first is not implied (the order is MetaSchedule's)."""
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks as ms_extract

    tasks = []
    for task in ms_extract(prepared_mod, target):
        if task.mod.attrs is not None and task.mod.attrs.get("tirx.is_scheduled", False):
            continue
        tasks.append(Task(name=task.task_name, mod=task.dispatched[0], weight=int(task.weight), target=task.target))
    return tasks
