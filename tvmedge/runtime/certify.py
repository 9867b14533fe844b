"""Certification measurements, taken where the model runs (host or board). Stdlib, numpy and the runtime only.

``measure(artifact, duration)`` loads the artifact (manifest checked first), times the load and the first
inference, then runs it back to back for ``duration`` seconds, sampling the temperature about once a second when
a reader is given. ``tvmedge.bench.certify`` turns these numbers into a pass/fail report.

>>> from tvmedge.runtime.certify import measure
>>> m = measure("out/", duration=1.0)
>>> sorted(m)[:4]
['duration_s', 'first_inference_ms', 'latency_ms', 'load_s']

On a board: ``python -m tvmedge.runtime.certify ARTIFACT --duration 60`` prints the measurements as one JSON line.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Callable, Optional

from ..errors import TvmedgeError

__all__ = ["measure", "read_thermal_zones", "summarize_latencies"]


def read_thermal_zones(root: str = "/") -> Optional[Callable[[], float]]:
    """A reader of the hottest ``<root>/sys/class/thermal/thermal_zone*/temp`` in degC, or None when there is none."""
    zones = sorted(glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*/temp")))
    if not zones:
        return None

    def read() -> float:
        values = []
        for zone in zones:
            try:
                with open(zone) as handle:
                    values.append(int(handle.read().strip()) / 1000.0)
            except (OSError, ValueError):
                continue  # some zones report EIO when idle
        if not values:
            raise OSError("no thermal zone could be read")
        return max(values)

    return read


def measure(artifact, duration: float = 60.0, read_temp: Optional[Callable[[], float]] = None,
            sample_every: float = 1.0, seed: int = 0) -> dict:
    """Load time, first-inference latency and a sustained run of ``duration`` seconds.

    Returns a JSON-ready dict: ``load_s``, ``first_inference_ms``, ``runs``, ``duration_s``, ``latency_ms``
    (p50, p99, mean, max and the medians of the first and last quarter), ``temperatures`` (``[seconds since start, degC]`` pairs; empty without a
    reader). Raises the loader's errors (ArtifactError for a tampered artifact, ...).
    """
    import tvm  # noqa: F401  imported before the clock starts: the load time is the model's, not Python's

    from .inputs import random_inputs
    from .loader import load

    start = time.perf_counter()
    model = load(artifact)
    load_s = time.perf_counter() - start
    feed = random_inputs(model.inputs, seed)
    _, stats = model.timed_run(feed, repeat=0)
    temperatures, latencies = [], []

    def sample(now: float) -> None:
        if read_temp is None:
            return
        try:
            temperatures.append([round(now - begin, 3), float(read_temp())])
        except (OSError, ValueError, TvmedgeError):
            pass

    begin = time.perf_counter()
    sample(begin)
    next_sample = begin + sample_every
    while True:
        t0 = time.perf_counter()
        if t0 - begin >= duration:
            break
        model.run(feed)
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1e3)
        if t1 >= next_sample:
            sample(t1)
            next_sample = t1 + sample_every
    end = time.perf_counter()
    sample(end)
    result = {"load_s": load_s, "first_inference_ms": stats.first_ms, "runs": len(latencies),
              "duration_s": end - begin, "latency_ms": summarize_latencies(latencies), "temperatures": temperatures}
    from .pipeline import is_pipelined

    if is_pipelined(model.manifest):  # what a throughput plan is for: inputs streaming through the stages
        result["pipeline"] = _pipelined_throughput(model, feed, max(1.0, duration / 4))
    return result


def _pipelined_throughput(model, feed, seconds: float) -> dict:
    """Inputs per second through the stage pipeline for about ``seconds`` (after the sequential sustained run)."""
    from .pipeline import PipelineExecutor

    with PipelineExecutor(model) as pipe:
        pipe.run_many([feed])
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            pipe.run_many([feed] * 16)
            count += 16
        elapsed = time.perf_counter() - start
        return {"inputs": count, "seconds": elapsed, "throughput_ips": count / elapsed,
                "executions": [e.describe() for e in pipe.executions]}


def summarize_latencies(latencies: list) -> dict:
    """p50/p99/mean of the sustained runs, and the median of the first and last quarter (throttling shows as drift)."""
    if not latencies:
        return {}
    ordered = sorted(latencies)
    quarter = max(1, len(latencies) // 4)
    pick = lambda values, q: sorted(values)[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p50": pick(ordered, 0.5), "p99": pick(ordered, 0.99), "mean": sum(latencies) / len(latencies),
            "max": ordered[-1], "first_quarter_p50": pick(latencies[:quarter], 0.5),
            "last_quarter_p50": pick(latencies[-quarter:], 0.5)}


def main(argv=None) -> int:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m tvmedge.runtime.certify",
                                     description="Take certification measurements of an artifact on this machine.")
    parser.add_argument("artifact")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--sysfs-root", default="/", help="where /sys/class/thermal is looked up")
    parser.add_argument("--no-thermal", action="store_true", help="do not read temperatures (an emulated board's "
                        "sensors are the host's)")
    args = parser.parse_args(argv)
    try:
        reader = None if args.no_thermal else read_thermal_zones(args.sysfs_root)
        result = measure(args.artifact, args.duration, reader)
    except TvmedgeError as err:
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
