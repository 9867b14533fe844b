"""Group-wise (block-wise) INT4 weights in ONNX Runtime's ``com.microsoft.MatMulNBits`` layout.

A MatMul weight ``W`` (``K x N``, ``y = x @ W``) is cut along ``K`` into blocks of ``block_size`` (32, 64 or 128)
values per output column; each block has its own scale (and, asymmetric, its own zero point):
``w = (q - zero_point) * scale`` with ``q`` in ``[0, 15]``. Stored as ONNX Runtime stores it:

- ``B``: uint8 ``[N, n_blocks, block_size / 2]``, two values per byte along ``K``, the first in the low nibble;
  ``K`` is padded with zeros to a whole number of blocks;
- ``scales``: ``[N, n_blocks]`` (float32, or float16 when ``scale_dtype: float16``);
- ``zero_points`` (asymmetric only): uint8 ``[N, ceil(n_blocks / 2)]``, two per byte, low nibble first; without
  them the zero point is 8 (symmetric).

Scales: ``absmax`` computes them exactly as ONNX Runtime's quantizer (MLAS ``MlasQuantizeBlockwise``) does, so
the two write the same bytes; ``mse`` also tries narrower ranges per block and keeps the one with the least
squared error (at 4 bits an outlier otherwise stretches the 15 steps of its whole block). We quantize with
numpy rather than calling ONNX Runtime's quantizer because that one needs the ``onnx_ir`` package, cannot write
float16 scales for a float32 model, has no clipping search and would make ONNX Runtime a dependency of
``tvmedge quantize``; the tests check both write the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["BlockQuantizedWeight", "quantize_blockwise", "GROUP_SIZES", "pack_nibbles", "unpack_nibbles"]

GROUP_SIZES = (32, 64, 128)
_CLIP_RATIOS = np.linspace(1.0, 0.6, 17)


@dataclass
class BlockQuantizedWeight:
    """A ``K x N`` weight, group-wise INT4, in MatMulNBits' arrays."""

    packed: np.ndarray  # uint8 [N, n_blocks, block_size // 2]
    scales: np.ndarray  # float32 / float16 [N, n_blocks]
    zero_points: Optional[np.ndarray]  # uint8 [N, ceil(n_blocks / 2)] (None: symmetric, zero point 8)
    k: int
    n: int
    block_size: int
    bits: int = 4
    axis: int = 1  # the output-channel axis of the K x N weight (as QuantizedWeight has)

    @property
    def n_blocks(self) -> int:
        return self.packed.shape[1]

    def codes(self) -> np.ndarray:
        """uint8 ``[N, n_blocks * block_size]`` codes in [0, 15] (padding included)."""
        return unpack_nibbles(self.packed.reshape(self.n, -1), self.n_blocks * self.block_size)

    def zeros(self) -> np.ndarray:
        """uint8 ``[N, n_blocks]`` zero points (8 everywhere when symmetric)."""
        if self.zero_points is None:
            return np.full((self.n, self.n_blocks), 8, np.uint8)
        return unpack_nibbles(self.zero_points, self.n_blocks)

    def dequantize(self) -> np.ndarray:
        """The float32 ``K x N`` weight these arrays stand for."""
        codes = self.codes().reshape(self.n, self.n_blocks, self.block_size).astype(np.float32)
        scales = self.scales.astype(np.float32)[:, :, None]
        w = (codes - self.zeros().astype(np.float32)[:, :, None]) * scales
        return np.ascontiguousarray(w.reshape(self.n, -1)[:, :self.k].T)

    @property
    def nbytes(self) -> int:
        """Bytes as stored: packed codes, scales and packed zero points."""
        zp = 0 if self.zero_points is None else self.zero_points.nbytes
        return self.packed.nbytes + self.scales.nbytes + zp


def pack_nibbles(values: np.ndarray, fill: int = 0) -> np.ndarray:
    """uint8 values in [0, 15], ``[rows, cols]`` -> ``[rows, ceil(cols / 2)]`` bytes, low nibble first (an odd
    ``cols`` leaves the last high nibble ``fill``)."""
    values = np.asarray(values, np.uint8)
    if values.shape[1] % 2:
        values = np.concatenate([values, np.full((values.shape[0], 1), fill, np.uint8)], axis=1)
    return (values[:, 0::2] & 0x0F) | ((values[:, 1::2] & 0x0F) << 4)


