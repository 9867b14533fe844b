"""``rank_boards``: which board in ``targets/`` runs a model best, by the cost model's prediction (issue 7 §3).

The model is imported once; every board is then partitioned with the same cost model
(:func:`tvmedge.partition.report.partition_ops`, default plan for the objective) and ranked by the predicted
latency (``latency``) or pipelined throughput (``throughput``) of that plan. A feasibility check comes first:
the model's memory must fit in the board's declared ``metrics.memory_capacity`` (or ``memory_gb``): weights plus
the activation storages Relax's static memory plan allocates plus the largest kernel workspace
(:func:`tvmedge.partition.memory.planned_memory`, as the compiler records it in every manifest); if TVM cannot
plan the model, the lower bound of weights plus the largest op's tensors is used and the row says so. A board that cannot be predicted (no compute units, an op no unit
runs, no capacity to check) is listed as not ranked with the reason, never dropped silently.

>>> from tvmedge.partition.rank import rank_boards
>>> result = rank_boards("examples/models/tiny_cnn.onnx", objective="latency")
>>> result["ranked"][0]["board"], result["ranked"][0]["reasons"][0]
('jetson-orin-nano', 'mincut plan on a78ae')
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..errors import ConfigError, PartitionError

__all__ = ["model_memory_bytes", "model_memory", "rank_boards"]


def model_memory_bytes(ops) -> int:
    """A lower bound of the memory a model needs: all weights plus the largest single op's inputs and output."""
    weights = sum(op.bytes_weights for op in ops.ops)
    activations = max((op.bytes_in + op.bytes_out for op in ops.ops), default=0)
    return int(weights + activations)


def model_memory(mod, ops) -> dict:
    """``{"bytes", "how", ...planned figures}``: what the fit checks (see the module docstring)."""
    from .memory import planned_memory

    try:
        plan = planned_memory(mod)
    except Exception as err:  # noqa: BLE001 (a module TVM's pipeline cannot plan): fall back, and say so
        return {"bytes": model_memory_bytes(ops), "how": f"weights + largest op (no static plan: {type(err).__name__})"}
    if plan["activation_bytes"] is None:
        return {"bytes": model_memory_bytes(ops), "how": "weights + largest op (the plan has dynamic sizes)"}
    total = plan["weight_bytes"] + plan["activation_bytes"] + plan["workspace_bytes"]
    return {"bytes": int(total), **plan,
            "how": f"weights {plan['weight_bytes'] / 1e6:.2f} + activations {plan['activation_bytes'] / 1e6:.2f} "
                   f"(Relax static plan) + workspace {plan['workspace_bytes'] / 1e6:.2f} MB"}


def _capacity_gb(board):
    declared = board.metrics.get("memory_capacity")
    if declared is not None:
        return declared.value, f"declared metrics.memory_capacity ({declared.source or board.source})"
    if board.memory_gb is not None:
        return board.memory_gb, "memory_gb in the board YAML (no declared metric)"
    return None, None


