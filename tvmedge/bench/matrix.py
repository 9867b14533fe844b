"""``tvmedge bench``: the 12-metric evaluation matrix (:data:`tvmedge.devices.metrics.METRICS`) measured on this
machine (``measure_host``) or as a board declares it (``declared_board``).

Every value carries a status: ``measured`` (taken here, with the method named), ``declared`` (a board's data sheet,
with its source) or ``unavailable`` (with the reason, e.g. no readable RAPL counter for energy). Nothing is
estimated silently.

>>> from tvmedge.bench.matrix import METRICS, measure_host
>>> len(METRICS)
12
>>> rows = measure_host(artifact="out/", budget_s=0.5)
>>> [(r["metric"], r["status"]) for r in rows][:2]
[('peak_gflops_fp32', 'measured'), ('peak_int8_gops', 'unavailable')]
>>> [r["status"] for r in declared_board("rk3588")][:2]     # a board's data-sheet figures (targets/rk3588.yaml)
['declared', 'declared']
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from typing import Callable, Optional

import numpy as np

from ..devices.metrics import METRICS

__all__ = ["METRICS", "STATUSES", "measure_host", "declared_board", "read_energy_uj"]

STATUSES = ("measured", "declared", "unavailable")


def _row(metric: str, status: str, value=None, method: str = "", **extra) -> dict:
    unit = next(m.unit for m in METRICS if m.key == metric)
    return {"metric": metric, "value": value, "unit": unit, "status": status, "method": method, **extra}


def read_energy_uj(root: str = "/") -> Optional[Callable[[], float]]:
    """A reader of the summed package energy counters (microjoules), or None when powercap is absent/unreadable."""
    files = sorted(glob.glob(os.path.join(root, "sys/class/powercap/*/energy_uj")))
    files = [f for f in files if os.path.basename(os.path.dirname(f)).count(":") == 1]  # packages, not sub-zones
    readable = []
    for path in files:
        try:
            with open(path) as handle:
                int(handle.read())
            readable.append(path)
        except (OSError, ValueError):
            continue
    if not readable:
        return None

    def read() -> float:
        total = 0
        for path in readable:
            with open(path) as handle:
                total += int(handle.read())
        return float(total)

    return read


def _timed_loop(fn: Callable[[], None], budget_s: float, min_runs: int = 3) -> list:
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _matmul(budget_s: float, energy: Optional[Callable[[], float]]) -> list:
    n = 1024
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)  # warm up BLAS threads
    e0, t0 = (energy() if energy else None), time.perf_counter()
    times = _timed_loop(lambda: np.matmul(a, b, out=out), budget_s)
    elapsed, e1 = time.perf_counter() - t0, (energy() if energy else None)
    flop = 2.0 * n ** 3
    best = flop / min(times) / 1e9
    rows = [_row("peak_gflops_fp32", "measured", round(best, 1),
                 f"numpy float32 matmul {n}x{n} ({np.__version__}, BLAS), best of {len(times)}")]
    rows.append(_row("peak_int8_gops", "unavailable", None,
                     "needs an int8 dot-product kernel (VNNI / sdot / an NPU SDK); numpy's int8 matmul has none, "
                     "so its figure would understate the hardware"))
    if e0 is not None and e1 is not None and e1 > e0:
        watts = (e1 - e0) / 1e6 / elapsed
        rows.append(_row("gflops_per_watt", "measured", round(flop * len(times) / elapsed / 1e9 / watts, 2),
                         f"fp32 matmul GFLOP/s over RAPL package power ({watts:.1f} W)"))
    else:
        rows.append(_row("gflops_per_watt", "unavailable", None, "no readable /sys/class/powercap energy counter"))
    return rows


def _memory(budget_s: float) -> list:
    size = 64 * 1024 * 1024
    src, dst = np.ones(size, np.uint8), np.empty(size, np.uint8)
    np.copyto(dst, src)  # fault the pages in
    times = _timed_loop(lambda: np.copyto(dst, src), budget_s)
    rows = [_row("memory_bandwidth", "measured", round(2 * size / min(times) / 1e9, 2),
                 f"numpy copy of {size >> 20} MiB (read + write counted), best of {len(times)}")]
    try:
        with open("/proc/meminfo") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("MemTotal:"))
        rows.append(_row("memory_capacity", "measured", round(kib / 1024 ** 2, 2), "MemTotal in /proc/meminfo"))
    except (OSError, StopIteration, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        rows.append(_row("memory_capacity", "measured", round(pages / 1024 ** 3, 2), "sysconf(SC_PHYS_PAGES)"))
    return rows


def _storage(directory: Optional[str], size_mb: int = 64, samples: int = 64) -> list:
    block = 4096
    drop = getattr(os, "posix_fadvise", None)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="tvmedge-bench-") as handle:
        data = os.urandom(1 << 20)
        for _ in range(size_mb):
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        fd = handle.fileno()
        evict = (lambda: drop(fd, 0, 0, os.POSIX_FADV_DONTNEED)) if drop else (lambda: None)
        evict()
        start = time.perf_counter()
        os.lseek(fd, 0, os.SEEK_SET)
        while os.read(fd, 1 << 20):
            pass
        seq = time.perf_counter() - start
        rng = np.random.default_rng(0)
        latencies = []
        for offset in rng.integers(0, size_mb * (1 << 20) // block, samples):
            evict()
            t0 = time.perf_counter()
            os.pread(fd, block, int(offset) * block)
            latencies.append((time.perf_counter() - t0) * 1e3)
    where = directory or tempfile.gettempdir()
    how = "page cache dropped with posix_fadvise(DONTNEED)" if drop else "page cache NOT dropped (no posix_fadvise)"
    return [
        _row("storage_read_latency", "measured", round(float(np.median(latencies)), 3),
             f"median of {samples} random 4 KiB preads of a {size_mb} MiB file in {where}; {how}",
             p99=round(float(np.percentile(latencies, 99)), 3)),
        _row("storage_read_throughput", "measured", round(size_mb * 1.048576 / seq, 1),
             f"sequential 1 MiB reads of a {size_mb} MiB file in {where}; {how}"),
    ]


def _model(artifact, budget_s: float, energy: Optional[Callable[[], float]]) -> list:
    keys = ("model_load", "first_inference", "latency_p50_p99", "throughput", "energy_per_query")
    if artifact is None:
        return [_row(k, "unavailable", None, "no artifact given (pass --artifact DIR, built for this machine)") for k in keys]
    import tvm  # noqa: F401  before the clock: the load time is the model's, not Python's

    from ..runtime import load
    from ..runtime.inputs import random_inputs

    t0 = time.perf_counter()
    model = load(artifact)
    load_ms = (time.perf_counter() - t0) * 1e3
    feed = random_inputs(model.inputs, 0)
    _, stats = model.timed_run(feed, repeat=0)
    e0, t0 = (energy() if energy else None), time.perf_counter()
    times = _timed_loop(lambda: model.run(feed), budget_s, min_runs=10)
    elapsed, e1 = time.perf_counter() - t0, (energy() if energy else None)
    ms = np.array(times) * 1e3
    name = os.path.basename(os.path.normpath(str(artifact)))
    rows = [
        _row("model_load", "measured", round(load_ms, 3), f"tvmedge.runtime.load({name})"),
        _row("first_inference", "measured", round(stats.first_ms, 3), f"first run of {name}"),
        _row("latency_p50_p99", "measured", round(float(np.percentile(ms, 50)), 4), f"{len(times)} runs of {name}",
             p99=round(float(np.percentile(ms, 99)), 4)),
        _row("throughput", "measured", round(len(times) / elapsed, 1), f"{len(times)} back-to-back runs of {name}"),
    ]
    if e0 is not None and e1 is not None and e1 > e0:
        rows.append(_row("energy_per_query", "measured", round((e1 - e0) / 1e3 / len(times), 4),
                         f"RAPL package energy over {len(times)} runs (includes idle cores)"))
    else:
        rows.append(_row("energy_per_query", "unavailable", None, "no readable /sys/class/powercap energy counter"))
    return rows


def measure_host(artifact=None, *, budget_s: float = 1.0, storage_dir: Optional[str] = None,
                 storage_mb: int = 64, sysfs_root: str = "/") -> list:
    """Measure the 12 metrics on this machine, in :data:`METRICS` order (about ``4 * budget_s`` + storage time).

    ``artifact`` (an artifact directory built for this machine) enables the five model metrics.
    """
    energy = read_energy_uj(sysfs_root)
    rows = _matmul(budget_s, energy) + _memory(budget_s) + _storage(storage_dir, storage_mb) + \
        _model(artifact, budget_s, energy)
    order = [m.key for m in METRICS]
    return sorted(rows, key=lambda r: order.index(r["metric"]))


def declared_board(board) -> list:
    """The 12 metrics as a board declares them in ``targets/<name>.yaml`` (``metrics:``), in :data:`METRICS` order.

    ``board`` is a :class:`~tvmedge.devices.board.Board` or anything ``load_board`` takes. A metric the YAML does
    not declare is ``unavailable``: nothing is derived or estimated here.
    """
    from ..devices.board import Board, load_board

    board = board if isinstance(board, Board) else load_board(board)
    rows = []
    for metric in METRICS:
        figure = board.metrics.get(metric.key)
        if figure is not None:
            rows.append(_row(metric.key, "declared", figure.value, figure.source or f"declared in {board.source}"))
        else:
            rows.append(_row(metric.key, "unavailable", None,
                             f"not declared for {board.name} (no vendor figure); measure it on the board "
                             f"with tvmedge bench --host"))
    return rows
