"""``DeviceGraph``: a board's compute units and links as a networkx graph (what the partitioner places onto).

Nodes are compute units (attribute ``unit``: the :class:`~tvmedge.devices.board.ComputeUnit`, plus flat
copies of its numbers), edges are links (``bandwidth_gbps``, ``latency_us``, ``sync_us``). Links are
undirected: on these boards every unit reaches the others through shared DRAM, and a YAML lists each pair
once. Units without a direct link talk through intermediate units (store and forward: each hop costs its
own latency, sync and bandwidth), found as the cheapest path for the tensor size at hand.

>>> from tvmedge.devices.graph import DeviceGraph
>>> g = DeviceGraph.from_board("rk3588")
>>> sorted(g.nodes)
['a55', 'a76', 'mali_g610', 'npu']
>>> round(g.transfer_us(1_000_000, "a76", "mali_g610"), 1)  # 1 MB: 50 us latency + 100 us sync + 59.2 us
209.2
"""

from __future__ import annotations

from typing import Optional, Union

import networkx as nx

from ..errors import ConfigError
from .board import Board, ComputeUnit, load_board

__all__ = ["DeviceGraph", "device_graph"]


class DeviceGraph(nx.Graph):
    """A networkx ``Graph`` of compute units (nodes) and links (edges), built from a :class:`Board`.

    ``host`` is the unit the model's inputs arrive on and its outputs must return to: the CPU cluster that
    compiles to the board's own TVM target (the first CPU unit if none does).
    """

    board: Optional[Board] = None
    host: Optional[str] = None

    @classmethod
    def from_board(cls, board: Union[str, Board]) -> "DeviceGraph":
        """Build and check the graph.

        Raises
        ------
        ConfigError
            The board has no compute units or no CPU unit, or some units are not linked to the others.
        """
        board = board if isinstance(board, Board) else load_board(board)
        if not board.compute_units:
            raise ConfigError(f"board {board.name} describes no compute units; add 'compute_units' to its YAML "
                              f"(see targets/rk3588.yaml)")
        graph = cls()
        graph.board = board
        graph.graph["name"] = board.name
        for unit in board.compute_units:
            graph.add_node(unit.name, unit=unit, kind=unit.kind, model=unit.model, cores=unit.cores,
                           peak_gops=dict(unit.peak_gops), mem_bandwidth_gbps=unit.mem_bandwidth_gbps,
                           ops=unit.ops, codegen=unit.target is not None)
        for link in board.links:
            if link.src == link.dst:
                raise ConfigError(f"board {board.name}: link {link.src} -> {link.dst} connects a unit to itself")
            graph.add_edge(link.src, link.dst, link=link, bandwidth_gbps=link.bandwidth_gbps,
                           latency_us=link.latency_us, sync_us=link.sync_us)
        graph._check_connected()
        graph.host = graph._pick_host()
        return graph

    def _check_connected(self) -> None:
        if self.number_of_nodes() > 1 and not nx.is_connected(self):
            first = next(iter(self.nodes))  # the board's first unit anchors the main part
            reached = nx.node_connected_component(self, first)
            stray = ", ".join(n for n in self.nodes if n not in reached)
            raise ConfigError(f"board {self.graph['name']}: unit(s) {stray} have no link to the other units; "
                              f"add a 'links' entry (src, dst, bandwidth_gbps) connecting them")

    def _pick_host(self) -> str:
        cpus = [n for n in self.nodes if self.nodes[n]["kind"] == "cpu"]
        if not cpus:
            raise ConfigError(f"board {self.graph['name']} has no CPU unit; the host that feeds inputs must be "
                              f"a unit of kind cpu")
        for name in cpus:
            if self.nodes[name]["unit"].target == self.board.target:
                return name
        return cpus[0]

    # --- queries --------------------------------------------------------------------------------------------

    @property
    def units(self) -> list:
        """The compute units, in the board's order."""
        return [self.nodes[n]["unit"] for n in self.nodes]

    def unit(self, name: str) -> ComputeUnit:
        if name not in self.nodes:
            raise ConfigError(f"board {self.graph['name']} has no unit '{name}'; choose from: {', '.join(self.nodes)}")
        return self.nodes[name]["unit"]

    def transfer_us(self, nbytes: float, src: str, dst: str) -> float:
        """Predicted time to hand a tensor of ``nbytes`` from ``src`` to ``dst`` (0 on the same unit).

        One hop costs ``latency_us + sync_us + nbytes / bandwidth``; without a direct link the cheapest path
        through other units is used.
        """
        if src == dst:
            return 0.0
        if self.has_edge(src, dst):
            return _hop_us(self.edges[src, dst], nbytes)
        return nx.shortest_path_length(self, src, dst, weight=lambda a, b, data: _hop_us(data, nbytes))

    def summary(self) -> dict:
        """Plain data for ``tvmedge devices show --json``."""
        units = []
        for name in self.nodes:
            unit = self.nodes[name]["unit"]
            units.append({
                "name": name, "kind": unit.kind, "model": unit.model, "cores": unit.cores,
                "freq_ghz": unit.freq_ghz, "peak_gops": dict(unit.peak_gops),
                "mem_bandwidth_gbps": unit.mem_bandwidth_gbps, "memory_gb": unit.memory_gb,
                "ops": unit.ops, "tvm_target": unit.target,
                "codegen": "tvm" if unit.target is not None else "vendor toolchain required",
                "host": name == self.host,
            })
        links = [{"src": a, "dst": b, "bandwidth_gbps": d["bandwidth_gbps"], "latency_us": d["latency_us"],
                  "sync_us": d["sync_us"]} for a, b, d in self.edges(data=True)]
        return {"board": self.graph["name"], "description": self.board.description, "host": self.host,
                "units": units, "links": links}

    def plot(self, path) -> str:
        """Draw the units (coloured by kind, sized by fp32/fp16 peak) and the links (labelled) into ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        colours = {"cpu": "#4C72B0", "gpu": "#55A868", "npu": "#C44E52"}
        pos = _layout(self)
        fig, ax = plt.subplots(figsize=(8, 6))
        nx.draw_networkx_edges(self, pos, ax=ax, width=1.5, edge_color="#999999")
        edge_labels = {(a, b): f"{d['bandwidth_gbps']:g} GB/s, {d['latency_us']:g}+{d['sync_us']:g} us"
                       for a, b, d in self.edges(data=True)}
        nx.draw_networkx_edge_labels(self, pos, edge_labels, ax=ax, font_size=7, label_pos=0.3, rotate=False,
                                     bbox={"boxstyle": "round", "fc": "white", "ec": "#cccccc"})
        nx.draw_networkx_nodes(self, pos, ax=ax, node_size=900, alpha=0.95,
                               node_color=[colours.get(self.nodes[n]["kind"], "#8172B2") for n in self.nodes])
        for name, (x, y) in pos.items():
            unit = self.nodes[name]["unit"]
            extra = "" if unit.target is not None else "\nvendor toolchain only"
            ax.annotate(f"{name} ({unit.model or unit.kind})\n{_peak_text(unit)}{extra}", (x, y), xytext=(0, -26),
                        textcoords="offset points", ha="center", va="top", fontsize=8)
        ax.set_title(f"{self.graph['name']}: compute units and links (transfer = latency + sync + bytes/bandwidth)",
                     fontsize=10)
        ax.margins(0.3)
        ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return str(path)


def _layout(graph) -> dict:
    """Units on a circle, turned so that four units sit on the corners of a square (labels stay apart)."""
    import math

    n = graph.number_of_nodes()
    if n == 1:
        return {name: (0.0, 0.0) for name in graph.nodes}
    start = math.pi / 4 if n == 4 else math.pi / 2
    return {name: (math.cos(start + 2 * math.pi * i / n), math.sin(start + 2 * math.pi * i / n))
            for i, name in enumerate(graph.nodes)}


def _hop_us(link: dict, nbytes: float) -> float:
    return link["latency_us"] + link["sync_us"] + nbytes / (link["bandwidth_gbps"] * 1e3)


def _peak_text(unit: ComputeUnit) -> str:
    peaks = ", ".join(f"{k} {v:g}" for k, v in unit.peak_gops.items())
    return f"peak GOP/s: {peaks}" if peaks else "no peak given"


def device_graph(board: Union[str, Board]) -> DeviceGraph:
    """The :class:`DeviceGraph` of a board name, YAML path or :class:`Board` (library twin of ``devices show``)."""
    return DeviceGraph.from_board(board)
