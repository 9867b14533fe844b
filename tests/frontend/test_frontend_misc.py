"""tvmedge.frontend.converters.misc against ONNX Runtime: CumProd, LayerNormalization's three outputs."""

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from ort_check import assert_close, make_model, run_both

pytest.importorskip("onnxruntime")


def test_layer_normalization_mean_and_inv_std_dev(tmp_path):
    # TVM returned Mean and InvStdDev as 0-d placeholders (19 of onnx's node cases).
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)}
    inits = [numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), n) for n in ("s", "b")]
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv_std"], axis=1, epsilon=1e-3)
    model = make_model([node], [("x", T.FLOAT, [2, 3, 4])], ["y", "mean", "inv_std"], inits, opset=17,
                       infer_outputs=True, feeds=feeds)
    ours, theirs = run_both(model, feeds, tmp_path)
    assert ours["mean"].shape == (2, 1, 1)
    assert_close(ours, theirs)


def test_cumprod_reverse_exclusive_with_a_constant_axis(tmp_path):
    import onnx.reference

    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    node = helper.make_node("CumProd", ["x", "axis"], ["y"], reverse=1, exclusive=1)
    model = make_model([node], [("x", T.FLOAT, [2, 3])], [("y", T.FLOAT, [2, 3])],
                       [numpy_helper.from_array(np.array(1, np.int64), "axis")], opset=26)
    ours, _ = run_both(model, {"x": x}, tmp_path, ort=False)  # ORT has no CumProd yet: onnx's reference instead
    expected = onnx.reference.ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(ours["y"], expected)
