"""Per-kernel times of a run, measured where the model runs (this machine or a board): ``profile(model, inputs)``.

TVM 0.27's Relax VM has no profiler any more (``VirtualMachine.profile`` and ``tvm.runtime.profiling`` are gone
from the wheel); what it keeps is ``VirtualMachine.set_instrument``: a function called before and after every
``Call`` instruction with the callee's symbol. The profiler times each call between those two points with
``time.perf_counter`` (so each time includes the instrument's own few microseconds), runs the model ``repeat``
times and keeps the median of every call site. Kernel calls are the library's PrimFuncs; calls into the VM's
builtins (``vm.builtin.*``: allocation, reshape views, tuple handling) are summed separately.

The i-th call of a kernel symbol in a run is the i-th call site of that kernel in ``main``, which is how
:class:`~tvmedge.runtime.layers.LayerMap` (written at compile time) ties it to ONNX layers.

Board-side command (stdlib + numpy + TVM's runtime, like ``python -m tvmedge.runtime``)::

    python -m tvmedge.runtime.profile out/ [--inputs x.npz] [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from typing import Optional

from ..errors import TvmedgeError, first_line

__all__ = ["profile", "peak_rss_bytes", "main"]

BUILTIN_PREFIXES = ("vm.builtin.", "vm.", "relax.", "runtime.")


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux ``ru_maxrss`` is in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def profile(model, inputs, *, repeat: int = 10, warmup: int = 1) -> dict:
    """Run ``model`` (a :class:`~tvmedge.runtime.loader.Model`) ``warmup + repeat`` times on ``inputs`` with every
    VM call timed -> ``{"repeat", "total_ms", "stages": [{"index", "calls": [{"kernel", "ms"}], "builtin_ms",
    "builtin_calls", "total_ms"}], "peak_rss_bytes", "rss_before_bytes"}``.

    ``total_ms`` (per stage and overall) is the median wall time of an instrumented run: kernel times, builtin
    times and the VM's own dispatch add up to it. A run under the instrument is slower than a plain one (two
    Python calls per VM call: that overhead lands in the stage's dispatch time, not in the kernels' times);
    ``plain_ms`` is the median of as many plain runs.
    """
    rss_before = peak_rss_bytes()
    repeat = max(1, int(repeat))
    arrays = model.to_device(inputs)
    records = []  # per stage: list of runs, each a list of (symbol, seconds)
    stage_wall = []
    for index, vm in enumerate(model.stage_vms()):
        current: list = []
        starts: list = []

        def instrument(func, symbol, before_run, ret_value, *args, _current=current, _starts=starts):
            if before_run:
                _starts.append(time.perf_counter())
            else:
                _current.append((str(symbol), time.perf_counter() - _starts.pop()))
            return 0

        vm.set_instrument(instrument)
        records.append((current, starts))
        stage_wall.append([])
    try:
        tensors = dict(arrays)
        for run in range(warmup + repeat):
            tensors = dict(arrays)
            for index in range(model.stage_count):
                current, _ = records[index]
                current.clear()
                start = time.perf_counter()
                tensors.update(model.run_stage(index, tensors))
                for name in model.manifest.stages()[index].output_names:
                    tensors[name].numpy()  # include the copy-out the stage's consumer would pay (sync point)
                wall = time.perf_counter() - start
                if run >= warmup:
                    stage_wall[index].append((wall, list(current)))
    finally:
        for vm in model.stage_vms():
            vm.set_instrument(None)  # plain runs again
    stages = [_summarise(index, runs) for index, runs in enumerate(stage_wall)]
    plain = []
    for _ in range(repeat):  # the same runs without the instrument: what the profiler itself costs
        start = time.perf_counter()
        model.run(inputs)
        plain.append((time.perf_counter() - start) * 1e3)
    return {"repeat": repeat, "total_ms": sum(s["total_ms"] for s in stages), "stages": stages,
            "plain_ms": statistics.median(plain), "peak_rss_bytes": peak_rss_bytes(), "rss_before_bytes": rss_before}


def _summarise(index: int, runs: list) -> dict:
    """Median per call site over the runs (call sites are the calls' positions in a run)."""
    calls_per_run = [[(s, t) for s, t in calls if not s.startswith(BUILTIN_PREFIXES)] for _, calls in runs]
    builtins_per_run = [[t for s, t in calls if s.startswith(BUILTIN_PREFIXES)] for _, calls in runs]
    sites = calls_per_run[0]
    if any([s for s, _ in run] != [s for s, _ in sites] for run in calls_per_run):
        raise TvmedgeError(f"stage {index}: the kernels called differ between runs; cannot profile per call")
    calls = [{"kernel": symbol, "ms": statistics.median(run[i][1] for run in calls_per_run) * 1e3}
             for i, (symbol, _) in enumerate(sites)]
    return {"index": index, "calls": calls,
            "builtin_ms": statistics.median(sum(b) for b in builtins_per_run) * 1e3,
            "builtin_calls": len(builtins_per_run[0]),
            "total_ms": statistics.median(wall for wall, _ in runs) * 1e3}


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tvmedge.runtime.profile",
                                     description="Per-kernel times of a tvmedge artifact.")
    parser.add_argument("artifact")
    parser.add_argument("--inputs", action="append", default=[], metavar="[NAME=]FILE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        from . import inputs as io
        from .loader import load

        model = load(args.artifact)
        feed = io.read_inputs(args.inputs, model.inputs) if args.inputs else io.random_inputs(model.inputs, args.seed)
        report = profile(model, feed, repeat=args.repeat)
    except TvmedgeError as err:
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    except (ImportError, OSError) as err:
        print(f"Error: ToolchainError: cannot start TVM's runtime ({type(err).__name__}): {first_line(err)}",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        for stage in report["stages"]:
            for call in stage["calls"]:
                print(f"stage{stage['index']} {call['kernel']}: {call['ms']:.4f} ms")
        print(f"total {report['total_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
