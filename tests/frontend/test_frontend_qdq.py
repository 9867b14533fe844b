"""The Relax rewrite that keeps quantized weights quantized through TVM's build (issue 6; in the frontend since
issue 12: every QDQ model is imported this way).

Without it, FoldConstant evaluates ``dequantize(int8 constant)`` at compile time and the artifact holds float
weights again; this test shows both sides on the module the build actually lowers.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from tvmedge.quant import parse_config, quantize
from tvmedge.frontend.qdq import has_quantized_weights, keep_weights_quantized, lower_int4_initializers

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def _constants(mod) -> Counter:
    """dtype -> total elements of the constants in ``main`` after TVM's zero pipeline (with FoldConstant)."""
    import tvm
    from tvm import relax

    from tvmedge.devices.board import load_board
    from tvmedge.tune.tasks import prepare

    prepared = prepare(mod, tvm.target.Target(load_board("x86-host").tvm_target()))
    sizes = Counter()

    def visit(expr):
        if isinstance(expr, tvm.ir.Constant) and hasattr(expr.value, "numpy"):
            value = expr.value.numpy()
            sizes[str(value.dtype)] += value.size

    relax.analysis.post_order_visit(prepared["main"], visit)
    return sizes


def _imported(tmp_path, **options):
    from tvmedge.frontend.onnx import import_model

    options.setdefault("calibration_dataset", str(DIGITS / "calib.npz"))
    qmodel = quantize(DIGITS / "digits_cnn.onnx", parse_config({"quantization": options})).model
    assert has_quantized_weights(qmodel)
    path = tmp_path / "q.onnx"
    onnx.save(lower_int4_initializers(qmodel), path)
    return import_model(path, keep_weights_quantized=False)  # as TVM's importer alone imports it


def test_import_model_keeps_the_weights_of_a_qdq_model_quantized(tmp_path):
    # what compile (and tune, partition, rank) get for a QDQ model: the rewrite applied by the one import
    from tvmedge.frontend.onnx import import_model

    options = {"type": "static", "bit_width": "mixed", "mixed": {"target_size_ratio": 0.17},
               "calibration_dataset": str(DIGITS / "calib.npz")}
    path = tmp_path / "q.onnx"
    onnx.save(quantize(DIGITS / "digits_cnn.onnx", parse_config({"quantization": options})).model, path)
    imported = import_model(path)
    # issue 15: the three INT8 layers compute on integers (their weights are int8 constants of int8 kernels);
    # the INT4 layer keeps its packed weights and computes in float
    assert imported.integer.summary()["integer_layers"] == 3
    assert imported.quantized_weights == {"int4_packed": 1, "int8_kept": 0, "fused": 1, "unfused": 0}
    assert import_model(DIGITS / "digits_cnn.onnx").quantized_weights is None  # a float model stays as it is


def test_without_the_rewrite_constant_folding_turns_int8_weights_back_into_float(tmp_path):
    imported = _imported(tmp_path, type="weight_only", bit_width=8)
    sizes = _constants(imported.mod)
    assert sizes["float32"] > 500_000 and sizes["int8"] == 0  # fc1's 524k weights are float again


def test_the_rewrite_keeps_int8_and_packed_int4_weights_in_the_lowered_module(tmp_path):
    imported = _imported(tmp_path, type="static", bit_width="mixed", mixed={"target_size_ratio": 0.17})
    mod, stats = keep_weights_quantized(imported.mod)
    assert stats == {"int4_packed": 1, "int8_kept": 3, "fused": 4, "unfused": 0}
    sizes = _constants(mod)
    assert sizes["uint8"] >= 1024 * 512 // 2  # fc1, two INT4 weights per byte
    assert sizes["int8"] >= 32 * 16 * 9 + 10 * 1024  # conv2 and final_fc stay INT8
    assert sizes["float32"] < 10_000  # biases and scales only


def test_int4_initializers_are_widened_losslessly_for_the_importer(tmp_path):
    from onnx import TensorProto, numpy_helper

    qmodel = quantize(DIGITS / "digits_cnn.onnx", parse_config({"quantization": {"type": "weight_only",
                                                                                  "bit_width": 4}})).model
    widened = lower_int4_initializers(qmodel)
    before = {i.name: numpy_helper.to_array(i).astype(np.int8) for i in qmodel.graph.initializer
              if i.data_type == TensorProto.INT4}
    after = {i.name: numpy_helper.to_array(i) for i in widened.graph.initializer if i.name in before}
    assert before and all(after[k].dtype == np.int8 and np.array_equal(after[k], v) for k, v in before.items())
