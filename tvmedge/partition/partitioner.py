"""Partitioners: assign every op of an :class:`OpGraph` to a unit of a :class:`DeviceGraph`.

Latency (one input, ops run in plan order; see :mod:`tvmedge.partition.plan` for the cost rules):

- :class:`TopoDP` — dynamic programming over the topological order (Viterbi): the state is the unit of the
  current op, each transition pays the op's time plus the transfers of its inputs from wherever the best path
  so far put their producers. Exact for chains; on DAGs (residual and inception branches) the producers' units
  come from the path, so it is a heuristic there.
- :class:`MinCut` — the cost is a sum of per-op terms and per-edge transfer terms, i.e. a multi-label energy;
  alpha-beta swap moves (Boykov, Veksler & Zabih 2001) solve exactly, by one s-t minimum cut (networkx), the
  best re-labelling of the ops on any two units, and repeat until no swap helps. Then a local search with the
  exact cost (tensors moved once per unit) settles single ops. Started from the best of greedy, TopoDP and
  every single-unit plan, it is never worse than any of them.

Throughput (a stream of inputs):

- :class:`Pipeline` — contiguous stages of the topological order, each on a different unit, chosen by DP to
  minimise the slowest stage (its ops plus the transfers into it).
- :class:`Balance` — the busiest unit's load minimised by single-op moves from the best of the above, without
  requiring contiguous stages (a unit may serve several stages; needs a dataflow pipeline runtime).

Baselines: :class:`SingleUnit` (everything on the best unit that runs every op), :class:`HostOnly` (everything
on the host CPU cluster, what a single-target build does), :class:`FixedRule` (the
seed's rule: CPU pre/post-processing, GPU matrix ops, NPU activations) and :class:`Greedy` (each op on its
fastest unit, transfers ignored).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from typing import Optional

import networkx as nx
import numpy as np

from ..errors import PartitionError
from .cost import CostModel, CostTable
from .plan import Plan, evaluate
from .problem import Problem

__all__ = ["Partitioner", "SingleUnit", "HostOnly", "FixedRule", "Greedy", "TopoDP", "MinCut", "Pipeline",
           "Balance", "ALGORITHMS", "check_feasible"]

_MATRIX = {"conv2d", "matmul", "dense"}
_ACTIVATIONS = {"relu", "clip", "sigmoid", "softmax", "tanh", "gelu", "silu", "leakyrelu"}


class Partitioner(ABC):
    """Places every op on a unit. Subclasses implement :meth:`assign`; :meth:`partition` is the entry point.

    Contract of the returned :class:`Plan` (``partition(devices, ops, costs)``):

    - every op of ``ops`` is placed exactly once, and ``plan.assignment`` lists them in ``ops``' topological
      order (so stages and transfers follow data dependences);
    - every op is on a unit that can run it (its ``ops`` list has the kind, it has a rate for the dtype);
    - the plan's costs are computed by :func:`tvmedge.partition.plan.evaluate`, the same rules for every
      algorithm, so plans of different partitioners compare directly;
    - an op that no unit of the board can run raises :class:`tvmedge.errors.PartitionError` naming it.

    ``objective`` says what the partitioner minimises (``latency`` or ``throughput``); ``name`` labels plans.
    """

    name = "partitioner"
    objective = "latency"

    def partition(self, devices, ops, costs=None) -> Plan:
        """Plan ``ops`` (an OpGraph) on ``devices`` (a DeviceGraph) priced by ``costs`` (CostModel or CostTable)."""
        table = costs if isinstance(costs, CostTable) else (costs or CostModel()).table(ops, devices)
        check_feasible(table)
        start = time.perf_counter()
        self.extra = {}
        assignment = self.assign(table)
        self._note(seconds=round(time.perf_counter() - start, 3))
        return evaluate(assignment, table, algorithm=self.name, objective=self.objective, extra=self.extra)

    def _note(self, **facts) -> None:
        """Record facts about the last run (shown as ``plan.extra``)."""
        self.__dict__.setdefault("extra", {}).update(facts)

    @abstractmethod
    def assign(self, table: CostTable) -> list:
        """One unit index (column of ``table.us``) per op, in topological order."""


def check_feasible(table: CostTable) -> None:
    """PartitionError when some op can run on no unit (names the first such op and why)."""
    for i, op in enumerate(table.ops.ops):
        if not np.isfinite(table.us[i]).any():
            reasons = "; ".join(e.reason for e in table.estimates[i])
            raise PartitionError(f"op {op.name} ({op.relax_op}, {op.dtype}) can run on no unit of board "
                                 f"{table.devices.graph['name']}: {reasons}")


# --- baselines ----------------------------------------------------------------------------------------------


class SingleUnit(Partitioner):
    """Every op on one unit: ``unit`` if given, else the unit that runs every op fastest (transfers: none)."""

    name = "single-unit"

    def __init__(self, unit: Optional[str] = None):
        self.unit = unit

    def assign(self, table):
        if self.unit:
            table.devices.unit(self.unit)  # ConfigError naming the board's units when unknown
        candidates = [table.units.index(self.unit)] if self.unit else range(len(table.units))
        able = [j for j in candidates if np.isfinite(table.us[:, j]).all()]
        if not able:
            which = self.unit or "any single unit"
            bad = [table.ops.ops[i].name for i in range(len(table.ops.ops))
                   if not all(np.isfinite(table.us[i, j]) for j in candidates)][:3]
            raise PartitionError(f"{which} of board {table.devices.graph['name']} cannot run every op "
                                 f"(e.g. {', '.join(bad)})")
        problem = Problem(table)
        best = min(able, key=lambda j: problem.latency([j] * problem.n))
        self._note(unit=table.units[best])
        return [best] * len(table.ops.ops)


class HostOnly(SingleUnit):
    """Every op on the host CPU cluster: what a plain single-target TVM build of the board does today."""

    name = "host-only"

    def assign(self, table):
        self.unit = table.devices.host
        return super().assign(table)


class FixedRule(Partitioner):
    """The seed's rule: matrix ops (conv2d, matmul, dense) on the GPU, activations on the NPU, the rest
    (pre/post-processing) on the host CPU; an op the rule's unit cannot run stays on the host CPU (or, if
    the host cannot run it either, goes to its fastest unit)."""

    name = "fixed-rule"

    def assign(self, table):
        devices = table.devices
        first = lambda kind: next((j for j, u in enumerate(table.units)  # noqa: E731
                                   if devices.nodes[u]["kind"] == kind), None)
        gpu, npu, host = first("gpu"), first("npu"), table.units.index(devices.host)
        assignment = []
        for i, op in enumerate(table.ops.ops):
            wanted = gpu if op.kind in _MATRIX else npu if op.kind in _ACTIVATIONS else host
            for j in (wanted, host):
                if j is not None and np.isfinite(table.us[i, j]):
                    assignment.append(j)
                    break
            else:
                assignment.append(int(np.argmin(table.us[i])))
        return assignment


class Greedy(Partitioner):
    """Each op on its fastest unit, ignoring what moving tensors between units costs."""

    name = "greedy"

    def assign(self, table):
        return [int(np.argmin(row)) for row in table.us]


# --- latency optimisers -----------------------------------------------------------------------------------------


class TopoDP(Partitioner):
    """Viterbi DP over the topological order with transfer costs (see module docstring)."""

    name = "dp"

    def assign(self, table):
        problem = Problem(table)
        return self._viterbi(problem)

    @staticmethod
    def _viterbi(problem: Problem) -> list:
        n, k, host = problem.n, problem.k, problem.host
        paths = [None] * k  # best path (list of units) ending with op i-1 on unit u
        costs = np.zeros(k)
        for i in range(n):
            new_paths, new_costs = [None] * k, np.full(k, np.inf)
            for u in range(k):
                run = problem.us[i, u]
                if not math.isfinite(run):
                    continue
                options = range(k) if i else [host]
                for v in options:
                    prev = paths[v] if i else []
                    base = costs[v] if i else 0.0
                    if not math.isfinite(base):
                        continue
                    cost = base + run + TopoDP._inputs_cost(problem, prev, i, u)
                    if cost < new_costs[u]:
                        new_costs[u], new_paths[u] = cost, prev
            for u in range(k):
                if new_paths[u] is not None:
                    new_paths[u] = new_paths[u] + [u]
            paths, costs = new_paths, new_costs
        finals = [p for p in paths if p is not None]
        return min(finals, key=problem.latency)

    @staticmethod
    def _inputs_cost(problem: Problem, path: list, i: int, u: int) -> float:
        """Transfers op ``i`` on ``u`` needs, given where ``path`` placed ops 0..i-1 (each tensor moved once)."""
        cost = 0.0
        for t in problem.reads[i]:
            src = problem.home(path, t)
            if src == u or any(c < i and path[c] == u for c in problem.readers[t]):
                continue  # local, or already moved to u for an earlier reader
            cost += problem.tr(problem.size[t])[src, u]
        if problem.is_output[i] and u != problem.host:
            cost += problem.tr(problem.size[i])[u, problem.host]
        return cost


class MinCut(Partitioner):
    """Alpha-beta swap with s-t minimum cuts, then exact single-op moves (see module docstring)."""

    name = "mincut"

    def __init__(self, max_rounds: int = 6):
        self.max_rounds = max_rounds

    def assign(self, table):
        problem = Problem(table)
        starts = {"greedy": Greedy().assign(table), "dp": TopoDP._viterbi(problem)}
        for j, unit in enumerate(table.units):
            if np.isfinite(table.us[:, j]).all():
                starts[f"all-on-{unit}"] = [j] * problem.n
        name, start = min(starts.items(), key=lambda kv: problem.latency(kv[1]))
        a = list(start)
        rounds = cuts = 0
        for rounds in range(1, self.max_rounds + 1):
            before = problem.latency(a)
            for alpha in range(problem.k):
                for beta in range(alpha + 1, problem.k):
                    candidate = self._swap(problem, a, alpha, beta)
                    cuts += 1
                    if candidate is not None and problem.latency(candidate) < problem.latency(a) - 1e-9:
                        a = candidate
            if problem.latency(a) >= before - 1e-9:
                break
        polished = problem.polish(a)
        self._note(start=name, rounds=rounds, cuts=cuts,
                          swap_gain_us=round(float(problem.latency(start) - problem.latency(a)), 3),
                          polish_gain_us=round(float(problem.latency(a) - problem.latency(polished)), 3))
        return polished

    @staticmethod
    def _swap(problem: Problem, a: list, alpha: int, beta: int) -> Optional[list]:
        """Best relabelling of the ops on ``alpha``/``beta`` between those two units (one minimum cut).

        Source side = alpha. Per tensor edge producer -> reader, both free: edge producer->reader with the
        alpha->beta transfer (cut when the producer stays on alpha and the reader goes to beta) and
        reader->producer with the beta->alpha one. Edges to fixed ops and the host become unary terms.
        """
        free = [i for i in range(problem.n) if a[i] in (alpha, beta)
                and math.isfinite(problem.us[i, alpha]) and math.isfinite(problem.us[i, beta])]
        if not free:
            return None
        in_free = set(free)
        graph = nx.DiGraph()
        unary = {i: [problem.us[i, alpha], problem.us[i, beta]] for i in free}

        def add(x, y, w):
            if w > 0:
                old = graph.get_edge_data(x, y, {"capacity": 0.0})["capacity"]
                graph.add_edge(x, y, capacity=old + w)

        for i in free:
            for t in problem.reads[i]:  # tensors arriving at i
                if t < problem.n and t in in_free:
                    continue  # a free pair: added from the producer's side
                m, src = problem.tr(problem.size[t]), problem.home(a, t)
                unary[i][0] += m[src, alpha]
                unary[i][1] += m[src, beta]
            m = problem.tr(problem.size[i])  # i's own tensor leaving
            targets = [(c, a[c]) for c in problem.readers[i]]
            if problem.is_output[i]:
                targets.append((None, problem.host))
            for c, unit in targets:
                if c is not None and c in in_free:
                    add(i, c, m[alpha, beta])
                    add(c, i, m[beta, alpha])
                else:
                    unary[i][0] += m[alpha, unit]
                    unary[i][1] += m[beta, unit]
        for i in free:
            add("s", i, unary[i][1])  # cut when i goes to beta
            add(i, "t", unary[i][0])  # cut when i stays on alpha
        graph.add_nodes_from(["s", "t"])
        _, (source_side, _) = nx.minimum_cut(graph, "s", "t")
        out = list(a)
        for i in free:
            out[i] = alpha if i in source_side else beta
        return out


# --- throughput -----------------------------------------------------------------------------------------------


class Pipeline(Partitioner):
    """Contiguous pipeline stages on distinct units; DP minimises the slowest stage (see module docstring).

    Stage boundaries are searched among at most ``max_cuts`` positions of the topological order, those where
    the fewest bytes are live (a pipeline cut there moves little data).
    """

    name = "pipeline"
    objective = "throughput"

    def __init__(self, max_cuts: int = 120):
        self.max_cuts = max_cuts

    def assign(self, table):
        problem = Problem(table)
        n, k, host = problem.n, problem.k, problem.host
        cuts = self._cut_points(problem)
        c = len(cuts)
        cut_at = np.asarray(cuts)
        finite = np.isfinite(problem.us)
        prefix = np.vstack([np.zeros((1, k)), np.cumsum(np.where(finite, problem.us, 0.0), axis=0)])[cut_at]
        bad = np.vstack([np.zeros((1, k)), np.cumsum(~finite, axis=0)])[cut_at]
        in_bytes = self._segment_inputs(problem, cuts)  # [x, y]: bytes entering segment cuts[x]..cuts[y]
        moves = np.zeros((c, c, k, k))  # [x, y, from, to]: moving those bytes between two units
        for x in range(c - 1):
            for y in range(x + 1, c):
                if in_bytes[x, y]:
                    moves[x, y] = problem.tr(in_bytes[x, y])
        out_bytes = float(sum(problem.size[t] for t in range(n) if problem.is_output[t]))
        masks = 1 << k
        value = np.full((c, masks, k), np.inf)  # best bottleneck covering ops [0, cuts[y]) ...
        back = np.full((c, masks, k, 3), -1, dtype=np.int64)  # ... and where its last stage started
        value[0, 0, host] = 0.0
        for x in range(c - 1):
            for mask in range(masks):
                for last in range(k):
                    v = value[x, mask, last]
                    if not math.isfinite(v):
                        continue
                    for u in range(k):
                        if mask & (1 << u):
                            continue
                        ys = np.arange(x + 1, c)
                        ok = (bad[ys, u] - bad[x, u]) == 0
                        if not ok.any():
                            continue
                        ys = ys[ok]
                        stage = prefix[ys, u] - prefix[x, u]
                        if u != last:
                            stage = stage + moves[x, ys, last, u]
                        if u != host and ys[-1] == c - 1:
                            stage[-1] += problem.tr(out_bytes)[u, host]
                        cand = np.maximum(v, stage)
                        new_mask = mask | (1 << u)
                        better = cand < value[ys, new_mask, u]
                        value[ys[better], new_mask, u] = cand[better]
                        back[ys[better], new_mask, u] = (x, mask, last)
        end = value[c - 1]
        if not np.isfinite(end).any():
            raise PartitionError(f"no pipeline of contiguous stages on distinct units of board "
                                 f"{table.devices.graph['name']} runs every op")
        mask, last = np.unravel_index(int(np.argmin(end)), end.shape)
        y, assignment, stages = c - 1, [0] * n, 0
        while y > 0:
            x, prev_mask, prev_last = back[y, mask, last]
            for i in range(cuts[x], cuts[y]):
                assignment[i] = int(last)
            y, mask, last = int(x), int(prev_mask), int(prev_last)
            stages += 1
        self._note(stages=stages, cut_candidates=c - 2)
        # The DP prices a stage's inputs as coming from the previous stage's unit; the exact rules (plan.py)
        # may disagree, so a one-stage plan that is better by those rules wins.
        candidates = [assignment] + [[j] * n for j in range(k) if np.isfinite(problem.us[:, j]).all()]
        best = min(candidates, key=lambda a: (problem.bottleneck(a), problem.latency(a)))
        if best is not assignment:
            self._note(stages=1, note="a single unit beats every multi-stage pipeline")
        return best

    def _cut_points(self, problem: Problem) -> list:
        """0, n and up to ``max_cuts`` interior positions, preferring those with the fewest live bytes."""
        n = problem.n
        live = np.zeros(n + 1)
        for t in range(n):
            last = max(problem.readers[t], default=t)
            live[t + 1:last + 1] += problem.size[t]
        interior = np.arange(1, n)
        if len(interior) > self.max_cuts:
            threshold = np.sort(live[interior])[self.max_cuts - 1]
            interior = interior[live[interior] <= threshold]
            if len(interior) > self.max_cuts:  # many ties (a chain): spread them evenly
                interior = interior[np.linspace(0, len(interior) - 1, self.max_cuts).round().astype(int)]
        return [0] + sorted(set(int(p) for p in interior)) + [n]

    @staticmethod
    def _segment_inputs(problem: Problem, cuts: list) -> np.ndarray:
        """``[x, y]``: bytes of tensors made before ``cuts[x]`` (or graph inputs) read in ``cuts[x]..cuts[y]``."""
        c, n = len(cuts), problem.n
        table = np.zeros((c, c))
        for x in range(c - 1):
            lo, seen, total = cuts[x], set(), 0.0
            for y in range(x + 1, c):
                for i in range(cuts[y - 1], cuts[y]):
                    for t in problem.reads[i]:
                        if (t < lo or t >= n) and t not in seen:
                            seen.add(t)
                            total += problem.size[t]
                table[x, y] = total
        return table


class Balance(Partitioner):
    """Throughput without the contiguity restriction: minimise the busiest unit's (or the shared DRAM's) load
    by moving single ops.

    Starts from the best (by bottleneck, then latency) of the contiguous :class:`Pipeline`, the latency plans
    (:class:`MinCut`, :class:`TopoDP`), greedy and every single unit, then moves one op at a time while the
    bottleneck drops (or stays and the latency drops). A unit may then hold several stages; running such a
    plan as a pipeline needs a dataflow runtime (each unit a worker that takes ops of several inputs in turn).
    """

    name = "balance"
    objective = "throughput"

    def __init__(self, max_sweeps: int = 30):
        self.max_sweeps = max_sweeps

    def assign(self, table):
        problem = Problem(table)
        starts = {"pipeline": Pipeline().assign(table), "mincut": MinCut().assign(table),
                  "greedy": Greedy().assign(table)}
        for j, unit in enumerate(table.units):
            if np.isfinite(table.us[:, j]).all():
                starts[f"all-on-{unit}"] = [j] * problem.n
        name, a = min(starts.items(), key=lambda kv: (problem.bottleneck(kv[1]), problem.latency(kv[1])))
        a = list(a)
        load = problem.loads(a)
        moves = 0
        for _ in range(self.max_sweeps):
            improved = False
            for i in range(problem.n):
                old_unit = a[i]
                here = problem.local_cost(a, i, old_unit)
                best = (load.max(), 0.0, old_unit, None)
                for u in range(problem.k):
                    if u == old_unit or not math.isfinite(problem.us[i, u]):
                        continue
                    delta = problem.load_delta(a, i, u)
                    key = ((load + delta).max(), problem.local_cost(a, i, u) - here)
                    if key[0] < best[0] - 1e-9 or (key[0] <= best[0] + 1e-9 and key[1] < best[1] - 1e-9):
                        best = (key[0], key[1], u, delta)
                if best[3] is not None:
                    a[i] = best[2]
                    load = load + best[3]
                    moves += 1
                    improved = True
            if not improved:
                break
        self._note(start=name, moves=moves)
        return a


ALGORITHMS = {"mincut": MinCut, "dp": TopoDP, "pipeline": Pipeline, "balance": Balance, "greedy": Greedy, "fixed-rule": FixedRule,
              "single-unit": SingleUnit, "host-only": HostOnly}
