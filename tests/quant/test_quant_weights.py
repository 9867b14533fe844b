"""Per-channel symmetric INT8 / INT4 weights (issue 6); INT4 packing: tests/frontend/test_frontend_int4.py."""

import numpy as np
import pytest

from tvmedge.quant.int8 import quantize_weight


@pytest.mark.parametrize("bits, qmax", [(8, 127), (4, 7)])
def test_per_channel_symmetric_scales_and_bounded_error(bits, qmax):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * np.arange(1, 7)[:, None, None, None]
    q = quantize_weight(w, axis=0, bits=bits, method="absmax")
    assert q.values.dtype == np.int8 and q.scale.shape == (6,)
    assert np.abs(q.values).max() == qmax  # symmetric: the largest weight of a channel maps to +-qmax
    np.testing.assert_allclose(q.scale, np.abs(w).reshape(6, -1).max(1) / qmax, rtol=1e-6)
    assert np.all(np.abs(q.dequantize() - w) <= q.scale[:, None, None, None] / 2 + 1e-6)


def test_mse_scales_never_do_worse_than_absmax_and_help_at_4_bits():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 256)).astype(np.float32)
    w[:, 0] = 8.0  # one outlier per channel stretches the absmax range
    for bits in (8, 4):
        err = {m: float(((quantize_weight(w, 0, bits, m).dequantize() - w) ** 2).sum()) for m in ("absmax", "mse")}
        assert err["mse"] <= err["absmax"]
    assert err["mse"] < 0.8 * err["absmax"]


def test_axis_one_quantizes_columns():
    w = np.array([[1.0, 100.0], [-0.5, 50.0]], np.float32)  # (K, N) MatMul weight, channels are columns
    q = quantize_weight(w, axis=1, bits=8, method="absmax")
    np.testing.assert_allclose(q.scale, [1 / 127, 100 / 127], rtol=1e-6)
