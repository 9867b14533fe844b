"""``PipelineExecutor``: a partitioned artifact's stages run as a pipeline, one thread per stage.

A throughput plan (``compile --partition throughput``) splits the model into stages on different compute units;
run one after another (:meth:`Model.run`) only one unit works at a time. Here each stage has its own thread,
pinned to its unit's cores with its own TVM thread pool (TVM's pool is per thread, so each stage configures its
own: :class:`~tvmedge.runtime.execution.Execution`), and inputs stream through bounded queues: while stage 1
works on input *i*, stage 0 already works on input *i + 1*. Tensors are handed over between stages without
copies; outputs come back in input order.

Cores per stage: the unit's cluster from the manifest (``build.cpu_clusters``) when the board declares one and
this machine has those cores; otherwise each distinct unit gets its own core of this process's cores (round
robin) — what makes the pipeline a pipeline on a machine that is not the board.

>>> from tvmedge.runtime import load
>>> from tvmedge.runtime.pipeline import PipelineExecutor
>>> model = load("out-throughput/")                                       # doctest: +SKIP
>>> with PipelineExecutor(model) as pipe:                                 # doctest: +SKIP
...     outputs = pipe.run_many([{"input": x0}, {"input": x1}, {"input": x2}])
...     future = pipe.submit({"input": x3}); future.result()
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Iterable, Optional

from ..errors import ArtifactError, ConfigError
from .execution import Execution, available_cpus

__all__ = ["PipelineExecutor", "stage_executions", "is_pipelined", "measure_throughput"]

_STOP = object()


def is_pipelined(manifest) -> bool:
    """True for an artifact whose plan was made for pipelined throughput and has more than one stage."""
    return manifest.plan is not None and manifest.plan.objective == "throughput" and len(manifest.plan.stages) > 1


def stage_executions(manifest, cpus: Optional[list] = None) -> list:
    """One :class:`Execution` per stage (see the module docstring for how cores are chosen)."""
    cpus = list(cpus or available_cpus())
    clusters = manifest.build.cpu_clusters or {}
    units = list(dict.fromkeys((s.built_for or s.unit or "cpu") for s in manifest.stages()))
    own = {}
    for i, unit in enumerate(units):
        declared = (clusters.get(unit) or {}).get("cpus")
        if declared and set(declared) <= set(cpus):
            own[unit] = tuple(declared)
        else:
            own[unit] = (cpus[i % len(cpus)],)
    return [Execution(threads=len(own[u]), cpus=own[u]) for u in (s.built_for or s.unit or "cpu"
                                                                   for s in manifest.stages())]


class PipelineExecutor:
    """Run ``model``'s stages as a pipeline (a thread per stage, queues of ``depth`` between them).

    ``executions`` (one per stage) overrides where the stages run. Use as a context manager, or call
    :meth:`close`; :meth:`submit` returns a ``Future`` of the outputs (a dict by output name, numpy arrays).
    """

    def __init__(self, model, *, depth: int = 2, executions: Optional[list] = None):
        if model.stage_count < 1:
            raise ArtifactError("the model has no stages to run")
        self.model = model
        self.executions = executions or stage_executions(model.manifest)
        if len(self.executions) != model.stage_count:
            raise ConfigError(f"{len(self.executions)} executions for {model.stage_count} stages")
        self._queues = [queue.Queue(maxsize=max(1, depth)) for _ in range(model.stage_count)]
        self._names = model.manifest.output_names()
        self._specs = [s.name for s in model.outputs]
        self._closed = False
        self._threads = [threading.Thread(target=self._worker, args=(k,), daemon=True, name=f"tvmedge-stage{k}")
                         for k in range(model.stage_count)]
        self._ready = [threading.Event() for _ in self._threads]
        self._errors: list = [None] * len(self._threads)
        for thread in self._threads:
            thread.start()
        for k, event in enumerate(self._ready):
            event.wait()
            if self._errors[k] is not None:
                self.close()
                raise self._errors[k]

    def _worker(self, k: int) -> None:
        try:
            self.executions[k].apply()  # this thread's affinity and its own TVM pool
        except Exception as err:  # noqa: BLE001 (reported to the constructor)
            self._errors[k] = err
        self._ready[k].set()
        last = k + 1 == len(self._queues)
        while True:
            item = self._queues[k].get()
            if item is _STOP:
                if not last:
                    self._queues[k + 1].put(_STOP)
                return
            future, tensors = item
            if future.done():  # an earlier stage failed it
                continue
            try:
                if k == 0:
                    tensors = self.model.to_device(tensors)
                tensors = dict(tensors)
                tensors.update(self.model.run_stage(k, tensors))
                if last:
                    future.set_result({spec: tensors[name].numpy() for spec, name in zip(self._specs, self._names)})
                    continue
            except Exception as err:  # noqa: BLE001 (the caller gets it from the future)
                future.set_exception(err)
                continue
            self._queues[k + 1].put((future, tensors))

    def submit(self, inputs) -> Future:
        """Queue one input (arrays by name, or one array); blocks while the first queue is full."""
        if self._closed:
            raise ConfigError("the pipeline is closed")
        future: Future = Future()
        self._queues[0].put((future, inputs))
        return future

    def run_many(self, inputs: Iterable) -> list:
        """Stream ``inputs`` through the pipeline; the outputs in input order. Raises the first error."""
        futures = []
        feeder_error = []

        def feed():
            try:
                for item in inputs:
                    futures.append(self.submit(item))
            except Exception as err:  # noqa: BLE001
                feeder_error.append(err)

        feeder = threading.Thread(target=feed, daemon=True)  # so that results are collected while feeding
        feeder.start()
        results, index = [], 0
        while feeder.is_alive() or index < len(futures):
            if index < len(futures):
                results.append(futures[index].result())
                index += 1
            else:
                feeder.join(0.001)
        if feeder_error:
            raise feeder_error[0]
        return results

    def close(self) -> None:
        """Finish what is queued and stop the stage threads."""
        if self._closed:
            return
        self._closed = True
        self._queues[0].put(_STOP)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> "PipelineExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def measure_throughput(model, feed, count: int = 20) -> dict:
    """Inputs per second over ``count`` copies of ``feed``: stages one after another in this thread, then the
    pipeline (after one warm-up input each) -> ``{"count", "sequential_ips", "pipelined_ips", "speedup",
    "executions"}``; the pipeline's outputs are checked equal to the sequential run's."""
    import time

    import numpy as np

    count = max(1, int(count))
    model.run(feed)
    start = time.perf_counter()
    expected = [model.run(feed) for _ in range(count)][0]
    sequential = count / (time.perf_counter() - start)
    with PipelineExecutor(model) as pipe:
        pipe.run_many([feed])
        start = time.perf_counter()
        outputs = pipe.run_many([feed] * count)
        pipelined = count / (time.perf_counter() - start)
        executions = [e.describe() for e in pipe.executions]
    for name, value in expected.items():
        if not all(np.array_equal(o[name], value) for o in outputs):
            raise ArtifactError(f"pipelined output '{name}' differs from the sequential run's")
    return {"count": count, "sequential_ips": sequential, "pipelined_ips": pipelined,
            "speedup": pipelined / sequential, "executions": executions}
