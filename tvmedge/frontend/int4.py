"""INT4 storage: two signed 4-bit values per byte, first value in the low nibble (ONNX's INT4 layout).

The same bytes serve the ONNX file (an ``INT4`` initializer, opset 21) and the compiled artifact, where a
small TIR kernel unpacks them next to the layer that uses them (:mod:`tvmedge.frontend.qdq`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_int4", "unpack_int4", "fits_int4", "int4_tensor"]


def fits_int4(values: np.ndarray) -> bool:
    """True when every value is an integer in [-8, 7], i.e. packing loses nothing."""
    return values.size > 0 and np.issubdtype(values.dtype, np.integer) and values.min() >= -8 and values.max() <= 7


def pack_int4(values: np.ndarray) -> np.ndarray:
    """int values in [-8, 7] (any shape) -> uint8 array of ``ceil(n / 2)`` bytes, row-major order."""
    flat = np.asarray(values, np.int8).reshape(-1)
    if flat.size and (flat.min() < -8 or flat.max() > 7):
        raise ValueError("values out of the INT4 range [-8, 7]")
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.int8)])
    nibbles = flat.view(np.uint8) & 0x0F
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, shape) -> np.ndarray:
    """Inverse of :func:`pack_int4` -> int8 array of ``shape``."""
    packed = np.asarray(packed, np.uint8).reshape(-1)
    count = int(np.prod(shape))
    nibbles = np.empty(packed.size * 2, np.uint8)
    nibbles[0::2], nibbles[1::2] = packed & 0x0F, packed >> 4
    values = nibbles[:count].astype(np.int8)
    values[values > 7] -= 16
    return values.reshape(shape)


def int4_tensor(values: np.ndarray, name: str):
    """An ONNX ``INT4`` initializer holding ``values`` packed two per byte."""
    from onnx import TensorProto, helper

    return helper.make_tensor(name, TensorProto.INT4, list(values.shape), pack_int4(values).tobytes(), raw=True)
