"""Tuning tasks: the fused TIR functions of a Relax module, as MetaSchedule extracts them.

Compile and tune prepare the module the same way (decompose, legalize, fuse), so the workloads a tuning
run records are exactly the ones compile looks up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Task", "prepare", "extract_tasks", "load_tensor_intrinsics"]


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


def load_tensor_intrinsics() -> None:
    """Import TVM's tensor intrinsics (which MetaSchedule imports on its first TuneContext) in seconds, not minutes.

    The intrinsics are ~250 TVMScript functions parsed at import. TVMScript's decorators call ``inspect.stack()``,
    and for every frame whose file does not exist — the ``<frozen importlib._bootstrap>`` frames that are on the
    stack during any import — ``inspect`` scans all of ``sys.modules`` (~1,100 modules once TVM is loaded) looking
    for the frame's module: measured 55-130 s on this machine's 2 shared cores, paid by every compile. The
    decorators need source lines only for the frames of real files, so during this one import ``inspect.stack``
    skips the source lookup for the others (measured: 8 s). Nothing else changes: afterwards ``inspect.stack`` is
    the standard one again, and a second call does nothing.
    """
    import inspect
    import os
    import sys

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return

    def stack(context: int = 1) -> list:
        frame, infos = sys._getframe(1), []
        while frame is not None:
            filename = frame.f_code.co_filename
            if os.path.exists(filename):
                infos.append(inspect.FrameInfo(frame, *inspect.getframeinfo(frame, context)))
            else:
                infos.append(inspect.FrameInfo(frame, filename, frame.f_lineno, frame.f_code.co_name, None, None))
            frame = frame.f_back
        return infos

    standard, inspect.stack = inspect.stack, stack
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401  (registers the intrinsics)
    finally:
        inspect.stack = standard


def extract_tasks(prepared_mod, target) -> list:
    """The module's tunable functions, heaviest first is not implied (the order is MetaSchedule's)."""
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks as ms_extract

    load_tensor_intrinsics()
    tasks = []
    for task in ms_extract(prepared_mod, target):
        if task.mod.attrs is not None and task.mod.attrs.get("tirx.is_scheduled", False):
            continue
        func = task.dispatched[0]["main"]
        if func.attrs is not None and func.attrs.get("tirx.is_scheduled", False):
            continue  # a hand-scheduled kernel (e.g. MatMulNBits'): MetaSchedule checks only the module's attrs
        tasks.append(Task(name=task.task_name, mod=task.dispatched[0], weight=int(task.weight), target=task.target))
    return tasks
