"""Which cores run a model and with how many threads: ``--threads N``, ``--cores big|little|UNIT|0-3``.

On big.LITTLE chips the choice decides the latency (rk3588: 4x Cortex-A76 + 4x Cortex-A55). The clusters come
from the board YAML (a CPU unit's ``cpus:`` list, Linux CPU numbers), which the compiler copies into the
manifest's ``build.cpu_clusters`` (``{unit: {"cpus": [...], "role": "big"|"little"|null}}``), so a board needs
no YAML to resolve ``--cores big``. Without ``--threads``/``--cores`` TVM's thread pool has a thread per physical
core the process may run on (:func:`size_default_pool`).

How it is applied, in the calling thread (TVM's thread pool is per thread, :class:`.pipeline.PipelineExecutor`
gives each stage its own): ``os.sched_setaffinity`` restricts the thread (and the workers it then starts) to the
cores, and TVM's ``runtime.config_threadpool`` restarts the pool with ``threads`` workers pinned one per core
(``kSpecifyOneCorePerThread``) or sharing the cores (``kSpecifyThreadShareAllCore``) when the counts differ.

>>> from tvmedge.runtime.execution import Execution
>>> Execution.parse(threads=2, cores="0-1").describe()
'2 threads on cores 0-1'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError

__all__ = ["Execution", "parse_cores", "available_cpus", "physical_cores", "size_default_pool"]

_ONE_CORE_PER_THREAD = -2  # TVM's ThreadGroup::kSpecifyOneCorePerThread
_SHARE_ALL_CORES = -3  # TVM's ThreadGroup::kSpecifyThreadShareAllCore


# Taken once, at import: once a thread is pinned its own affinity is narrower than what the process may use.
_PROCESS_CPUS = tuple(sorted(os.sched_getaffinity(0)))


def available_cpus() -> list:
    """The CPU numbers this process may run on (as when tvmedge's runtime was imported)."""
    return list(_PROCESS_CPUS)


def physical_cores(cpus) -> int:
    """How many physical cores ``cpus`` (Linux CPU numbers) are on: hyper-thread siblings count once (sysfs
    topology; ``len(cpus)`` where it cannot be read)."""
    cores = set()
    for cpu in cpus:
        try:
            cores.add(open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read().strip())
        except OSError:
            return len(cpus)
    return len(cores)


def size_default_pool() -> None:
    """Give TVM's default thread pool a thread per physical core this process may use, unless the user sized it
    (``TVM_NUM_THREADS`` / ``OMP_NUM_THREADS``).

    Needed on x86 only: there TVM takes half the logical CPUs, assuming every core runs two hyper-threads, so a
    machine without SMT (many VMs, Intel N100-class mini PCs) ran on half its cores — this 2-vCPU host on one.
    TVM reads the variable when it starts a pool, so this runs when tvmedge's runtime is imported, before any
    model runs."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64") or "TVM_NUM_THREADS" in os.environ \
            or "OMP_NUM_THREADS" in os.environ:
        return
    os.environ["TVM_NUM_THREADS"] = str(max(1, physical_cores(available_cpus())))


def parse_cores(spec: str, clusters: Optional[dict] = None) -> tuple:
    """``"big"``, ``"little"``, a cluster (unit) name, or CPU numbers (``"0-3"``, ``"0,2,4-5"``) -> sorted CPU
    numbers. ConfigError naming the choices when ``spec`` is none of them."""
    clusters = clusters or {}
    text = spec.strip().lower()
    for name, cluster in clusters.items():
        if text in (name.lower(), str(cluster.get("role") or "").lower()):
            return tuple(sorted(int(c) for c in cluster["cpus"]))
    cpus = set()
    try:
        for part in text.split(","):
            first, sep, last = part.partition("-")
            cpus.update(range(int(first), int(last) + 1) if sep else [int(first)])
    except ValueError:
        names = [f"{n} ({c['role']})" if c.get("role") else n for n, c in clusters.items()]
        choices = (", ".join(names) + " or " if names else "") + "CPU numbers like 0-3 or 0,2"
        where = "" if names else " (the board declares no CPU clusters: a unit's cpus: list in its YAML)"
        raise ConfigError(f"--cores '{spec}' is not valid; choose {choices}{where}") from None
    if not cpus or min(cpus) < 0:
        raise ConfigError(f"--cores '{spec}' names no CPU")
    return tuple(sorted(cpus))


def _ranges(cpus) -> str:
    cpus, parts, start = sorted(cpus), [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            parts.append(f"{start}-{c}" if c != start else str(c))
            start = None
    return ",".join(parts)


@dataclass(frozen=True)
class Execution:
    """How many threads run a model (None: TVM's default) and on which cores (None: any)."""

    threads: Optional[int] = None
    cpus: Optional[tuple] = None

    @classmethod
    def parse(cls, threads: Optional[int] = None, cores: Optional[str] = None,
              clusters: Optional[dict] = None) -> "Execution":
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {threads}")
        cpus = parse_cores(cores, clusters) if cores else None
        if threads is not None and cpus is not None and threads > len(cpus):
            raise ConfigError(f"--threads {threads} is more than the {len(cpus)} core(s) of --cores {cores}; TVM runs "
                              f"at most one thread per core")
        return cls(threads, cpus)

    @property
    def is_default(self) -> bool:
        return self.threads is None and self.cpus is None

    def describe(self) -> str:
        if self.is_default:
            return "TVM's default thread pool"
        threads = self.threads or len(self.cpus)
        where = f"cores {_ranges(self.cpus)}" if self.cpus else "any core"
        return f"{threads} thread{'s' if threads != 1 else ''} on {where}"

    def to_json(self) -> dict:
        return {"threads": self.threads, "cpus": list(self.cpus) if self.cpus else None, "describe": self.describe()}

    def apply(self) -> None:
        """Pin the calling thread and configure its TVM thread pool as asked (nothing for the default).

        Call it before the thread runs a model: TVM sizes a thread's pool when it first uses it and a later
        configuration cannot add workers. Raises ConfigError when the cores are not available to this process.
        (The default pool has a thread per physical core: :func:`size_default_pool`.)
        """
        if self.is_default:
            return
        allowed = available_cpus()
        cpus = list(self.cpus) if self.cpus else allowed[:self.threads]
        if len(cpus) < (self.threads or 0):
            raise ConfigError(f"--threads {self.threads} is more than the {len(allowed)} core(s) this process may use")
        missing = sorted(set(cpus) - set(allowed))
        if missing:
            raise ConfigError(f"cores {_ranges(missing)} are not available here (this process may use cores "
                              f"{_ranges(allowed)})")
        os.sched_setaffinity(0, cpus)  # Linux: 0 = the calling thread
        import tvm

        threads = self.threads or len(cpus)
        mode = _ONE_CORE_PER_THREAD if threads == len(cpus) else _SHARE_ALL_CORES
        tvm.get_global_func("runtime.config_threadpool")(mode, threads, [str(c) for c in cpus])

    def call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` in a new thread that first applies this execution (a fresh TVM pool, sized as
        asked; the calling thread keeps its affinity and pool). Returns its result or raises its error. The
        default execution calls ``fn`` in the calling thread."""
        if self.is_default:
            return fn(*args, **kwargs)
        import threading

        outcome: dict = {}

        def run():
            try:
                self.apply()
                outcome["value"] = fn(*args, **kwargs)
            except BaseException as err:  # noqa: BLE001 (re-raised in the caller)
                outcome["error"] = err

        thread = threading.Thread(target=run, name="tvmedge-run")
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    @staticmethod
    def pool_threads() -> int:
        """The number of threads of the calling thread's TVM pool."""
        import tvm

        return int(tvm.get_global_func("runtime.NumThreads")())
