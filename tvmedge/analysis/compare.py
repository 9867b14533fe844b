"""``tvmedge compare A B``: run two things on the same inputs and compare every intermediate tensor both have, by
ONNX tensor name, to find the first layer where they part.

A side is one of

- ``ort:MODEL.onnx``: ONNX Runtime on the model with every floating-point intermediate tensor made an output
  (:func:`tvmedge.frontend.layers.expose_layers`);
- ``ARTIFACT_DIR``: a tvmedge artifact run on this machine; built with ``compile --expose-layers`` its outputs
  are the model's plus every intermediate tensor by name (otherwise only the model's outputs compare);
- ``ARTIFACT_DIR@emu:NAME``: the same artifact on an emulated board (qemu): "host vs board" on one artifact.

So host vs emulated board is ``compare out-x86-dbg/ out-rk3588-dbg/@emu:rk3588``, tvmedge vs ONNX Runtime is
``compare ort:model.onnx out-dbg/``, float vs quantized is ``compare ort:model.onnx ort:model-int8.onnx`` (or
against a quantized artifact). Side A is the reference.

Per common tensor, in the model's order: cosine similarity, max absolute error, and max relative error
``max|a - b| / max|a|`` (relative to the reference's range, so values near zero do not blow it up). The first
diverging layer is the first whose cosine falls below ``min_cosine`` or whose relative error exceeds ``rtol``;
the largest jump is the layer whose cosine distance (1 - cosine) grew most, at least ``JUMP_FACTOR`` times, over
the largest distance of the layers before it.

"Host vs board" compares two builds of one model (an aarch64 artifact does not run on an x86 host): e.g.
``compare out-x86-dbg/ out-rk3588-dbg/@emu:rk3588``, or ONNX Runtime here against the board's build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ..errors import ConfigError

JUMP_FACTOR = 10.0  # a cosine distance 10x the largest before it is a jump; less is the usual drift along a network
COSINE_FLOOR = 1e-6  # cosine distances below this are float32 rounding, not error

__all__ = ["Side", "parse_side", "CompareReport", "compare", "compare_tensors", "plot_compare"]


@dataclass(frozen=True)
class Side:
    """What runs: ONNX Runtime on a model (``kind="ort"``) or an artifact (``kind="artifact"``) here or on
    ``board`` (``emu:NAME``)."""

    kind: str
    path: str
    board: Optional[str] = None

    @property
    def label(self) -> str:
        if self.kind == "ort":
            return f"onnxruntime:{Path(self.path).name}"
        return f"{Path(self.path).name}@{self.board or 'host'}"


def parse_side(text: str) -> Side:
    """``ort:MODEL.onnx`` | ``ARTIFACT_DIR`` | ``ARTIFACT_DIR@emu:NAME`` -> :class:`Side` (ConfigError otherwise)."""
    if text.startswith("ort:"):
        path = text[4:]
        if not Path(path).is_file():
            raise ConfigError(f"compare side '{text}': {path} is not a file (ort: takes an ONNX model)")
        return Side("ort", path)
    path, sep, board = text.partition("@")
    if sep and not board.startswith("emu:"):
        raise ConfigError(f"compare side '{text}': after @ give an emulated board, e.g. {path}@emu:rk3588")
    if not Path(path).is_dir():
        raise ConfigError(f"compare side '{text}' is neither ort:MODEL.onnx nor an artifact directory")
    return Side("artifact", path, board or None)


@dataclass
class CompareReport:
    a: str
    b: str
    rows: list  # {"layer", "shape", "cosine", "max_abs", "max_rel", "diverged"} in the model's order
    first_diverging: Optional[str]
    largest_jump: Optional[dict]  # {"layer", "factor", "from"}
    only_in_a: int
    only_in_b: int
    min_cosine: float
    rtol: float
    notes: list = field(default_factory=list)
    plot: Optional[str] = None

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "layers": self.rows, "first_diverging": self.first_diverging,
                "largest_jump": self.largest_jump, "only_in_a": self.only_in_a, "only_in_b": self.only_in_b,
                "min_cosine": self.min_cosine, "rtol": self.rtol, "notes": self.notes, "plot": self.plot}


def _side_inputs(side: Side) -> list:
    if side.kind == "ort":
        import onnx

        from ..frontend.onnx import input_specs

        specs = input_specs(onnx.load(side.path, load_external_data=False))
        symbolic = [s.name for s in specs if not all(isinstance(d, int) for d in s.shape)]
        if symbolic:
            raise ConfigError(f"{side.path}: input '{symbolic[0]}' has a symbolic shape; give inputs with --input")
        return specs
    from ..runtime.manifest import Manifest

    return list(Manifest.read(side.path).inputs)


def _run_side(side: Side, feed: Mapping[str, np.ndarray]) -> tuple:
    """``(outputs by name, tensor names in the model's order, number of exposed layers or None)``."""
    if side.kind == "ort":
        import onnx

        from ..frontend.layers import expose_layers
        from ..peer import onnxruntime_outputs

        model = onnx.load(side.path)
        exposed = expose_layers(model, static_only=False)
        outputs = onnxruntime_outputs(exposed, feed, name=side.path)
        own = [o.name for o in model.graph.output]
        order = [o.name for o in exposed.graph.output if o.name not in own] + own
        return outputs, order, len(order) - len(own)
    from ..runtime.loader import load
    from ..runtime.manifest import Manifest
    from .boards import emulated_board

    manifest = Manifest.read(side.path)
    if side.board is None:
        outputs = load(side.path).run(dict(feed))
    else:
        outputs, _ = emulated_board(side.board, manifest, side.path).run_artifact(Path(side.path), feed, repeat=0)
    names = [s.name for s in manifest.outputs]
    exposed = manifest.build.exposed_layers or 0
    own = names[:len(names) - exposed]
    return outputs, names[len(own):] + own, manifest.build.exposed_layers



def compare(a: Side, b: Side, *, inputs: Optional[Mapping] = None, input_files: Sequence[str] = (), seed: int = 0,
            min_cosine: float = 0.999, rtol: float = 1e-2, plot=None) -> CompareReport:
    """Run ``a`` and ``b`` on the same inputs (given, read from ``input_files``, or seeded random ones for a's
    input specs) and compare every tensor both return -> :class:`CompareReport`."""
    from ..runtime.inputs import random_inputs, read_inputs
    from ..runtime.loader import check_inputs

    specs = _side_inputs(a)
    if inputs is None:
        inputs = read_inputs(input_files, specs) if input_files else random_inputs(specs, seed)
    feed = dict(zip((s.name for s in specs), check_inputs(specs, inputs)))
    out_a, order, exposed_a = _run_side(a, feed)
    out_b, _, exposed_b = _run_side(b, feed)
    report = compare_tensors(out_a, out_b, order, min_cosine=min_cosine, rtol=rtol)
    report.a, report.b = a.label, b.label
    for side, exposed in ((a, exposed_a), (b, exposed_b)):
        if side.kind == "artifact" and not exposed:
            report.notes.append(f"{side.label} exposes no intermediate tensors (compile it with --expose-layers); "
                                f"only the model's outputs compare")
    if plot:
        report.plot = plot_compare(report, plot)
    return report


def compare_tensors(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], order: Sequence[str], *,
                    min_cosine: float = 0.999, rtol: float = 1e-2) -> CompareReport:
    """Compare the tensors both mappings hold, in ``order`` (then any others of ``a``)."""
    names = [n for n in dict.fromkeys([*order, *a]) if n in a and n in b]
    rows, notes = [], []
    first, jump, worst = None, None, 0.0
    for name in names:
        ref, got = np.asarray(a[name]), np.asarray(b[name])
        if ref.shape != got.shape:
            notes.append(f"{name}: shape {ref.shape} vs {got.shape}, not compared")
            continue
        row = _metrics(ref, got)
        row.update(layer=name, shape=list(ref.shape))
        row["diverged"] = bool(row["cosine"] < min_cosine or row["max_rel"] > rtol)
        if row["diverged"] and first is None:
            first = name
        distance = 1.0 - row["cosine"] if row["cosine"] == row["cosine"] else 1.0  # NaN: as far as it gets
        if rows:
            factor = max(distance, COSINE_FLOOR) / max(worst, COSINE_FLOOR)
            if factor >= JUMP_FACTOR and (jump is None or factor > jump["factor"]):
                jump = {"layer": name, "factor": factor, "from": worst, "to": distance}
        worst = max(worst, distance)
        rows.append(row)
    return CompareReport("a", "b", rows, first, jump, len(set(a) - set(b)), len(set(b) - set(a)), min_cosine, rtol,
                         notes)


