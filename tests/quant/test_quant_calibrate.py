"""Calibration methods (issue 6): min/max plus percentile, MSE and KL, which clip rare outliers."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from tvmedge.quant.calibrate import BINS, calibrate, quant_params, range_from_histogram


def _histogram(values):
    lo, hi = min(values.min(), 0.0), max(values.max(), 0.0)
    hist, edges = np.histogram(values, bins=BINS, range=(lo, hi))
    return hist, edges


@pytest.mark.parametrize("method, most", [("percentile", 20.0), ("mse", 54.0), ("kl", 20.0)])
def test_better_methods_clip_a_rare_outlier_that_minmax_keeps(method, most):
    rng = np.random.default_rng(0)
    values = np.concatenate([np.abs(rng.standard_normal(200_000)), [60.0]])  # ReLU-like, one outlier
    hist, edges = _histogram(values)
    lo, hi = range_from_histogram(hist, edges, method, percentile=99.99)
    assert lo == 0.0
    # Above the bulk (99.9 % of values are below ~3.3), below the outlier that min/max would keep. MSE
    # clips least: one value clipped from 60 costs as much squared error as the rounding noise of all others.
    assert 3.3 < hi < most


def test_quant_params_are_uint8_asymmetric_and_contain_zero():
    scale, zero = quant_params(-1.0, 3.0)
    assert zero.dtype == np.uint8 and int(zero) == 64 and np.isclose(scale, 4 / 255)
    scale, zero = quant_params(0.5, 2.0)  # the range is widened to contain 0
    assert int(zero) == 0 and np.isclose(scale, 2 / 255)
    assert quant_params(0.0, 0.0) == (np.float32(1.0), np.uint8(0))


def test_calibrate_observes_intermediate_tensors_of_a_model():
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([helper.make_node("Neg", ["y"], ["z"]), ], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    graph.node.insert(0, node)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    samples = [{"x": np.array([[-3.0, 1.0, 2.0, 0.5]], np.float32)}, {"x": np.array([[4.0, -1, 0, 0]], np.float32)}]
    ranges = calibrate(model, ["y", "x"], samples, method="minmax")
    assert (ranges["y"].lo, ranges["y"].hi) == (0.0, 4.0)
    assert (ranges["x"].observed_min, ranges["x"].observed_max) == (-3.0, 4.0)
