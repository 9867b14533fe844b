"""``CostModel``: predicted time of every op on every unit that can run it (analytic roofline + learned correction).

1. **Analytic**: ``roofline_us = max(flops / peak(dtype), bytes / mem_bandwidth)`` with the unit's numbers
   from ``targets/<board>.yaml``. A unit can run an op when its ``ops`` list has the op's kind and it has a peak
   for the op's dtype. One documented conversion: a unit with no fp32 peak but an fp16 one runs fp32 ops in
   fp16 (what RKNN-Toolkit2 does with an unquantized model); the estimate says ``precision: fp16``.
2. **Learned**: an XGBoost regressor predicts ``log(measured / roofline)`` from unit-independent op features
   (kind, FLOPs, bytes, conv/matmul shape facts) and the op's arithmetic intensity relative to the unit's ridge
   point. It is trained on real measurements of single ops on this host (:mod:`tvmedge.partition.learn`) and
   stored per unit kind, versioned, in ``tvmedge/partition/models/<kind>-v<N>.json`` (override the folder with
   ``$TVMEDGE_COST_MODELS``). Only the ``cpu`` kind has measurements (there is no GPU or NPU on this host).

``correction`` chooses how the learned model is used, because that is an assumption a user should see:

- ``learned`` (default): units whose kind has a learned model get it; others (GPU, NPU) stay analytic, i.e.
  at their datasheet peak. This favours accelerators: their estimates are lower bounds.
- ``none``: analytic for every unit (apples to apples, every unit at peak).
- ``uniform``: the CPU correction applied to every unit, i.e. every unit is assumed to reach the same fraction
  of its peak as TVM's code does on this host's CPU.

>>> from tvmedge.partition.cost import CostModel
>>> model = CostModel()                         # learned correction where there is one
>>> table = model.table(ops, devices)           # ops: OpGraph, devices: DeviceGraph
>>> table.us[0]                                 # op 0 on each unit, microseconds (inf: cannot run it)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ConfigError

__all__ = ["CostModel", "CostTable", "Estimate", "bytes_at", "features", "FEATURE_NAMES", "FEATURE_VERSION", "models_dir",
           "CORRECTIONS"]

CORRECTIONS = ("learned", "none", "uniform")
FEATURE_VERSION = 1
_KIND_VOCAB = ("conv2d", "matmul", "add", "mul", "relu", "clip", "sigmoid", "pool", "softmax", "concat",
               "reshape", "transpose", "batch_norm")
FEATURE_NAMES = (
    [f"kind_{k}" for k in _KIND_VOCAB] + ["kind_other", "log_flops", "log_bytes", "log_bytes_out",
                                           "log_bytes_weights", "log_intensity_over_ridge", "log_out_elems",
                                           "log_last_dim", "rank", "broadcast", "n_inputs", "kernel", "stride",
                                           "log_groups", "depthwise", "log_cin_per_group", "log_cout",
                                           "log_spatial", "log_m", "log_n", "log_k", "window"]
)
_DTYPE_KEY = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "int8": "int8", "uint8": "int8"}


def models_dir() -> Path:
    """Where learned models live: ``$TVMEDGE_COST_MODELS`` or ``tvmedge/partition/models/``."""
    env = os.environ.get("TVMEDGE_COST_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent / "models"


@dataclass
class Estimate:
    """One op on one unit: the prediction and how it was made (for ``--explain``)."""

    us: float  # predicted time (inf when the unit cannot run the op)
    roofline_us: float
    bound: str  # "compute" | "memory" | "unsupported"
    precision: str = ""  # the dtype key the unit computes in (fp32, fp16, ...)
    source: str = "analytic"  # "analytic" | "learned:cpu-v1" | "uniform:cpu-v1"
    factor: float = 1.0  # us / roofline_us
    reason: str = ""  # why the unit cannot run the op

    @property
    def supported(self) -> bool:
        return math.isfinite(self.us)


@dataclass
class CostTable:
    """Predicted microseconds of every op (rows, topological order) on every unit (columns)."""

    ops: object  # OpGraph
    devices: object  # DeviceGraph
    units: list
    us: np.ndarray
    estimates: list  # [op index][unit index] -> Estimate
    correction: str
    sources: dict = field(default_factory=dict)  # unit -> how its costs were made

    def unit_index(self, name: str) -> int:
        return self.units.index(name)

    def transfer_us(self, nbytes: float, src: str, dst: str) -> float:
        return self.devices.transfer_us(nbytes, src, dst)


class CostModel:
    """Predicts op costs per unit. ``correction``: ``learned`` | ``none`` | ``uniform`` (see module docstring)."""

    def __init__(self, correction: str = "learned", models: Optional[Path] = None):
        if correction not in CORRECTIONS:
            raise ConfigError(f"cost correction '{correction}' is not valid; choose from: {', '.join(CORRECTIONS)}")
        self.correction = correction
        self._dir = Path(models) if models is not None else models_dir()
        self._learned: dict = {}  # unit kind -> (booster, meta) | None

    # --- analytic ---------------------------------------------------------------------------------------

    @staticmethod
    def precision(op, unit) -> tuple:
        """``(dtype key the unit computes the op in, reason it cannot)``; key None when it cannot."""
        if not unit.supports(op.kind):
            listed = "none" if not unit.ops else ", ".join(unit.ops)
            return None, f"op kind {op.kind} is not in {unit.name}'s ops ({listed})"
        if not unit.peak_gops:
            return None, f"{unit.name} has no peak_gops"
        key = _DTYPE_KEY.get(op.dtype)
        if key is None:  # int32/int64/bool index math: no dedicated rate, use the widest float rate
            return ("fp32" if "fp32" in unit.peak_gops else next(iter(unit.peak_gops))), ""
        if key in unit.peak_gops:
            return key, ""
        if key == "fp32" and "fp16" in unit.peak_gops:
            return "fp16", ""
        return None, f"{unit.name} has no {key} rate (peaks: {', '.join(unit.peak_gops)})"

    def roofline(self, op, unit) -> Estimate:
        """The analytic estimate (no learned correction)."""
        key, reason = self.precision(op, unit)
        if key is None:
            return Estimate(math.inf, math.inf, "unsupported", reason=reason)
        compute = op.flops / (unit.peak_gops[key] * 1e3)  # GOP/s = 1e3 op/us
        memory = bytes_at(op, key) / (unit.mem_bandwidth_gbps * 1e3)  # GB/s = 1e3 B/us
        us = max(compute, memory, 1e-3)
        return Estimate(us, us, "compute" if compute >= memory else "memory", precision=key)

    # --- learned ----------------------------------------------------------------------------------------

    def learned_model(self, kind: str):
        """``(booster, meta)`` of the newest learned model for a unit kind, or None."""
        if kind not in self._learned:
            self._learned[kind] = _load_latest(self._dir, kind)
        return self._learned[kind]

    def estimate(self, op, unit) -> Estimate:
        """The estimate for ``op`` on ``unit`` under this model's ``correction`` policy."""
        return self._estimates([op], unit)[0][0]

    def _estimates(self, ops: list, unit) -> tuple:
        """``(estimates, source tag)`` of ``ops`` on one unit (the learned factors predicted in one batch)."""
        bases = [self.roofline(op, unit) for op in ops]
        learned = None
        if self.correction != "none":
            learned = self.learned_model(unit.kind if self.correction == "learned" else "cpu")
        if learned is None:
            return bases, "analytic"
        booster, meta = learned
        tag = f"{'learned' if self.correction == 'learned' else 'uniform'}:{meta['name']}"
        rows = [i for i, b in enumerate(bases) if b.supported]
        factors = np.ones(len(ops))
        if rows:
            factors[rows] = np.exp(_predict(booster, [features(ops[i], unit) for i in rows]))
        out = []
        for base, factor in zip(bases, factors):
            if base.supported:
                base = Estimate(base.roofline_us * float(factor), base.roofline_us, base.bound, base.precision,
                                tag, float(factor))
            out.append(base)
        return out, tag

    def table(self, ops, devices) -> CostTable:
        """Estimates of every op (rows, topological order) on every unit (columns)."""
        units = list(devices.nodes)
        us = np.full((len(ops.ops), len(units)), np.inf)
        estimates = [[None] * len(units) for _ in ops.ops]
        sources = {}
        for j, name in enumerate(units):
            column, sources[name] = self._estimates(ops.ops, devices.unit(name))
            for i, est in enumerate(column):
                estimates[i][j] = est
                us[i, j] = est.us
        return CostTable(ops, devices, units, us, estimates, self.correction, sources)


