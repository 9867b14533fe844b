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
   - ``pipeline``: one Python thread per stage, pinned to its unit's core with ``os.sched_setaffinity`` and
     its own TVM thread pool set to one thread on that core (``runtime.config_threadpool(-2, 1, [cpu])``: TVM's
     pool is thread-local, so each stage thread gets its own), bounded queues between the stages; the
     tensors are handed over without copies. The feeder and result collector are the main thread.

   Every mode's outputs for the first inputs are checked against ``single-2t``.

    .venv/bin/python benchmarks/partition_pipeline.py [--model M.onnx] [-n 200] [--algorithm pipeline] [--workdir DIR]
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


def configure_threads(cpus) -> None:
    import tvm

    tvm.get_global_func("runtime.config_threadpool")(-2, len(cpus), [str(c) for c in cpus])


def measure(mode: str, artifact: str, n: int, warmup: int, out: str) -> dict:
    from tvmedge.runtime.loader import load

    cpus = sorted(os.sched_getaffinity(0))
    model = load(artifact)
    inputs = stream(model.inputs, n + warmup)
    threads_before = len(os.listdir("/proc/self/task"))
    result = {"mode": mode, "n": n, "stages": model.stage_count}
    if mode == "single-1t":
        os.sched_setaffinity(0, {cpus[0]})
        configure_threads([cpus[0]])
    if mode in ("single-2t", "single-1t", "stages-2t", "single-2t-records"):
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
        outputs, elapsed, busy, peak = pipeline(model, inputs, warmup, cpus)
        result["stage_busy_ms"] = [b / n * 1e3 for b in busy]
        result["os_threads_while_running"] = peak
    result["throughput_ips"] = n / elapsed
    result["os_threads"] = {"before": threads_before, "after": len(os.listdir("/proc/self/task"))}
    np.savez(out, **{f"{i}:{k}": v for i, y in enumerate(outputs) for k, v in y.items()})
    return result


def pipeline(model, inputs, warmup, cpus):
    """One thread per stage pinned to its unit's core.

    Returns (first outputs, seconds for the timed inputs, busy seconds per stage, most OS threads seen).
    """
    plan = model.manifest.plan
    core = {u: cpus[i % len(cpus)] for i, u in enumerate(sorted({s.unit for s in plan.stages}))}
    count = model.stage_count
    queues = [queue.Queue(maxsize=2) for _ in range(count + 1)]
    busy = [0.0] * count
    timed_from = warmup
    errors = []

    def worker(k):
        cpu = core[plan.stages[k].unit]
        os.sched_setaffinity(0, {cpu})  # this thread only (Linux: pid 0 = the calling thread)
        configure_threads([cpu])  # this thread's own TVM pool: one thread on that core
        while True:
            item = queues[k].get()
            if item is None:
                queues[k + 1].put(None)
                return
            index, tensors = item
            try:
                t0 = time.thread_time()  # CPU time of this thread: stages sharing a core do not double-count
                if k == 0:
                    tensors = model.to_device(tensors)
                produced = model.run_stage(k, tensors)
                if index >= timed_from:
                    busy[k] += time.thread_time() - t0
            except Exception as err:  # report, then drain
                errors.append(err)
                queues[k + 1].put(None)
                return
            tensors = dict(tensors)
            tensors.update(produced)
            queues[k + 1].put((index, tensors))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(count)]
    for t in threads:
        t.start()
    names = list(plan.outputs)
    specs = [s.name for s in model.outputs]
    outputs, start, peak = [], None, [0]

    def feed():
        for i, x in enumerate(inputs):
            queues[0].put((i, x))
        queues[0].put(None)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    while True:
        item = queues[count].get()
        if item is None:
            break
        index, tensors = item
        peak[0] = max(peak[0], len(os.listdir("/proc/self/task")))
        values = {spec: tensors[name].numpy() for spec, name in zip(specs, names)}
        if index == warmup - 1 or (warmup == 0 and start is None):
            start = time.perf_counter()
        if warmup <= index < warmup + CHECKED:
            outputs.append(values)
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return outputs, elapsed, busy, peak[0]


# ---------------------------------------------------------------------------------------------------------
# driving (parent process)


def build(model: Path, workdir: Path, sync_us: float, algorithm=None):
    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    board = workdir / "host-2core.yaml"
    board.write_text(BOARD.format(sync=sync_us))
    # No tuning records for either build: the repository ships records for the 2-core host target only, which
    # would favour the single library (the stage libraries target one core each) and hide what partitioning does.
    tuning = TuningOptions(search="none", use_records=False)
    t0 = time.perf_counter()
    multi = api.compile(model, str(board), out=workdir / "multi", tuning=tuning, plan="throughput",
                        algorithm=algorithm)
    single = api.compile(model, "x86-host", out=workdir / "single", tuning=tuning)
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
    multi, single, tuned, build_s = build(model, workdir, args.sync_us, args.algorithm)
    plan = multi.manifest.plan
    print(f"model {model.name}; built in {build_s:.0f} s into {workdir}")
    print(f"plan ({plan.algorithm}): " + " | ".join(
        f"stage{s.index} {s.unit} {len(s.ops)} ops {s.predicted['total_ms']:.3f} ms" for s in plan.stages))
    pred = plan.predicted
    print(f"predicted: {pred['throughput_ips']:.1f} inputs/s pipelined (bottleneck {pred['bottleneck_unit']}), "
          f"latency {pred['latency_ms']:.3f} ms; unit loads {pred['unit_load_ms']}, DRAM {pred['dram_ms']:.3f} ms")
    modes = [("single-2t", single.path), ("single-1t", single.path), ("stages-2t", multi.path),
             ("pipeline", multi.path), ("single-2t-records", tuned.path)]
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
    busy = np.median([r["stage_busy_ms"] for r in results["pipeline"]], axis=0)
    print("\npipeline stage CPU time per input (ms, median): "
          + ", ".join(f"stage{i} {b:.3f} (predicted {s.predicted['total_ms']:.3f})"
                      for i, (b, s) in enumerate(zip(busy, plan.stages))))
    loads = {}
    for b, s in zip(busy, plan.stages):
        loads[s.unit] = loads.get(s.unit, 0.0) + b
    print("measured unit loads (ms CPU per input): " + ", ".join(f"{u} {v:.2f} (predicted "
          f"{pred['unit_load_ms'].get(u, 0):.2f})" for u, v in loads.items()))
    measured = float(np.median([r["throughput_ips"] for r in results["pipeline"]]))
    print(f"pipeline measured {measured:.1f} inputs/s vs predicted {pred['throughput_ips']:.1f} "
          f"(measured/predicted {measured / pred['throughput_ips']:.2f}); vs single-2t {measured / base:.2f}x; "
          f"outputs of every mode equal single-2t's for the first {CHECKED} inputs")


if __name__ == "__main__":
    main()
