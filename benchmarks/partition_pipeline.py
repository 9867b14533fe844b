"""Measured, not only predicted (issue 5 §6): this host's cores as units, the throughput plan run as a pipeline.

1. A device graph of this host with each of its (first two) cores as one CPU unit (``core0``, ``core1``),
   written as a board YAML; peaks are x86-host's figures split per core (not tuned to any result).
2. ``compile --partition throughput`` for that board (one library per stage) and, as the baseline, the
   ordinary single-library build for ``x86-host``; both with ``--search none`` (same schedule rules, no
   measurement) so that only the partitioning differs.
3. Each execution mode runs in its own process (TVM's thread pools must not linger between modes) over the same
   stream of inputs:

   - ``single-2t``: the single library, TVM's thread pool on both cores (the normal way to use the host);
   - ``single-1t``: the single library, one thread pinned to core 0;
   - ``stages-2t``: the multi-partition artifact, stages one after another (``Model.run``), 2-thread pool;
   - ``pipeline``: the runtime's :class:`tvmedge.runtime.pipeline.PipelineExecutor` (what ``run``, ``serve`` and
     ``certify`` use for throughput-partitioned artifacts): one thread per stage, pinned to its unit's core with
     its own one-thread TVM pool, bounded queues, tensors handed over without copies.

   ``single-2t`` sets TVM's pool to two threads explicitly (:class:`tvmedge.runtime.execution.Execution`);
   ``single-default`` is tvmedge's default pool, a thread per physical core (TVM's own x86 default, half the
   logical CPUs, gave one thread on this 2-vCPU host when partition_pipeline.md was measured). Every mode's outputs for the first inputs are checked
   against the first mode's.
4. ``--search quick``: both builds get the same tuning budget, ``compile``'s quick search (8 measured
   candidates per task) into empty databases of their own, instead of ``none``.

    .venv/bin/python benchmarks/partition_pipeline.py [--model M.onnx] [-n 200] [--algorithm pipeline] [--workdir DIR]
        [--search none|quick]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHECKED = 8  # inputs whose outputs are compared between modes

BOARD = """\
# This host seen as a device graph of its cores (benchmarks/partition_pipeline.py). Per-core figures are
# x86-host.yaml's split in two (16 FP32 FLOP/cycle/vCPU at 2.5 GHz = 40 GFLOP/s; 20 GB/s shared DRAM);
# a hand-off between cores is a queue put/get of a tensor that stays in shared memory (a few us).
name: host-2core
description: "this host, each core one unit"
arch: x86_64
target: {{kind: llvm, mcpu: host, num-cores: 1}}
cross_compiler: null
compute_units:
  - {{name: core0, kind: cpu, cores: 1, freq_ghz: 2.5, peak_gops: {{fp32: 40, int8: 80}}, mem_bandwidth_gbps: 20,
     ops: all, target: {{kind: llvm, mcpu: host, num-cores: 1}}}}
  - {{name: core1, kind: cpu, cores: 1, freq_ghz: 2.5, peak_gops: {{fp32: 40, int8: 80}}, mem_bandwidth_gbps: 20,
     ops: all, target: {{kind: llvm, mcpu: host, num-cores: 1}}}}
links:
  - {{src: core0, dst: core1, bandwidth_gbps: 20, latency_us: 5, sync_us: {sync}}}
