"""The 12 metrics of the hardware evaluation matrix (issue 7 §3): keys, units and meaning.

A board may declare any of them in its YAML (``metrics:``, with the data sheet as source); ``tvmedge bench``
(:mod:`tvmedge.bench.matrix`) measures them on a machine.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS"]


@dataclass(frozen=True)
class Metric:
    """One row of the matrix: a key, its unit, and what it means."""

    key: str
    unit: str
    description: str
    higher_is_better: bool


METRICS = (
    Metric("peak_gflops_fp32", "GFLOP/s", "fp32 dense matmul throughput (all cores)", True),
    Metric("peak_int8_gops", "GOP/s", "int8 dense matmul throughput (dot-product / VNNI / NPU)", True),
    Metric("gflops_per_watt", "GFLOP/s/W", "fp32 matmul throughput per watt of package power", True),
    Metric("memory_bandwidth", "GB/s", "DRAM copy bandwidth (bytes read + written)", True),
    Metric("memory_capacity", "GB", "RAM visible to the OS", True),
    Metric("storage_read_latency", "ms", "4 KiB random read from a file not in the page cache", False),
    Metric("storage_read_throughput", "MB/s", "sequential read of a file not in the page cache", True),
    Metric("model_load", "ms", "tvmedge.runtime.load of an artifact, manifest verification included", False),
    Metric("first_inference", "ms", "first run after load (lazy set-up included)", False),
    Metric("latency_p50_p99", "ms", "steady-state latency, median (value) and 99th percentile (p99)", False),
    Metric("throughput", "inferences/s", "back-to-back inferences on one stream", True),
    Metric("energy_per_query", "mJ", "package energy per inference (RAPL / powercap)", False),
)
