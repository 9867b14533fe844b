"""tvmedge.frontend.converters.losses against ONNX Runtime: NLL and softmax cross-entropy (issue 14)."""

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from ort_check import assert_close, make_model, run_both

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("op, reduction, weighted, ignore", [
    ("NegativeLogLikelihoodLoss", "mean", True, 1),
    ("NegativeLogLikelihoodLoss", "none", False, None),
    ("SoftmaxCrossEntropyLoss", "sum", False, 2),
    ("SoftmaxCrossEntropyLoss", "mean", True, None),
])
def test_loss_matches_onnxruntime(op, reduction, weighted, ignore, tmp_path):
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 5, 2)).astype(np.float32), "t": rng.integers(0, 5, (3, 2)).astype(np.int64)}
    inits = [numpy_helper.from_array(rng.random(5).astype(np.float32), "w")] if weighted else []
    attrs = {"reduction": reduction} | ({"ignore_index": ignore} if ignore is not None else {})
    outputs = ["loss"] + (["log_prob"] if op == "SoftmaxCrossEntropyLoss" else [])
    node = helper.make_node(op, ["x", "t"] + (["w"] if weighted else []), outputs, **attrs)
    model = make_model([node], [("x", T.FLOAT, [3, 5, 2]), ("t", T.INT64, [3, 2])], outputs, inits, opset=13,
                       infer_outputs=True, feeds=feeds)
    ours, theirs = run_both(model, feeds, tmp_path)
    assert_close(ours, theirs)
