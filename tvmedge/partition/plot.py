"""Plot a partition report: the op graph coloured by unit, and the plans side by side."""

from __future__ import annotations

import networkx as nx

__all__ = ["plot_report"]

_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _layers(dag, order) -> dict:
    """Position per op: x = longest path from a graph input, y = spread within that column."""
    depth = {}
    for name in order:
        depth[name] = 1 + max((depth[p] for p in dag.predecessors(name)), default=-1)
    columns: dict = {}
    for name in order:
        columns.setdefault(depth[name], []).append(name)
    pos = {}
    for x, names in columns.items():
        for k, name in enumerate(names):
            pos[name] = (x, (k - (len(names) - 1) / 2) * 1.0)
    return pos


def plot_report(report, path) -> str:
    """Write a PNG: top, the ops (coloured by unit, hatched edges = transfers); bottom, the plans compared."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    plan, table = report.plan, report.table
    ops = table.ops
    colour = {u: _COLOURS[j % len(_COLOURS)] for j, u in enumerate(table.units)}
    order = [op.name for op in ops.ops]
    pos = _layers(ops.dag, order)
    width = min(max(10.0, len(set(x for x, _ in pos.values())) * 0.09), 30.0)
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(width, 8.5), gridspec_kw={"height_ratios": [3, 2]})
    same = [(a, b) for a, b in ops.dag.edges if plan.assignment[a] == plan.assignment[b]]
    moved = [(a, b) for a, b in ops.dag.edges if plan.assignment[a] != plan.assignment[b]]
    nx.draw_networkx_edges(ops.dag, pos, edgelist=same, ax=ax, width=0.6, edge_color="#BBBBBB", arrows=False)
    nx.draw_networkx_edges(ops.dag, pos, edgelist=moved, ax=ax, width=1.4, edge_color="black", style="dashed",
                           arrows=False)
    size = max(8, min(60, 4000 // max(len(order), 1)))
    nx.draw_networkx_nodes(ops.dag, pos, nodelist=order, ax=ax, node_size=size,
                           node_color=[colour[plan.assignment[n]] for n in order])
    vendor = set(plan.vendor_units())
    handles = [Line2D([], [], marker="o", ls="", color=colour[u],
                      label=f"{u} ({sum(1 for p in plan.placements if p.unit == u)} ops)"
                            + (" - vendor toolchain" if u in vendor else ""))
               for u in table.units if u in plan.units_used()]
    handles.append(Line2D([], [], ls="--", color="black", label=f"transfer ({len(plan.transfers)})"))
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=len(handles))
    ax.set_title(f"{ops.name} on {plan.board}: {plan.algorithm} plan ({plan.objective}), predicted "
                 f"{plan.latency_us / 1e3:.2f} ms/input, {plan.throughput_ips:.0f} inputs/s pipelined "
                 f"[costs: {table.correction}]", fontsize=10)
    ax.axis("off")
    _plot_comparison(bx, report)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _plot_comparison(ax, report) -> None:
    rows = [r for r in report.comparison() if "error" not in r]
    names = [r["plan"] + (" *" if r["chosen"] else "") for r in rows]
    x = range(len(rows))
    latency = [r["latency_ms"] for r in rows]
    ax.bar([i - 0.2 for i in x], latency, width=0.4, color="#4C72B0", label="latency (ms, left)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, fontsize=9)
    twin = ax.twinx()
    twin.bar([i + 0.2 for i in x], [r["throughput_ips"] for r in rows], width=0.4, color="#DD8452",
             label="throughput (inputs/s, right)")
    twin.set_ylabel("predicted throughput (inputs/s)")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['latency_ms']:.2f}", (i - 0.2, r["latency_ms"]), ha="center", va="bottom", fontsize=7)
        twin.annotate(f"{r['throughput_ips']:.0f}", (i + 0.2, r["throughput_ips"]), ha="center", va="bottom",
                      fontsize=7)
    ax.set_ylim(0, max(latency, default=1) * 1.3)
    twin.set_ylim(0, max((r["throughput_ips"] for r in rows), default=1) * 1.3)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left", ncol=2)
    ax.set_title("plans compared (* = chosen); same cost model and rules for all", fontsize=9)
