"""``tvmedge profile``: where an artifact's time goes, kernel by kernel, tied back to the ONNX layers.

The measurement runs where the model runs (:mod:`tvmedge.runtime.profile`: this machine, or an emulated board's
own Python under qemu); this module joins it with the artifact's :class:`~tvmedge.runtime.layers.LayerMap`
(ONNX layers and FLOPs per kernel call, from compile time), the board's peak (``peak_gops.fp32`` of the unit a
stage is built for, from ``targets/<board>.yaml``) and the manifest's memory report, and renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

__all__ = ["ProfileReport", "profile_artifact", "build_report", "plot_profile"]


@dataclass
class ProfileReport:
    """One profile: ``rows`` (one per kernel call, in execution order: stage, kernel, layers, ms, share, flops,
    gflops, integer, peak_gflops, peak_pct), stage totals, memory, and where it ran."""

    artifact: str
    where: str
    emulated: bool
    repeat: int
    rows: list
    stages: list  # {"index", "unit", "total_ms", "kernel_ms", "builtin_ms", "builtin_calls", "other_ms"}
    total_ms: float
    plain_ms: Optional[float] = None  # the same runs without the profiler
    memory: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    plot: Optional[str] = None

    def to_json(self) -> dict:
        return {"artifact": self.artifact, "where": self.where, "emulated": self.emulated, "repeat": self.repeat,
                "total_ms": self.total_ms, "plain_ms": self.plain_ms, "stages": self.stages, "kernels": self.rows, "memory": self.memory,
                "notes": self.notes, "plot": self.plot}

    def top(self, n: int) -> list:
        return sorted(self.rows, key=lambda r: -r["ms"])[:n]


def profile_artifact(artifact, feed: dict, *, board: Optional[str] = None, repeat: int = 10,
                     plot=None) -> ProfileReport:
    """Measure ``artifact`` on ``feed`` (checked inputs by name) here or on an emulated board, and report."""
    from ..errors import ConfigError
    from ..runtime.manifest import Manifest

    if board is None:
        from ..runtime.loader import load
        from ..runtime.profile import profile

        measured = profile(load(artifact), feed, repeat=repeat)
    else:
        from .boards import emulated_board

        emulated = emulated_board(board, Manifest.read(artifact), artifact)
        if not hasattr(emulated, "profile_artifact"):
            raise ConfigError(f"profiling on {board} is not supported: its artifacts run with the C++ loader, which "
                              f"has no per-kernel profiler (boards with a Python runtime: aarch64)")
        measured = emulated.profile_artifact(Path(artifact), feed, repeat=repeat)
    report = build_report(artifact, measured, where=board or "host", emulated=board is not None)
    if plot:
        report.plot = plot_profile(report, plot)
    return report


def _peaks(manifest, precision: str = "fp32") -> dict:
    """unit name (or None for the board's main CPU) -> peak G(FL)OP/s at ``precision`` (``fp32``, ``int8``),
    where the board YAML declares one."""
    from ..devices.board import load_board
    from ..errors import TvmedgeError

    try:
        board = load_board(manifest.board)
    except TvmedgeError:
        return {}
    peaks = {u.name: u.peak_gops.get(precision) for u in board.compute_units}
    cpus = [u for u in board.compute_units if u.kind == "cpu"]
    if cpus:
        peaks[None] = cpus[0].peak_gops.get(precision)
    return peaks


def build_report(artifact, measured: dict, *, where: str, emulated: bool) -> ProfileReport:
    """Join a :func:`tvmedge.runtime.profile.profile` result with the artifact's layer map and board peaks."""
    from ..runtime.layers import LayerMap
    from ..runtime.manifest import Manifest

    manifest = Manifest.read(artifact)
    layer_map = LayerMap.read(artifact)
    peaks, int8_peaks = _peaks(manifest), _peaks(manifest, "int8")
    stages_meta = manifest.stages()
    rows, stages, notes = [], [], []
    if layer_map is None:
        notes.append("the artifact has no layers.json (built before per-layer maps): kernels are not tied to ONNX "
                     "layers; recompile it")
    total = float(measured["total_ms"]) or 1e-12
    for stage in measured["stages"]:
        meta = stages_meta[stage["index"]]
        unit = meta.built_for or meta.unit
        peak = peaks.get(unit, peaks.get(None))
        int8_peak = int8_peaks.get(unit, int8_peaks.get(None))
        mapped = layer_map.stage(stage["index"]) if layer_map is not None else None
        sites = list(mapped.calls) if mapped is not None and mapped.calls is not None else None
        if mapped is not None and mapped.calls is None and mapped.note:
            notes.append(f"stage {stage['index']}: {mapped.note}")
        position = 0
        for call in stage["calls"]:
            site = None
            if sites is not None:  # kernels the VM replaced by a builtin (reshape views) are skipped over
                while position < len(sites) and sites[position].kernel != call["kernel"]:
                    position += 1
                if position < len(sites):
                    site, position = sites[position], position + 1
            flops = site.flops if site is not None else None
            integer = bool(site is not None and site.integer)
            gflops = flops / (call["ms"] * 1e6) if flops and call["ms"] > 0 else None
            top = int8_peak if integer else peak  # an integer kernel against the int8 peak (GOP/s)
            rows.append({"stage": stage["index"], "kernel": call["kernel"],
                         "layers": list(site.layers) if site is not None else [], "ms": call["ms"],
                         "share": call["ms"] / total, "flops": flops, "gflops": gflops, "integer": integer,
                         "peak_gflops": top, "peak_pct": 100.0 * gflops / top if gflops is not None and top else None})
        kernel_ms = sum(c["ms"] for c in stage["calls"])
        stages.append({"index": stage["index"], "unit": unit, "total_ms": stage["total_ms"], "kernel_ms": kernel_ms,
                       "builtin_ms": stage["builtin_ms"], "builtin_calls": stage["builtin_calls"],
                       "other_ms": max(0.0, stage["total_ms"] - kernel_ms - stage["builtin_ms"])})
    if any(r["integer"] for r in rows):
        notes.append("integer kernels (int8 x int8 -> int32; marked 'i' after their GOP/s) are compared with the "
                     "board's int8 peak")
    if emulated:
        notes.append("emulated board: times are qemu's, not the board's; shares show where the work is, GFLOP/s "
                     "against the board's peak mean nothing")
    memory = dict(manifest.build.memory or {})
    memory.update(peak_rss_bytes=measured.get("peak_rss_bytes"), rss_before_load_bytes=measured.get("rss_before_bytes"))
    return ProfileReport(str(artifact), where, emulated, int(measured["repeat"]), rows, stages, total,
                         measured.get("plain_ms"), memory, notes)


def plot_profile(report: ProfileReport, path, *, top: int = 20) -> str:
    """A horizontal bar chart of the ``top`` kernel calls by time, labelled with their ONNX layers -> ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.top(top)[::-1]
    labels = [_label(r) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(rows) + 1.6))
    colours = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]
    ax.barh(range(len(rows)), [r["ms"] for r in rows], color=[colours[r["stage"] % len(colours)] for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    for i, r in enumerate(rows):
        extra = f" {100 * r['share']:.1f}%" + (f", {r['gflops']:.1f} GFLOP/s" if r["gflops"] else "")
        ax.text(r["ms"], i, extra, va="center", fontsize=7)
    ax.set_xlabel("median time per call (ms)" + (" — emulated, not the board's" if report.emulated else ""))
    ax.set_title(f"{Path(report.artifact).name} on {report.where}: top {len(rows)} kernel calls of "
                 f"{report.total_ms:.3f} ms")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _label(row: dict) -> str:
    layers = ", ".join(row["layers"][:3]) + (" ..." if len(row["layers"]) > 3 else "")
    return f"{row['kernel'][:32]} [{layers or '?'}]"
