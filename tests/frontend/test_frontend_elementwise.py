"""tvmedge.frontend.converters.elementwise against ONNX Runtime (onnx's reference evaluator where this ORT
has no kernel for the op's opset): BitCast, Celu, Swish, SwiGLU, LpNormalization, RMSNormalization, Pow with
mixed and integer types, ReverseSequence, CenterCropPad."""

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from ort_check import assert_close, make_model, run_both

pytest.importorskip("onnxruntime")
rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4)).astype(np.float32)

CASES = {
    "bitcast": (helper.make_node("BitCast", ["x"], ["y"], to=T.INT32), {"x": X}, [], 26),
    "celu": (helper.make_node("Celu", ["x"], ["y"], alpha=0.7), {"x": X}, [], 12),
    "swish": (helper.make_node("Swish", ["x"], ["y"], alpha=1.5), {"x": X}, [], 24),
    "swiglu": (helper.make_node("SwiGLU", ["x", "b"], ["y"], alpha=0.5), {"x": X, "b": X[::-1].copy()}, [], 28),
    "lpnorm_p1": (helper.make_node("LpNormalization", ["x"], ["y"], axis=0, p=1), {"x": X}, [], 13),
    "rmsnorm_axis0": (helper.make_node("RMSNormalization", ["x", "s"], ["y"], axis=0, epsilon=1e-3), {"x": X},
                      [numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "s")], 23),
    "pow_float_int": (helper.make_node("Pow", ["x", "e"], ["y"]), {"x": np.abs(X) + 0.5},
                      [numpy_helper.from_array(np.array([1, 2, 3, 0], np.int64), "e")], 15),
    "pow_int_int": (helper.make_node("Pow", ["x", "e"], ["y"]), {"x": np.arange(-6, 6, dtype=np.int32).reshape(3, 4)},
                    [numpy_helper.from_array(np.array([0, 1, 2, 3], np.int32), "e")], 15),
    "reverse_sequence": (helper.make_node("ReverseSequence", ["x", "lens"], ["y"], time_axis=1, batch_axis=0),
                         {"x": X}, [numpy_helper.from_array(np.array([4, 1, 3], np.int64), "lens")], 10),
    "center_crop_pad": (helper.make_node("CenterCropPad", ["x", "shape"], ["y"]), {"x": X},
                        [numpy_helper.from_array(np.array([2, 7], np.int64), "shape")], 18),
}
TYPES = {np.dtype("float32"): T.FLOAT, np.dtype("int32"): T.INT32}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_onnxruntime_or_the_reference(name, tmp_path):
    node, feeds, inits, opset = CASES[name]
    inputs = [(k, TYPES[v.dtype], list(v.shape)) for k, v in feeds.items()]
    if name == "swiglu":  # neither onnx's shape inference nor this ORT knows SwiGLU: declare the output
        model = make_model([node], inputs, [("y", T.FLOAT, [3, 4])], inits, opset=opset)
    else:
        model = make_model([node], inputs, ["y"], inits, opset=opset, infer_outputs=True)
    try:
        ours, theirs = run_both(model, feeds, tmp_path)
    except Exception as err:  # this ORT has no kernel for the op at this opset
        if not any(s in str(err) for s in ("NOT_IMPLEMENTED", "No Op registered", "not implemented")):
            raise
        import onnx.reference

        (tmp_path / "again").mkdir()
        ours, _ = run_both(model, feeds, tmp_path / "again", ort=False)
        theirs = {"y": onnx.reference.ReferenceEvaluator(model).run(None, feeds)[0]}
    assert_close(ours, theirs)
