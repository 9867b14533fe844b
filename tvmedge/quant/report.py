"""``QuantReport``: what quantization did and what it cost, as JSON and as a printed table.

Float and quantized accuracy and their ratio (with ``--evaluate``), weight bytes before and after, and per
layer: bit width, bytes, and the sensitivity measured for mixed precision.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

__all__ = ["QuantReport"]


@dataclass
class QuantReport:
    model: str
    model_sha256: str
    config: dict
    activations: str  # none | dynamic | static
    layers: list  # of dicts
    size: dict
    calibration: Optional[dict] = None
    mixed: Optional[dict] = None
    accuracy: Optional[dict] = None
    notes: list = field(default_factory=list)
    engine: str = ""
    output: Optional[str] = None

    @classmethod
    def create(cls, *, model, model_sha256, config, layers, plan, size, calibration, mixed, notes) -> "QuantReport":
        from .int8 import weight_bytes

        rows = []
        for layer in layers:
            bits = None if layer.excluded else layer.bits
            row = {"name": layer.node, "op": layer.op, "weight": layer.weight, "shape": list(layer.shape),
                   "bits": bits if bits is not None else "float",
                   "bytes": weight_bytes(layer.params, bits or 32) + (layer.shape[layer.axis] * 4 if bits else 0),
                   "excluded": layer.excluded}
            if bits is not None and layer.stored_bytes is not None:
                row["bytes"] = layer.stored_bytes
            if bits is not None and layer.group_size:
                row["group_size"] = layer.group_size  # MatMulNBits: one scale per group_size weights along K
            if layer.source_name and layer.source_name != layer.node:
                row["source_name"] = layer.source_name  # the node's name in the file, before folding renamed it
            if layer.sensitivity is not None:
                row["sensitivity"] = layer.sensitivity
            rows.append(row)
        if plan.ranges:
            calibration = dict(calibration or {}, method=config.calibration_method,
                               ranges={k: [round(v.lo, 6), round(v.hi, 6)] for k, v in sorted(plan.ranges.items())})
        return cls(model=model, model_sha256=model_sha256, config=config.describe(), activations=plan.mode,
                   layers=rows, size=size, calibration=calibration, mixed=mixed, notes=list(notes))

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def summary_line(self) -> str:
        s = self.size
        line = (f"weights {_kib(s['float_weight_bytes'])} -> {_kib(s['quant_weight_bytes'])} "
                f"({100 * s['weight_ratio']:.1f} % of float)")
        if self.accuracy:
            a = self.accuracy
            line += (f"; {a['metric']} on {a['samples']} samples: float {a['float']:.4f}, quantized "
                     f"{a['quantized']:.4f} (ratio {a['ratio']:.4f})")
        return line

    def table(self) -> str:
        """The human-readable report."""
        c = self.config
        lines = [f"model: {self.model}" + (f" -> {self.output}" if self.output else ""),
                 f"config: type {c['type']}, bit_width {c['bit_width']}, activations {self.activations}"
                 + (f", calibration {self.calibration.get('method', 'data')} on {self.calibration['samples']} samples"
                    if self.calibration else "")]
        if self.accuracy:
            a = self.accuracy
            lines.append(f"accuracy ({a['metric']}, {a['samples']} samples of {Path(a['dataset']).name}): "
                         f"float {a['float']:.4f}, quantized {a['quantized']:.4f}, ratio {a['ratio']:.4f}; "
                         f"output relative error {a['output_relative_error']:.4f}")
        s = self.size
        lines.append(f"weights: {_kib(s['float_weight_bytes'])} float -> {_kib(s['quant_weight_bytes'])} "
                     f"({100 * s['weight_ratio']:.1f} %); ONNX file {_kib(s['float_onnx_bytes'])} -> "
                     f"{_kib(s['quant_onnx_bytes'])}")
        if self.mixed:
            m = self.mixed
            lines.append(f"mixed: {len(m['int4_layers'])} INT4 layers; calibration accuracy float "
                         f"{m['float_calibration_accuracy']:.4f} -> {m['calibration_accuracy']:.4f}; "
                         f"target size {m['target_size_ratio']}, max drop {m['max_accuracy_drop']}")
        headers = ["layer", "op", "shape", "bits", "bytes", "acc drop (int4)", "out err (int4)"]
        rows = []
        for row in self.layers:
            sens = row.get("sensitivity") or {}
            rows.append([row["name"] + (f" ({row['source_name']})" if row.get("source_name") else ""), row["op"],
                         "x".join(map(str, row["shape"])),
                         str(row["bits"]) + (f" g{row['group_size']}" if row.get("group_size") else "")
                         + (" (excluded)" if row["excluded"] else ""), f"{row['bytes']:,}",
                         _fmt(sens.get("accuracy_drop")), _fmt(sens.get("output_error"))])
        lines += ["", _table(rows, headers)]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _kib(count) -> str:
    if count is None:
        return "?"
    return f"{count / 1024:,.1f} KiB" if count < 1 << 20 else f"{count / (1 << 20):,.2f} MiB"


def _table(rows, headers) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])
