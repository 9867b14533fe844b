"""How candidates are built and measured: an in-process builder, and local or RPC runners.

MetaSchedule's stock ``LocalBuilder`` starts a new process pool for every batch (~13 s per task even for a
handful of candidates, measured); building in this process removes that overhead. Measuring stays in
MetaSchedule's runners: ``LocalRunner`` (a persistent worker process, so a crashing candidate cannot take the
tuner down) or ``RPCRunner`` (a board behind TVM's RPC tracker).
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional

__all__ = ["in_process_builder", "local_runner", "rpc_runner", "measurer_for"]


def in_process_builder(cross_compiler: Optional[str] = None):
    """A MetaSchedule builder that builds candidates in this process.

    For a cross target the candidate is linked into a ``.so`` with ``cross_compiler`` so that a remote
    board can load it without a compiler of its own.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    def export(rt_mod) -> str:
        if cross_compiler is None:
            return default_export(rt_mod)
        import tvm

        path = os.path.join(tempfile.mkdtemp(prefix="tvmedge-cand-"), "candidate.so")
        rt_mod.export_library(path, fcompile=tvm.support.cc.cross_compiler(cross_compiler))
        return path

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs):
            results = []
            for item in build_inputs:
                try:
                    results.append(BuilderResult(export(default_build(item.mod, item.target, None)), None))
                except Exception as err:  # a candidate that does not build is a failed trial, not a crash
                    results.append(BuilderResult(None, f"in-process build failed: {err}"))
            return results

    return InProcessBuilder()


def local_runner(timeout_sec: float = 30):
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, LocalRunner

    return LocalRunner(timeout_sec=timeout_sec,
                       evaluator_config=EvaluatorConfig(number=3, repeat=1, min_repeat_ms=40))


def _alloc_from_host(session, device, args_info, alloc_repeat):
    """Candidate arguments filled with host-made random data.

    MetaSchedule's default fills them on the board with ``tvm.contrib.random``, which the runtime-only
    library a board carries (libtvm_runtime.so) does not have.
    """
    import numpy as np
    import tvm

    rng = np.random.default_rng(0)
    repeated = []
    for _ in range(alloc_repeat):
        args = []
        for kind, dtype, shape in args_info:
            if kind != "TENSOR":
                raise NotImplementedError(f"argument kind {kind}")
            value = rng.random(shape).astype(dtype) if np.dtype(dtype).kind == "f" else \
                rng.integers(0, 8, shape).astype(dtype)
            array = tvm.runtime.empty(shape, dtype, device)
            array.copyfrom(value)
            args.append(array)
        repeated.append(args)
    return repeated


def rpc_runner(tracker: str, key: str, *, timeout_sec: float = 120):
    """Measure on a board registered with TVM's RPC tracker (``HOST:PORT``) under ``key``."""
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, RPCConfig, RPCRunner

    from ..runtime.remote import parse_address

    host, port = parse_address(tracker, "--tracker")
    return RPCRunner(
        rpc_config=RPCConfig(tracker_host=host, tracker_port=port, tracker_key=key,
                             session_timeout_sec=timeout_sec),
        evaluator_config=EvaluatorConfig(number=3, repeat=1, min_repeat_ms=40),
        f_alloc_argument=_alloc_from_host,
        max_workers=1,
    )


def measurer_for(target, tracker: Optional[str] = None, key: Optional[str] = None) -> tuple:
    """``(builder, runner, where)`` that measure code for ``target`` (a
    :class:`~tvmedge.devices.target.CompileTarget`): this host for a native board, else the boards behind TVM's
    RPC tracker. TuningError when neither can (a cross board and no tracker)."""
    from ..errors import TuningError

    if tracker:
        key = key or target.name
        return in_process_builder(target.cross_compiler), rpc_runner(tracker, key), f"rpc tracker {tracker} key {key}"
    if target.is_native:
        return in_process_builder(), local_runner(), "host"
    raise TuningError(f"board {target.name} is {target.arch}: its code cannot be measured on this host; "
                      f"pass --tracker HOST:PORT --key KEY for boards running TVM's RPC server")
