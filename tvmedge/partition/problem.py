"""``Problem``: a cost table turned into arrays, with the exact plan costs and their single-op deltas.

The partitioners (:mod:`tvmedge.partition.partitioner`) search over assignments (one unit index per op); this
class prices them by the same rules as :func:`tvmedge.partition.plan.evaluate`, fast enough to call inside
their loops (``local_cost`` and ``load_delta`` touch only the tensors around one op).
"""

from __future__ import annotations

import math

import numpy as np

from .cost import CostTable

__all__ = ["Problem"]


class Problem:
    """Arrays the algorithms share, with the exact latency of :mod:`.plan` and its single-op delta.

    Tensors are numbered: op ``i``'s output is tensor ``i``, graph input ``m`` is tensor ``n + m``. A tensor
    lives on its producer's unit (inputs on the host) and is moved once to every other unit that reads it;
    model outputs must reach the host.
    """

    def __init__(self, table: CostTable):
        from .plan import tensor_sizes

        self.table = table
        ops = table.ops
        self.n, self.k = table.us.shape
        self.us = table.us
        self.host = table.units.index(table.devices.host)
        sizes = tensor_sizes(ops)
        names = [op.name for op in ops.ops] + [f"input:{name}" for name in ops.inputs]
        tid = {name: t for t, name in enumerate(names)}
        self.size = np.array([float(sizes.get(name, 0)) for name in names])
        self.reads = []  # tensors op i reads (distinct)
        self.readers = [[] for _ in names]  # ops reading tensor t, in order
        for i, op in enumerate(ops.ops):
            ts = list(dict.fromkeys(tid[src] for src, _ in op.in_edges))
            self.reads.append(ts)
            for t in ts:
                self.readers[t].append(i)
        # shared-DRAM traffic of op i on unit j (bytes at the unit's precision), for the throughput bound
        from .cost import bytes_at

        self.dram_bw = table.devices.unit(table.devices.host).mem_bandwidth_gbps * 1e3  # bytes per us
        self.op_bytes = np.array([[bytes_at(op, e.precision) if e.supported else 0.0 for e in row]
                                  for op, row in zip(ops.ops, table.estimates)])
        self.is_output = np.zeros(len(names), dtype=bool)
        for name, _ in ops.outputs:
            self.is_output[tid[name]] = True
        self._tr: dict = {}

    def tr(self, nbytes: float) -> np.ndarray:
        """k x k transfer times for a tensor of ``nbytes`` (0 on the diagonal)."""
        key = int(nbytes)
        if key not in self._tr:
            units = self.table.units
            m = np.zeros((self.k, self.k))
            for x in range(self.k):
                for y in range(self.k):
                    if x != y:
                        m[x, y] = self.table.transfer_us(key, units[x], units[y])
            self._tr[key] = m
        return self._tr[key]

    def home(self, a, t: int) -> int:
        return a[t] if t < self.n else self.host

    def destinations(self, a, t: int, src: int) -> set:
        """Units other than ``src`` that need tensor ``t``: its readers' units, and the host for a model output."""
        dests = {a[c] for c in self.readers[t]}
        if self.is_output[t]:
            dests.add(self.host)
        dests.discard(src)
        return dests

    def latency(self, a) -> float:
        """Exact serial latency of an assignment (the rules of plan.evaluate)."""
        total = float(sum(self.us[i, a[i]] for i in range(self.n)))
        for t in range(len(self.size)):
            src = self.home(a, t)
            dests = self.destinations(a, t, src)
            if dests:
                m = self.tr(self.size[t])
                total += sum(m[src, d] for d in dests)
        return total

    def loads(self, a) -> np.ndarray:
        """Time per input of each unit (its ops plus the transfers it receives) and, last, of the shared DRAM."""
        load = np.zeros(self.k + 1)
        for i in range(self.n):
            load[a[i]] += self.us[i, a[i]]
            load[self.k] += self.op_bytes[i, a[i]] / self.dram_bw
        for t in range(len(self.size)):
            load += self._received(a, t)
        return load

    def bottleneck(self, a) -> float:
        """Time per input of the busiest unit or of the shared DRAM, whichever is larger."""
        return float(self.loads(a).max())

    def _received(self, a, t: int) -> np.ndarray:
        """Transfer time tensor ``t`` adds to each receiving unit."""
        out = np.zeros(self.k + 1)
        src = self.home(a, t)
        dests = self.destinations(a, t, src)
        if dests:
            m = self.tr(self.size[t])
            for d in dests:
                out[d] += m[src, d]
                out[self.k] += 2 * self.size[t] / self.dram_bw  # written by one unit, read by the other
        return out

    def load_delta(self, a, i: int, u: int) -> np.ndarray:
        """How every unit's load changes when op ``i`` moves to unit ``u``."""
        touched = list(self.reads[i]) + [i]
        before = sum((self._received(a, t) for t in touched), np.zeros(self.k + 1))
        old = a[i]
        a[i] = u
        after = sum((self._received(a, t) for t in touched), np.zeros(self.k + 1))
        a[i] = old
        delta = after - before
        delta[old] -= self.us[i, old]
        delta[u] += self.us[i, u]
        delta[self.k] += (self.op_bytes[i, u] - self.op_bytes[i, old]) / self.dram_bw
        return delta

    def local_cost(self, a, i: int, u: int) -> float:
        """The part of the exact latency that depends on op ``i`` being on unit ``u`` (others fixed)."""
        cost = self.us[i, u]
        if not math.isfinite(cost):
            return math.inf
        for t in self.reads[i]:
            src = self.home(a, t)
            if src != u and not any(a[c] == u for c in self.readers[t] if c != i):
                cost += self.tr(self.size[t])[src, u]
        dests = self.destinations(a, i, u)
        if dests:
            m = self.tr(self.size[i])
            cost += sum(m[u, d] for d in dests)
        return cost

    def polish(self, a, max_sweeps: int = 20) -> list:
        """Single-op moves with the exact latency until none helps (each move lowers the latency)."""
        a = list(a)
        for _ in range(max_sweeps):
            improved = False
            for i in range(self.n):
                best, best_u = self.local_cost(a, i, a[i]), a[i]
                for u in range(self.k):
                    if u != a[i]:
                        c = self.local_cost(a, i, u)
                        if c < best - 1e-9:
                            best, best_u = c, u
                if best_u != a[i]:
                    a[i] = best_u
                    improved = True
            if not improved:
                break
        return a
