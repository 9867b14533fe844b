"""``partition_model``: import, price, partition with every algorithm and baseline, compare, explain, plot.

>>> from tvmedge.partition.report import partition_model
>>> report = partition_model("examples/models/tiny_cnn.onnx", "rk3588", objective="latency")
>>> report.plan.assignment["conv2d_0"]          # the optimiser's unit for the first convolution
>>> [row["plan"] for row in report.comparison()]
['single-unit', 'host-only', 'fixed-rule', 'greedy', 'dp', 'mincut', 'pipeline', 'balance']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from ..errors import ConfigError, PartitionError
from .cost import CostModel, CostTable
from .partitioner import ALGORITHMS, check_feasible
from .plan import VENDOR, Plan

__all__ = ["PartitionReport", "partition_model", "partition_ops", "OBJECTIVES", "DEFAULT_ALGORITHM"]

OBJECTIVES = ("latency", "throughput")
DEFAULT_ALGORITHM = {"latency": "mincut", "throughput": "balance"}
_ORDER = ["single-unit", "host-only", "fixed-rule", "greedy", "dp", "mincut", "pipeline", "balance"]


@dataclass
class PartitionReport:
    """The chosen plan, every other plan for comparison, and the cost table behind them."""

    plan: Plan
    plans: dict  # name -> Plan, for every algorithm and baseline that produced one
    failed: dict  # name -> why it produced no plan (e.g. no single unit runs every op)
    table: CostTable
    objective: str
    notes: list = field(default_factory=list)

    def comparison(self) -> list:
        """One row per plan: predicted latency and throughput, and ratios to the best single unit."""
        single = self.plans.get("single-unit")
        rows = []
        for name in [n for n in _ORDER if n in self.plans] + [n for n in self.plans if n not in _ORDER]:
            p = self.plans[name]
            rows.append({
                "plan": name, "chosen": p is self.plan, "objective": p.objective,
                "latency_ms": float(p.latency_us / 1e3), "throughput_ips": float(p.throughput_ips),
                "latency_speedup": float(single.latency_us / p.latency_us) if single else None,
                "throughput_speedup": float(p.throughput_ips / single.throughput_ips) if single else None,
                "transfers": len(p.transfers), "transfer_ms": float(p.transfer_us / 1e3), "stages": len(p.stages),
                "units": p.units_used(),
                "vendor_ops": sum(len(s.ops) for s in p.stages if s.codegen == VENDOR),
            })
        for name, why in self.failed.items():
            rows.append({"plan": name, "chosen": False, "error": why})
        return rows

    def explain(self) -> list:
        """Per op: its cost on every unit, where the chosen plan put it, and why."""
        from .problem import Problem

        plan, table = self.plan, self.table
        problem = Problem(table)
        a = [table.unit_index(plan.assignment[op.name]) for op in table.ops.ops]
        rows = []
        for i, op in enumerate(table.ops.ops):
            costs = {u: (float(table.us[i, j]) if table.estimates[i][j].supported else None)
                     for j, u in enumerate(table.units)}
            rows.append({
                "op": op.name, "kind": op.kind, "shape": list(op.out_shape), "mflops": op.flops / 1e6,
                "costs_us": costs, "unit": plan.assignment[op.name], "stage": plan.placements[i].stage,
                "why": self._why(problem, a, i),
                "cannot": {u: table.estimates[i][j].reason for j, u in enumerate(table.units)
                           if not table.estimates[i][j].supported},
            })
        return rows

    def _why(self, problem, a, i) -> str:
        table, units = self.table, self.table.units
        chosen = a[i]
        able = [j for j in range(len(units)) if table.estimates[i][j].supported]
        if len(able) == 1:
            return f"only {units[chosen]} can run it"
        fastest = min(able, key=lambda j: table.us[i, j])
        local = {j: problem.local_cost(a, i, j) for j in able}
        moves = {j: local[j] - table.us[i, j] for j in able}  # transfers that depend on this op's unit
        if self.plan.algorithm == "pipeline":
            stage = self.plan.placements[i].stage
            return (f"pipeline stage {stage} on {units[chosen]}: stages are contiguous runs on distinct units, "
                    f"chosen to shorten the slowest stage ({self.plan.bottleneck_unit})")
        if self.plan.objective == "throughput":
            load = self.plan.unit_load_us
            if chosen == fastest:
                return f"fastest unit; {units[chosen]} carries {load.get(units[chosen], 0) / 1e3:.3f} ms per input"
            return (f"{units[fastest]} is {table.us[i, chosen] - table.us[i, fastest]:.1f} us faster for this op, "
                    f"but {units[chosen]} keeps the busiest unit ({self.plan.bottleneck_unit}, "
                    f"{self.plan.bottleneck_us / 1e3:.3f} ms per input) from getting busier")
        if chosen == fastest:
            runner_up = min((j for j in able if j != chosen), key=lambda j: table.us[i, j])
            extra = f"; moving it would also add {moves[runner_up] - moves[chosen]:.1f} us of transfers" \
                if moves[runner_up] > moves[chosen] + 0.05 else ""
            return f"fastest unit ({table.us[i, runner_up] - table.us[i, chosen]:.1f} us ahead of {units[runner_up]}){extra}"
        gain = table.us[i, chosen] - table.us[i, fastest]
        cost = moves[fastest] - moves[chosen]
        if cost >= gain:
            return (f"{units[fastest]} computes it {gain:.1f} us faster, but the tensors it reads and writes "
                    f"would cost {cost:.1f} us more to move")
        return (f"kept with its neighbours on {units[chosen]}: alone, {units[fastest]} would save "
                f"{gain - cost:.1f} us, but the plan moves groups of ops (a single-op view misses that)")

    def summary(self) -> dict:
        data = self.plan.summary()
        data["comparison"] = self.comparison()
        data["cost_sources"] = dict(self.table.sources)
        data["notes"] = list(dict.fromkeys(self.notes + self.plan.notes))
        return data

    def plot(self, path) -> str:
        from .plot import plot_report

        return plot_report(self, path)


def partition_ops(ops, devices, *, objective: str = "latency", cost_model: Optional[CostModel] = None,
                  algorithm: Optional[str] = None) -> PartitionReport:
    """Run every algorithm and baseline on an :class:`OpGraph` and pick the plan for ``objective``.

    ``algorithm`` (default: mincut for latency, pipeline for throughput) names the plan to choose.

    Raises
    ------
    ConfigError
        Unknown objective or algorithm.
    PartitionError
        An op no unit of the board can run, or the chosen algorithm found no plan.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective '{objective}' is not valid; choose from: {', '.join(OBJECTIVES)}")
    algorithm = algorithm or DEFAULT_ALGORITHM[objective]
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm '{algorithm}' is not valid; choose from: {', '.join(ALGORITHMS)}")
    cost_model = cost_model or CostModel()
    table = cost_model.table(ops, devices)
    check_feasible(table)
    plans, failed = {}, {}
    for name in _ORDER:
        try:
            plans[name] = ALGORITHMS[name]().partition(devices, ops, table)
        except PartitionError as err:
            if name == algorithm:
                raise
            failed[name] = str(err)
    notes = []
    accel = [u for u, src in table.sources.items() if src == "analytic" and devices.nodes[u]["kind"] != "cpu"]
    if accel and table.correction == "learned":
        notes.append(f"{', '.join(accel)}: analytic roofline only (no measurements for that unit kind on this "
                     f"host), i.e. at datasheet peak: their estimates are optimistic")
    return PartitionReport(plans[algorithm], plans, failed, table, objective, notes)


def partition_model(model, board, *, objective: str = "latency", input_shapes: Optional[Mapping] = None,
                    correction: str = "learned", algorithm: Optional[str] = None) -> PartitionReport:
    """Partition an ONNX model for a board (name, YAML path or Board): the library twin of ``tvmedge partition``."""
    from pathlib import Path

    from ..devices.graph import DeviceGraph
    from ..frontend.onnx import import_model
    from .opgraph import extract_ops

    cost_model = CostModel(correction)  # validates the choice before the (slow) import
    devices = DeviceGraph.from_board(board)
    imported = import_model(model, input_shapes)
    ops = extract_ops(imported.mod, Path(str(model)).stem)
    if not ops.ops:
        raise PartitionError(f"{model}: the model has no operators to place (only constants)")
    return partition_ops(ops, devices, objective=objective, cost_model=cost_model, algorithm=algorithm)