def unpack_nibbles(packed: np.ndarray, cols: int) -> np.ndarray:
    """Inverse of :func:`pack_nibbles` -> uint8 ``[rows, cols]``."""
    packed = np.asarray(packed, np.uint8)
    out = np.empty((packed.shape[0], packed.shape[1] * 2), np.uint8)
    out[:, 0::2], out[:, 1::2] = packed & 0x0F, packed >> 4
    return out[:, :cols]


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``roundf`` (what MLAS uses), not numpy's round-half-to-even."""
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def _codes(blocks, scale, zero) -> np.ndarray:
    """MLAS: ``clamp(roundf(v * (1 / scale) + zp), 0, 15)`` in float32."""
    scale = scale.astype(np.float32)
    reciprocal = np.where(scale != 0, np.float32(1.0) / np.where(scale != 0, scale, 1), 0).astype(np.float32)
    return np.clip(_round_half_away(blocks * reciprocal[..., None] + zero[..., None]), 0, 15)


def _params(low, high, symmetric: bool, scale_dtype):
    """Scale and zero point of blocks with range ``[low, high]``, as MLAS computes them (``range2scale`` /
    ``range2scalezp``); the scale is rounded to ``scale_dtype`` before the codes are computed from it."""
    if symmetric:
        peak = np.where(np.abs(high) > np.abs(low), high, low)
        scale = (peak / np.float32(-8.0)).astype(scale_dtype)
        return scale, np.full(scale.shape, 8.0, np.float32)
    low, high = np.minimum(low, 0), np.maximum(high, 0)
    scale = ((high - low) / np.float32(15.0)).astype(np.float32)
    zero = np.where(scale != 0, -low / np.where(scale != 0, scale, 1), low)
    zero = np.clip(_round_half_away(zero), 0, 15).astype(np.float32)
    return scale.astype(scale_dtype), zero


def quantize_blockwise(w: np.ndarray, block_size: int, *, symmetric: bool = True, scale_dtype: str = "float32",
                       method: str = "absmax") -> BlockQuantizedWeight:
    """Quantize a float ``K x N`` weight group-wise along ``K`` -> :class:`BlockQuantizedWeight`.

    Parameters
    ----------
    w : float array ``(K, N)`` (a MatMul's second input)
    block_size : values per block along ``K`` (a power of two >= 16; the config allows 32, 64, 128)
    symmetric : zero point 8 for every block (no zero points stored) or one per block
    scale_dtype : ``float32`` or ``float16``
    method : ``absmax`` (ONNX Runtime's scales) or ``mse`` (per block, the clipping with the least error)
    """
    w = np.asarray(w, np.float32)
    if w.ndim != 2:
        raise ValueError(f"block-wise quantization takes a 2-D weight, got shape {w.shape}")
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two >= 16, got {block_size}")
    k, n = w.shape
    n_blocks = -(-k // block_size)
    padded = np.zeros((n_blocks * block_size, n), np.float32)
    padded[:k] = w
    blocks = np.ascontiguousarray(padded.T).reshape(n, n_blocks, block_size)
    low, high = blocks.min(axis=2), blocks.max(axis=2)
    dtype = np.dtype(scale_dtype)
    if method == "absmax":
        scale, zero = _params(low, high, symmetric, dtype)
    elif method == "mse":
        scale, zero, best = None, None, None
        for ratio in _CLIP_RATIOS:
            s, z = _params(low * ratio, high * ratio, symmetric, dtype)
            q = _codes(blocks, s, z)
            err = (((q - z[..., None]) * s.astype(np.float32)[..., None] - blocks) ** 2).sum(axis=2)
            if best is None:
                scale, zero, best = s, z, err
                continue
            better = err < best
            scale, zero, best = np.where(better, s, scale), np.where(better, z, zero), np.minimum(err, best)
    else:
        raise ValueError(f"unknown weight scale method {method!r}")
    codes = _codes(blocks, scale, zero).astype(np.uint8).reshape(n, -1)
    codes[:, k:] = 0  # padding, as ONNX Runtime writes it (it multiplies padded zeros of A either way)
    packed = pack_nibbles(codes).reshape(n, n_blocks, block_size // 2)
    zero_points = None if symmetric else pack_nibbles(zero.astype(np.uint8), fill=8)  # ORT's filler
    return BlockQuantizedWeight(np.ascontiguousarray(packed), np.ascontiguousarray(scale.astype(dtype)),
                                zero_points, k, n, block_size)