def rank_boards(model, *, objective: str = "latency", input_shapes: Optional[Mapping] = None,
                boards: Optional[Sequence] = None, correction: str = "learned") -> dict:
    """Rank ``boards`` (default: every board in ``targets/``) for ``model`` (an ONNX path).

    Returns ``{"model", "objective", "model_mb", "ranked": [...], "not_ranked": [...]}``; each ranked row has
    ``rank``, ``board``, ``latency_ms``, ``throughput_ips``, ``plan``, ``units``, ``vendor_units``,
    ``memory`` (fits: used / capacity) and ``reasons`` (why it ranks where it does); each not-ranked row has
    ``board`` and ``why``.

    Raises
    ------
    ConfigError
        Unknown objective or correction, or an unreadable model (the same errors as ``tvmedge partition``).
    """
    from ..devices.board import list_boards, load_board
    from ..devices.graph import DeviceGraph
    from ..frontend.onnx import import_model
    from .cost import CostModel
    from .opgraph import extract_ops
    from .report import DEFAULT_ALGORITHM, OBJECTIVES, partition_ops

    if objective not in OBJECTIVES:
        raise ConfigError(f"objective '{objective}' is not valid; choose from: {', '.join(OBJECTIVES)}")
    cost_model = CostModel(correction)
    names = list(boards) if boards is not None else list_boards()
    if not names:
        raise ConfigError("no boards to rank: the targets directory is empty")
    imported = import_model(model, input_shapes)
    ops = extract_ops(imported.mod, Path(str(model)).stem)
    if not ops.ops:
        raise PartitionError(f"{model}: the model has no operators to place (only constants)")
    memory = model_memory(imported.mod, ops)
    need = memory["bytes"]
    ranked, not_ranked = [], []
    for name in names:
        try:
            board = name if not isinstance(name, str) else load_board(name)
        except ConfigError as err:
            not_ranked.append({"board": str(name), "why": str(err)})
            continue
        capacity_gb, capacity_src = _capacity_gb(board)
        if capacity_gb is None:
            not_ranked.append({"board": board.name, "why": "no memory capacity declared (metrics.memory_capacity or "
                                                            "memory_gb): cannot check that the model fits"})
            continue
        if need > capacity_gb * 1e9:
            not_ranked.append({"board": board.name, "why": f"model needs {need / 1e6:.1f} MB, more than the "
                                                           f"{capacity_gb:g} GB of {capacity_src}"})
            continue
        try:
            devices = DeviceGraph.from_board(board)
            report = partition_ops(ops, devices, objective=objective, cost_model=cost_model)
        except (ConfigError, PartitionError) as err:
            not_ranked.append({"board": board.name, "why": f"no prediction: {err}"})
            continue
        plan = report.plan
        sources = dict(report.table.sources)
        reasons = [f"{plan.algorithm} plan on {', '.join(plan.units_used())}"
                   + (f" (bottleneck {plan.bottleneck_unit})" if objective == "throughput" else "")]
        analytic = [u for u in plan.units_used() if sources.get(u) == "analytic"]
        if analytic:
            reasons.append(f"{', '.join(analytic)} priced at data-sheet peak (analytic only): optimistic")
        if plan.vendor_units():
            reasons.append(f"{', '.join(plan.vendor_units())} needs the vendor toolchain (no TVM codegen)")
        if plan.transfers:
            reasons.append(f"{len(plan.transfers)} transfers, {plan.transfer_us / 1e3:.3f} ms")
        reasons.append(f"memory {need / 1e6:.2f} MB ({memory['how']}) of {capacity_gb:g} GB"
                       + ("" if "memory_capacity" in board.metrics else " (memory_gb, not a declared metric)"))
        ranked.append({
            "board": board.name, "latency_ms": float(plan.latency_us / 1e3),
            "throughput_ips": float(plan.throughput_ips), "plan": plan.algorithm, "units": plan.units_used(),
            "vendor_units": plan.vendor_units(), "cost_sources": {u: sources[u] for u in plan.units_used()},
            "memory": {"fits": True, "need_mb": need / 1e6, "capacity_gb": capacity_gb, "source": capacity_src},
            "reasons": reasons,
        })
    if objective == "latency":
        ranked.sort(key=lambda r: r["latency_ms"])
    else:
        ranked.sort(key=lambda r: -r["throughput_ips"])
    for i, row in enumerate(ranked, 1):
        row["rank"] = i
        if i > 1:
            best = ranked[0]
            ratio = row["latency_ms"] / best["latency_ms"] if objective == "latency" else \
                best["throughput_ips"] / row["throughput_ips"]
            gap = "slower than" if objective == "latency" else "less throughput than"
            row["reasons"].insert(0, f"{ratio:.2f}x {gap} {best['board']}")
    return {"model": str(model), "objective": objective, "plan": DEFAULT_ALGORITHM[objective],
            "correction": correction, "model_mb": need / 1e6, "memory": memory, "ranked": ranked,
            "not_ranked": not_ranked}