"""


def default_model() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"


def stream(specs, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [{s.name: rng.random(s.shape).astype(s.dtype) for s in specs} for _ in range(n)]


# ---------------------------------------------------------------------------------------------------------
# measuring (child process)


def measure(mode: str, artifact: str, n: int, warmup: int, out: str) -> dict:
    from tvmedge.runtime.execution import Execution
    from tvmedge.runtime.loader import load

    cpus = sorted(os.sched_getaffinity(0))
    if mode == "single-1t":
        Execution(threads=1, cpus=(cpus[0],)).apply()
    elif mode in ("single-2t", "stages-2t", "single-2t-records"):
        Execution(threads=2, cpus=tuple(cpus[:2])).apply()
    model = load(artifact)
    inputs = stream(model.inputs, n + warmup)
    threads_before = len(os.listdir("/proc/self/task"))
    result = {"mode": mode, "n": n, "stages": model.stage_count}
    if mode != "pipeline":
        outputs = []
        for x in inputs[:warmup]:
            model.run(x)
        start = time.perf_counter()
        for i, x in enumerate(inputs[warmup:]):
            y = model.run(x)
            if i < CHECKED:
                outputs.append(y)
        elapsed = time.perf_counter() - start
    else:
        outputs, elapsed, peak = pipeline(model, inputs, warmup)
        result["os_threads_while_running"] = peak
    result["throughput_ips"] = n / elapsed
    result["os_threads"] = {"before": threads_before, "after": len(os.listdir("/proc/self/task"))}
    np.savez(out, **{f"{i}:{k}": v for i, y in enumerate(outputs) for k, v in y.items()})
    return result


def pipeline(model, inputs, warmup):
    """The runtime's pipeline executor over the stream -> (first outputs, seconds for the timed inputs, most OS
    threads seen)."""
    from tvmedge.runtime.pipeline import PipelineExecutor

    with PipelineExecutor(model) as pipe:
        pipe.run_many(inputs[:warmup])
        start = time.perf_counter()
        outputs = pipe.run_many(inputs[warmup:])
        elapsed = time.perf_counter() - start
        peak = len(os.listdir("/proc/self/task"))
    return outputs[:CHECKED], elapsed, peak


# ---------------------------------------------------------------------------------------------------------
# driving (parent process)


def build(model: Path, workdir: Path, sync_us: float, algorithm=None, search: str = "none"):
    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    board = workdir / "host-2core.yaml"
    board.write_text(BOARD.format(sync=sync_us))
    # No shipped tuning records for either build: the repository ships records for the 2-core host target only,
    # which would favour the single library (the stage libraries target one core each). With --search quick each
    # build gets the same budget (8 measured candidates per task) into an empty database of its own.
    def tuning(name):
        if search == "none":
            return TuningOptions(search="none", use_records=False)
        return TuningOptions(search=search, log_root=str(workdir / f"records-{name}"))

    t0 = time.perf_counter()
    multi = api.compile(model, str(board), out=workdir / "multi", tuning=tuning("multi"), plan="throughput",
                        algorithm=algorithm)
    single = api.compile(model, "x86-host", out=workdir / "single", tuning=tuning("single"))
    # Reference only: what `tvmedge compile --target x86-host` gives by default (shipped records where present).
    tuned = api.compile(model, "x86-host", out=workdir / "single-records", tuning=TuningOptions(search="none"))
    return multi, single, tuned, time.perf_counter() - t0


def run_mode(mode, artifact, n, warmup, workdir) -> tuple:
    out = workdir / f"{mode}.npz"
    proc = subprocess.run([sys.executable, __file__, "--measure", mode, "--artifact", str(artifact), "-n", str(n),
                           "--warmup", str(warmup), "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    with np.load(out) as data:
        outputs = {k: data[k] for k in data.files}
    return json.loads(proc.stdout.strip().splitlines()[-1]), outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("-n", type=int, default=200, help="inputs in the timed stream")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sync-us", type=float, default=5.0, help="hand-off cost between cores in the YAML")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--algorithm", default=None,
                        help="throughput partitioner (default: balance; 'pipeline' = contiguous stages)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode (best and median reported)")
    parser.add_argument("--search", default="none", help="schedule search of both builds: none or quick")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--artifact", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.artifact, args.n, args.warmup, args.out)))
        return
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("this benchmark needs at least two cores")
    model = args.model or default_model()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tvmedge-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    multi, single, tuned, build_s = build(model, workdir, args.sync_us, args.algorithm, args.search)
    plan = multi.manifest.plan
    print(f"model {model.name}; built in {build_s:.0f} s into {workdir}")
    print(f"plan ({plan.algorithm}): " + " | ".join(
        f"stage{s.index} {s.unit} {len(s.ops)} ops {s.predicted['total_ms']:.3f} ms" for s in plan.stages))
    pred = plan.predicted
    print(f"predicted: {pred['throughput_ips']:.1f} inputs/s pipelined (bottleneck {pred['bottleneck_unit']}), "
          f"latency {pred['latency_ms']:.3f} ms; unit loads {pred['unit_load_ms']}, DRAM {pred['dram_ms']:.3f} ms")
    modes = [("single-2t", single.path), ("single-default", single.path), ("single-1t", single.path),
             ("stages-2t", multi.path), ("pipeline", multi.path), ("single-2t-records", tuned.path)]
    for name, artifact in (("single", single), ("multi", multi)):
        stages = artifact.manifest.plan.stages if artifact.manifest.plan else [None]
        trials = [(s.tuning if s else artifact.manifest.tuning) or {} for s in stages]
        print(f"{name}: search {args.search}, {sum(t.get('trials') or 0 for t in trials)} trials measured, "
              f"{sum(t.get('tuned') or 0 for t in trials)}/{sum(t.get('tasks') or 0 for t in trials)} tasks tuned")
    print(f"single-2t-records: {tuned.manifest.tuning.get('tuned')}/{tuned.manifest.tuning.get('tasks')} tasks from "
          f"{tuned.manifest.tuning.get('records')}")
    results, reference = {}, None
    for _ in range(args.repeats):
        for mode, artifact in modes:
            result, outputs = run_mode(mode, artifact, args.n, args.warmup, workdir)
            if reference is None:
                reference = outputs
            for key, value in reference.items():
                np.testing.assert_allclose(outputs[key], value, rtol=1e-4, atol=1e-5, err_msg=f"{mode} {key}")
            results.setdefault(mode, []).append(result)
    base = float(np.median([r["throughput_ips"] for r in results["single-2t"]]))
    print(f"\n| mode | inputs/s (median of {args.repeats}) | best | vs single-2t | OS threads |")
    print("|---|---:|---:|---:|---:|")
    for mode, rows in results.items():
        ips = [r["throughput_ips"] for r in rows]
        print(f"| {mode} | {np.median(ips):.1f} | {max(ips):.1f} | {np.median(ips) / base:.2f}x | "
              f"{rows[-1].get('os_threads_while_running', rows[-1]['os_threads']['after'])} |")
    measured = float(np.median([r["throughput_ips"] for r in results["pipeline"]]))
    print(f"pipeline measured {measured:.1f} inputs/s vs predicted {pred['throughput_ips']:.1f} "
          f"(measured/predicted {measured / pred['throughput_ips']:.2f}); vs single-2t {measured / base:.2f}x; "
          f"outputs of every mode equal single-2t's for the first {CHECKED} inputs")
    ort = onnxruntime_ips(model, args.n)
    print(f"ONNX Runtime (2 threads, same process kind): {ort:.1f} inputs/s; pipeline / ORT "
          f"{measured / ort:.2f}, single-2t / ORT {base / ort:.2f}")


def onnxruntime_ips(model: Path, n: int) -> float:
    """ONNX Runtime's throughput on the same input stream (2 intra-op threads), for the ratio."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    from tvmedge.frontend.onnx import input_specs
    import onnx

    specs = input_specs(onnx.load(str(model)))
    inputs = stream(specs, n + 3)
    for x in inputs[:3]:
        session.run(None, x)
    start = time.perf_counter()
    for x in inputs[3:]:
        session.run(None, x)
    return n / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