def _metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    x, y = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    if x.size == 0:
        return {"cosine": 1.0, "max_abs": 0.0, "max_rel": 0.0}
    diff = np.abs(x - y)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():  # a NaN or inf on one side only is a divergence; on both sides at the same place it is not
        same = (np.isnan(x) & np.isnan(y)) | (x == y)
        if not same[~finite].all():
            return {"cosine": float("nan"), "max_abs": float("inf"), "max_rel": float("inf")}
        x, y, diff = x[finite], y[finite], diff[finite]
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    cosine = 1.0 if nx == 0 and ny == 0 else (0.0 if nx == 0 or ny == 0 else float(np.dot(x, y) / (nx * ny)))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(x).max()) if x.size else 0.0
    return {"cosine": cosine, "max_abs": max_abs, "max_rel": max_abs / scale if scale > 0 else (0.0 if max_abs == 0
                                                                                               else float("inf"))}


def plot_compare(report: CompareReport, path) -> str:
    """Relative error and 1 - cosine per layer (log scale), the first diverging layer marked -> ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(rows) + 3), 4.2))
    ax.semilogy(xs, [max(r["max_rel"], 1e-12) for r in rows], "o-", label="max |a-b| / max |a|")
    ax.semilogy(xs, [max(1 - r["cosine"], 1e-12) if r["cosine"] == r["cosine"] else 1 for r in rows], "s--",
                label="1 - cosine")
    ax.axhline(report.rtol, color="grey", lw=0.8, ls=":")
    if report.first_diverging is not None:
        index = next(i for i, r in enumerate(rows) if r["layer"] == report.first_diverging)
        ax.axvline(index, color="#C44E52", lw=1.2, label=f"first diverging: {report.first_diverging}")
    ax.set_xticks(list(xs), [r["layer"][:18] for r in rows], rotation=70, fontsize=7)
    ax.set_title(f"{report.a} vs {report.b}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