def bytes_at(op, key: str) -> float:
    """Bytes moved when the unit computes in ``key`` (fp16 halves fp32 tensors)."""
    scale = 0.5 if key == "fp16" and op.dtype == "float32" else 1.0
    return op.bytes_total * scale


def features(op, unit) -> list:
    """The learned model's inputs for ``op`` on ``unit`` (names in :data:`FEATURE_NAMES`)."""
    lg = lambda x: math.log2(float(x) + 1.0)  # noqa: E731
    kinds = [1.0 if op.kind == k else 0.0 for k in _KIND_VOCAB] + [0.0 if op.kind in _KIND_VOCAB else 1.0]
    key = _DTYPE_KEY.get(op.dtype, "fp32")
    peak = unit.peak_gops.get(key) or unit.peak_gops.get("fp16") or max(unit.peak_gops.values(), default=1.0)
    ridge = peak / unit.mem_bandwidth_gbps  # flop per byte where compute and memory time meet
    intensity = op.flops / max(op.bytes_total, 1)
    out_elems = math.prod(op.out_shape) if op.out_shape else 1
    a = op.attrs
    groups = a.get("groups", 1)
    cin = a.get("cin", 0)
    spatial = op.out_shape[2] * op.out_shape[3] if op.kind == "conv2d" and len(op.out_shape) == 4 else 0
    broadcast = float(any(tuple(s) != tuple(op.out_shape) for s in op.in_shapes)) if op.in_shapes else 0.0
    return kinds + [
        lg(op.flops), lg(op.bytes_total), lg(op.bytes_out), lg(op.bytes_weights),
        math.log2((intensity + 1e-3) / ridge), lg(out_elems), lg(op.out_shape[-1] if op.out_shape else 1),
        float(len(op.out_shape)), broadcast, float(len(op.in_shapes)),
        float(a.get("kh", 0) * a.get("kw", 0)), float(a.get("stride", 0)), lg(groups),
        float(groups > 1 and groups == cin), lg(cin // max(groups, 1)), lg(a.get("cout", 0)), lg(spatial),
        lg(a.get("m", 0)), lg(a.get("n", 0)), lg(a.get("k", 0)), float(a.get("window", 0)),
    ]


def _predict(booster, rows) -> np.ndarray:
    import xgboost as xgb

    return booster.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32), feature_names=list(FEATURE_NAMES)))


def _load_latest(folder: Path, kind: str):
    """The highest ``<kind>-v<N>.json`` with a matching ``.meta.json`` and feature version, or None."""
    import xgboost as xgb

    best = None
    for path in folder.glob(f"{kind}-v*.json"):
        if path.name.endswith(".meta.json"):
            continue
        try:
            version = int(path.stem.split("-v")[-1])
        except ValueError:
            continue
        meta_path = path.with_name(path.stem + ".meta.json")
        if not meta_path.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        if meta.get("feature_version") != FEATURE_VERSION:
            continue
        if best is None or version > best[0]:
            best = (version, path, meta)
    if best is None:
        return None
    booster = xgb.Booster()
    booster.load_model(str(best[1]))
    return booster, best[2]
