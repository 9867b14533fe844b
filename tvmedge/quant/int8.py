"""Per-output-channel symmetric weight quantization (INT8, and the same rule for INT4).

``q = clip(round(w / s), -qmax, qmax)`` with one scale ``s`` per output channel and zero point 0
(symmetric, so the kernels need no zero-point arithmetic). ``qmax`` is 127 for INT8 and 7 for INT4
(-8 is left unused, which keeps the range symmetric).

Scales: ``absmax`` takes ``max|w| / qmax``; ``mse`` also tries clipping the range (ratios 1.0 down to 0.5)
and keeps, per channel, the scale with the least squared reconstruction error. Clipping rarely pays at
8 bits; at 4 bits it usually does (outliers stretch the 15 levels otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QuantizedWeight", "quantize_weight", "weight_bytes", "QMAX"]

QMAX = {8: 127, 4: 7}
_CLIP_RATIOS = np.linspace(1.0, 0.5, 26)


@dataclass
class QuantizedWeight:
    """Integer values (int8 storage, whatever ``bits``), per-channel scales and the channel axis."""

    values: np.ndarray  # int8, same shape as the float weight
    scale: np.ndarray  # float32, one per channel along ``axis``
    axis: int
    bits: int

    def dequantize(self) -> np.ndarray:
        shape = [1] * self.values.ndim
        shape[self.axis] = -1
        return self.values.astype(np.float32) * self.scale.reshape(shape)

    @property
    def nbytes(self) -> int:
        """Bytes as stored in an artifact: packed two per byte at 4 bits, plus the float32 scales."""
        return weight_bytes(self.values.size, self.bits) + self.scale.size * 4


def weight_bytes(count: int, bits) -> int:
    """Storage of ``count`` weights at ``bits`` (8, 4 or 32 for float), scales not included."""
    if bits == 4:
        return (count + 1) // 2
    return count * (1 if bits == 8 else 4)


def quantize_weight(w: np.ndarray, axis: int, bits: int, method: str = "mse") -> QuantizedWeight:
    """Quantize a float weight per channel along ``axis`` to ``bits`` (8 or 4), symmetric.

    Parameters
    ----------
    w : float array (e.g. a Conv weight ``(O, I, kh, kw)`` with ``axis=0``)
    axis : the output-channel axis
    bits : 8 or 4
    method : ``absmax`` or ``mse`` (search a clipping ratio per channel)
    """
    if bits not in QMAX:
        raise ValueError(f"bits must be 8 or 4, got {bits}")
    qmax = QMAX[bits]
    w = np.asarray(w, np.float32)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)  # (channels, elements)
    absmax = np.abs(moved).max(axis=1)
    absmax = np.where(absmax > 0, absmax, 1.0).astype(np.float32)  # all-zero channel: any scale is exact
    if method == "absmax":
        scale = absmax / qmax
    elif method == "mse":
        scale = _mse_scale(moved, absmax, qmax)
    else:
        raise ValueError(f"unknown weight scale method {method!r}")
    scale = scale.astype(np.float32)
    q = np.clip(np.round(moved / scale[:, None]), -qmax, qmax).astype(np.int8)
    values = np.moveaxis(q.reshape((w.shape[axis],) + tuple(np.delete(w.shape, axis))), 0, axis)
    return QuantizedWeight(np.ascontiguousarray(values), scale, axis, bits)


def _mse_scale(moved: np.ndarray, absmax: np.ndarray, qmax: int) -> np.ndarray:
    best_err = np.full(moved.shape[0], np.inf)
    best = absmax / qmax
    for ratio in _CLIP_RATIOS:
        scale = absmax * ratio / qmax
        q = np.clip(np.round(moved / scale[:, None]), -qmax, qmax)
        err = ((q * scale[:, None] - moved) ** 2).sum(axis=1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best = np.where(better, scale, best)
    return best
