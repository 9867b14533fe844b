"""``Plan``: which unit runs each op, the stages that makes, the transfers between them and the predicted cost.

Every partitioner returns a Plan made by :func:`evaluate`, so all algorithms and baselines are priced by one
set of rules:

- **latency** (one input at a time, ops run in plan order, one after another as the runtime executes
  partitions): the sum of every op's predicted time on its unit plus every transfer. A tensor is moved once
  to each other unit that reads it. Inputs arrive on the host unit and outputs must return to it.
- **throughput** (a stream of inputs, units working on different inputs at once): each unit's load is its ops'
  time plus the transfers it receives; the busiest unit bounds the rate, ``1 / max(load)``. For a plan whose
  stages are contiguous this is a pipeline with one stage per unit; for others it assumes a runtime that can
  interleave a unit's stages across inputs. The units of these SoCs share one DRAM, so a second bound applies:
  the bytes every op reads and writes (at the precision it runs in) plus each transfer's write and read,
  divided by the host unit's memory bandwidth (``dram_us``). Per-op bytes ignore caches and fusion, so this
  bound is pessimistic; without it, concurrent units would each be assumed to have the whole DRAM to themselves.

A *stage* is a maximal run of consecutive ops (in topological order) on one unit. Units without a TVM code
generator (``target: null``, e.g. the Rockchip NPU) can be placed on, but their stages say
``vendor toolchain required``: TVM cannot build them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Plan", "Stage", "Transfer", "Placement", "evaluate", "tensor_sizes", "VENDOR"]

VENDOR = "vendor toolchain required"


@dataclass
class Placement:
    """One op on its unit."""

    op: str
    kind: str
    unit: str
    us: float
    precision: str
    source: str
    stage: int = 0


@dataclass
class Transfer:
    """A tensor handed from one unit to another (once per destination unit)."""

    tensor: str  # producer op name, or "input:<name>"
    src: str
    dst: str
    bytes: int
    us: float
    consumer: str  # first op on ``dst`` that reads it ("output" for a model result going back to the host)


@dataclass
class Stage:
    """A maximal run of consecutive ops on one unit."""

    index: int
    unit: str
    ops: list
    compute_us: float
    transfer_in_us: float
    codegen: str  # "tvm" or VENDOR

    @property
    def total_us(self) -> float:
        return self.compute_us + self.transfer_in_us


@dataclass
class Plan:
    """An op -> unit assignment with its stages, transfers and predicted cost (see module docstring)."""

    model: str
    board: str
    algorithm: str
    objective: str
    correction: str
    host: str
    assignment: dict  # op name -> unit name (topological order)
    placements: list
    stages: list
    transfers: list
    latency_us: float
    unit_load_us: dict  # unit -> busy time per input (throughput objective)
    dram_us: float = 0.0  # shared-DRAM time per input (throughput objective)
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # algorithm facts (iterations, run time, ...)

    @property
    def compute_us(self) -> float:
        return sum(p.us for p in self.placements)

    @property
    def transfer_us(self) -> float:
        return sum(t.us for t in self.transfers)

    @property
    def bottleneck_us(self) -> float:
        return max([self.dram_us, *self.unit_load_us.values()])

    @property
    def bottleneck_unit(self) -> Optional[str]:
        """The busiest unit, or ``"DRAM"`` when the shared memory bounds the throughput."""
        if not self.unit_load_us:
            return None
        unit = max(self.unit_load_us, key=self.unit_load_us.get)
        return "DRAM" if self.dram_us > self.unit_load_us[unit] else unit

    @property
    def throughput_ips(self) -> float:
        """Predicted inputs per second when pipelined (1 / busiest unit's load)."""
        return 1e6 / self.bottleneck_us if self.bottleneck_us > 0 else math.inf

    def cost(self, objective: Optional[str] = None) -> float:
        """The number an objective minimises: latency in us, or the bottleneck unit's load in us."""
        return self.latency_us if (objective or self.objective) == "latency" else self.bottleneck_us

    def units_used(self) -> list:
        return list(dict.fromkeys(p.unit for p in self.placements))

    def vendor_units(self) -> list:
        return sorted({s.unit for s in self.stages if s.codegen == VENDOR})

    def summary(self) -> dict:
        return {
            "model": self.model, "board": self.board, "algorithm": self.algorithm, "objective": self.objective,
            "correction": self.correction, "host": self.host,
            "predicted": {"latency_ms": float(self.latency_us / 1e3), "compute_ms": float(self.compute_us / 1e3),
                          "transfer_ms": float(self.transfer_us / 1e3), "throughput_ips": float(self.throughput_ips),
                          "bottleneck_unit": self.bottleneck_unit,
                          "unit_load_ms": {u: float(v / 1e3) for u, v in self.unit_load_us.items()},
                          "dram_ms": float(self.dram_us / 1e3)},
            "stages": [{"index": s.index, "unit": s.unit, "ops": len(s.ops), "first": s.ops[0], "last": s.ops[-1],
                        "compute_ms": float(s.compute_us / 1e3), "transfer_in_ms": float(s.transfer_in_us / 1e3),
                        "codegen": s.codegen} for s in self.stages],
            "transfers": len(self.transfers),
            "assignment": dict(self.assignment),
            "notes": list(self.notes),
            "extra": dict(self.extra),
        }


def evaluate(assignment, table, *, algorithm: str, objective: str = "latency", notes=None, extra=None) -> Plan:
    """Price an assignment (unit index or name per op, in ``table.ops`` order) -> :class:`Plan`.

    Raises
    ------
    tvmedge.errors.PartitionError
        An op is placed on a unit that cannot run it.
    """
    from ..errors import PartitionError

    ops, devices = table.ops, table.devices
    names = [table.units[a] if isinstance(a, (int,)) or hasattr(a, "__index__") else a for a in assignment]
    if len(names) != len(ops.ops):
        raise PartitionError(f"plan places {len(names)} ops but the model has {len(ops.ops)}")
    index = {u: j for j, u in enumerate(table.units)}
    unit_of = {}
    placements = []
    for i, (op, unit) in enumerate(zip(ops.ops, names)):
        est = table.estimates[i][index[unit]]
        if not est.supported:
            raise PartitionError(f"op {op.name} cannot run on unit {unit}: {est.reason}")
        unit_of[op.name] = unit
        placements.append(Placement(op.name, op.kind, unit, float(est.us), est.precision, est.source))
    host = devices.host
    transfers = _transfers(ops, unit_of, host, table)
    stages = _stages(placements, transfers, devices)
    load = {u: 0.0 for u in table.units}
    for p in placements:
        load[p.unit] += p.us
    for t in transfers:
        load[t.dst] += t.us
    load = {u: v for u, v in load.items() if v > 0}
    dram_us = dram_time_us(ops, placements, transfers, devices)
    notes = list(notes or [])
    vendor = sorted({s.unit for s in stages if s.codegen == VENDOR})
    if vendor:
        count = sum(len(s.ops) for s in stages if s.codegen == VENDOR)
        notes.append(f"{count} op(s) on {', '.join(vendor)}: {VENDOR} (TVM has no code generator for that unit)")
    fp16 = sorted({p.unit for p in placements if p.precision == "fp16"
                   and ops.op(p.op).dtype == "float32"})
    if fp16:
        notes.append(f"fp32 ops on {', '.join(fp16)} are priced in fp16 (the unit has no fp32 rate; its "
                     f"toolchain converts)")
    latency = sum(p.us for p in placements) + sum(t.us for t in transfers)
    return Plan(model=ops.name, board=devices.graph["name"], algorithm=algorithm, objective=objective,
                correction=table.correction, host=host, assignment=dict(unit_of), placements=placements,
                stages=stages, transfers=transfers, latency_us=latency, unit_load_us=load, dram_us=dram_us, notes=notes,
                extra=dict(extra or {}))


def dram_time_us(ops, placements, transfers, devices) -> float:
    """Time per input the shared DRAM needs: op bytes at their precision plus a write and a read per transfer."""
    from .cost import bytes_at

    total = sum(bytes_at(ops.op(p.op), p.precision) for p in placements) + sum(2 * t.bytes for t in transfers)
    return float(total / (devices.unit(devices.host).mem_bandwidth_gbps * 1e3))


def tensor_sizes(ops) -> dict:
    """Bytes of every tensor that can move: op outputs (by op name) and graph inputs ("input:<name>").

    The largest size any reader sees (a tuple-producing op is read field by field), or the model output size.
    """
    sizes = {}
    for op in ops.ops:
        for src, nbytes in op.in_edges:
            sizes[src] = max(sizes.get(src, 0), nbytes)
    for name, nbytes in ops.outputs:
        sizes[name] = max(sizes.get(name, 0), nbytes)
    return sizes


def _transfers(ops, unit_of, host, table) -> list:
    sizes = tensor_sizes(ops)
    moved = {}  # (tensor, dst) -> Transfer
    for op in ops.ops:
        dst = unit_of[op.name]
        for src_name, _ in op.in_edges:
            src = host if src_name.startswith("input:") else unit_of[src_name]
            if src == dst or (src_name, dst) in moved:
                continue
            nbytes = sizes[src_name]
            moved[(src_name, dst)] = Transfer(src_name, src, dst, nbytes, float(table.transfer_us(nbytes, src, dst)),
                                              op.name)
    for name, _ in ops.outputs:
        src = unit_of[name]
        if src != host and (name, host) not in moved:
            nbytes = sizes[name]
            moved[(name, host)] = Transfer(name, src, host, nbytes, float(table.transfer_us(nbytes, src, host)),
                                           "output")
    return list(moved.values())


def _stages(placements, transfers, devices) -> list:
    stages = []
    for p in placements:
        if not stages or stages[-1].unit != p.unit:
            codegen = "tvm" if devices.unit(p.unit).target is not None else VENDOR
            stages.append(Stage(len(stages), p.unit, [], 0.0, 0.0, codegen))
        stages[-1].ops.append(p.op)
        stages[-1].compute_us += p.us
        p.stage = stages[-1].index
    stage_of = {p.op: p.stage for p in placements}
    for t in transfers:
        if t.consumer != "output":
            stages[stage_of[t.consumer]].transfer_in_us += t.us
        else:
            stages[-1].transfer_in_us += t.us  # results leave after the last stage
    return stages
