"""Activation ranges from calibration data: min/max, percentile, MSE and KL (entropy) methods.

Two passes over the data: the first finds each tensor's min/max, the second fills a 2048-bin histogram
over that range (memory stays bounded whatever the model size). Each method then picks a range
``[lo, hi]`` (always containing 0) for per-tensor asymmetric uint8 quantization:

- ``minmax``: the observed range. Outliers stretch it and waste levels.
- ``percentile``: clip at the ``percentile``-th percentile at each end (a ReLU output keeps lo = 0).
- ``mse``: the range, among shrinkings of the observed one, with the least expected squared error
  (rounding noise inside, clipping error outside), computed on the histogram (RKNN's "mmse").
- ``kl``: TensorRT's entropy calibration on |x|: the threshold whose quantized distribution is closest
  in KL divergence to the observed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engine import Engine

__all__ = ["ActivationRange", "calibrate", "range_from_histogram", "quant_params"]

BINS = 2048
LEVELS = 256  # uint8


@dataclass
class ActivationRange:
    """A tensor's chosen range and its uint8 quantization parameters."""

    name: str
    lo: float
    hi: float
    observed_min: float
    observed_max: float

    @property
    def params(self) -> tuple:
        return quant_params(self.lo, self.hi)


def quant_params(lo: float, hi: float) -> tuple:
    """``(scale float32, zero_point uint8)`` for uint8 asymmetric quantization of ``[lo, hi]``."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / (LEVELS - 1)
    if scale <= 0:
        return np.float32(1.0), np.uint8(0)
    zero = int(np.clip(round(-lo / scale), 0, LEVELS - 1))
    return np.float32(scale), np.uint8(zero)


def calibrate(model, tensors: list, samples, method: str = "mse", percentile: float = 99.99) -> dict:
    """Ranges of ``tensors`` (names) in ``model`` over ``samples`` -> ``{name: ActivationRange}``."""
    engine = Engine(model, extra_outputs=list(tensors))
    index = {name: engine.output_names.index(name) for name in tensors}
    lows = {name: np.inf for name in tensors}
    highs = {name: -np.inf for name in tensors}
    needs_hist = method != "minmax"
    for sample in samples:
        outputs = engine.run(sample)
        for name in tensors:
            values = np.asarray(outputs[index[name]])
            lows[name] = min(lows[name], float(values.min()))
            highs[name] = max(highs[name], float(values.max()))
    hists = {}
    if needs_hist:
        hists = {name: np.zeros(BINS, np.int64) for name in tensors}
        for sample in samples:
            outputs = engine.run(sample)
            for name in tensors:
                lo, hi = _span(lows[name], highs[name])
                hists[name] += np.histogram(np.asarray(outputs[index[name]]), bins=BINS, range=(lo, hi))[0]
    ranges = {}
    for name in tensors:
        lo, hi = lows[name], highs[name]
        if needs_hist:
            edges = np.linspace(*_span(lo, hi), BINS + 1)
            lo, hi = range_from_histogram(hists[name], edges, method, percentile)
        ranges[name] = ActivationRange(name, min(lo, 0.0), max(hi, 0.0), lows[name], highs[name])
    return ranges


def _span(lo: float, hi: float) -> tuple:
    """Histogram range: the observed one widened to contain 0 and to be non-empty."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    return (lo, hi) if hi > lo else (lo - 1e-6, hi + 1e-6)


def range_from_histogram(hist: np.ndarray, edges: np.ndarray, method: str, percentile: float = 99.99) -> tuple:
    """``(lo, hi)`` chosen by ``method`` (percentile, mse or kl) from a histogram over ``edges``."""
    if method == "percentile":
        return _percentile(hist, edges, percentile)
    if method == "mse":
        return _mse(hist, edges)
    if method == "kl":
        return _kl(hist, edges)
    raise ValueError(f"unknown calibration method {method!r}")


def _percentile(hist, edges, percentile):
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    tail = (100.0 - percentile) / 100.0
    lo = edges[np.searchsorted(cdf, tail, side="right")] if edges[0] < 0 else 0.0
    hi = edges[min(np.searchsorted(cdf, 1.0 - tail, side="left") + 1, len(edges) - 1)] if edges[-1] > 0 else 0.0
    return float(lo), float(hi)


def _mse(hist, edges):
    centers = (edges[:-1] + edges[1:]) / 2
    weights = hist / max(hist.sum(), 1)
    best, best_err = (float(edges[0]), float(edges[-1])), np.inf
    for ratio in np.linspace(0.02, 1.0, 99):
        lo, hi = min(edges[0] * ratio, 0.0), max(edges[-1] * ratio, 0.0)
        scale = (hi - lo) / (LEVELS - 1)
        if scale <= 0:
            continue
        clipped = np.clip(centers, lo, hi)
        err = float((weights * ((centers - clipped) ** 2 + scale * scale / 12.0)).sum())
        if err < best_err:
            best, best_err = (float(lo), float(hi)), err
    return best


def _kl(hist, edges):
    """TensorRT-style entropy calibration on the histogram of |x| (threshold T, range [-T, T] ∩ observed)."""
    centers = (edges[:-1] + edges[1:]) / 2
    top = max(abs(edges[0]), abs(edges[-1]))
    if top <= 0 or hist.sum() == 0:
        return float(edges[0]), float(edges[-1])
    magnitudes = np.histogram(np.abs(centers), bins=BINS, range=(0, top), weights=hist)[0]
    levels = LEVELS // 2 if edges[0] < 0 else LEVELS  # levels available on one side of zero
    best_i, best_kl = BINS, np.inf
    for i in range(levels, BINS + 1, 16):
        reference = magnitudes[:i].astype(np.float64).copy()
        reference[-1] += magnitudes[i:].sum()
        groups = np.array_split(np.arange(i), levels)
        quantized = np.zeros(i)
        for group in groups:
            chunk = magnitudes[group]
            nonzero = chunk > 0
            if nonzero.any():
                quantized[group[nonzero]] = chunk.sum() / nonzero.sum()
        kl = _divergence(reference, quantized)
        if kl < best_kl:
            best_i, best_kl = i, kl
    threshold = top * best_i / BINS
    return float(max(edges[0], -threshold)), float(min(edges[-1], threshold))


def _divergence(p, q):
    p = p / max(p.sum(), 1e-12)
    q = q / max(q.sum(), 1e-12)
    mask = p > 0
    q = np.where(q[mask] > 0, q[mask], 1e-12)
    return float((p[mask] * np.log(p[mask] / q)).sum())
