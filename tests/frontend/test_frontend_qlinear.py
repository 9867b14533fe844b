"""Pre-quantized ONNX models computed on integers (issue 15): ONNX Runtime's quantizer output, QDQ and QOperator,
imported to int8 x int8 -> int32 Relax and compared with ONNX Runtime running the same file (on an x86 CPU without
VNNI, where ORT's uint8 x int8 kernels saturate, with ORT running the QDQ form unfused: see ``ort_reference``).

Tolerance: one quantization step of the model's output (its last DequantizeLinear scale). Our requantization is
the one ONNX Runtime's MLAS kernels use (float32 multiplier ``sx * sw / sy``, round half to even, clamp), so the
outputs are expected to be bit-exact; a step is what a float32 product landing on the other side of a rounding
tie would move, and is ORT's own quantization error at the output. The test also asserts that nearly all
outputs are exact, so a systematic off-by-one would fail it.
"""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from quantized_models import activation_cnn, ort_outputs, ort_quantize, ort_reference, samples, small_cnn

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def _build(mod):
    import tvm
    from tvm import relax

    return relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())


def _run(vm, feeds):
    import tvm

    return [vm["main"](tvm.runtime.tensor(feed["input"])).numpy() for feed in feeds]


def _output_scale(path) -> float:
    model = onnx.load(path)
    last = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    assert last.op_type == "DequantizeLinear"
    return float(numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == last.input[1])))


@pytest.fixture(scope="module")
def float_cnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("qlinear") / "small_cnn.onnx"
    onnx.save(small_cnn(), path)
    return path


@pytest.mark.parametrize("quant_format", ["qdq", "qoperator"])
@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_ort_quantized_cnn_runs_on_integers_and_matches_ort(float_cnn, tmp_path, quant_format, activations):
    from tvmedge.frontend.onnx import import_model

    path = ort_quantize(float_cnn, tmp_path / "q.onnx", quant_format, activations, samples(16))
    twin = ort_quantize(float_cnn, tmp_path / "twin.onnx", "qdq", activations, samples(16))
    imported = import_model(path)
    report = imported.integer.summary()
    # every conv (incl. depthwise), the residual Add, Concat, GAP, Gemm and MatMul: none left float
    assert report["integer_layers"] == 10 and report["float_fallback"] == []
    assert imported.quantized_weights is None  # no weight is dequantized to float anywhere
    text = imported.mod["main"].script()
    # integer reductions; the only dequantize is the model's float output
    assert text.count('out_dtype="int32"') == 7 and text.count("R.dequantize(") == 1
    feeds = samples(24, seed=7)
    got, ref = _run(_build(imported.mod), feeds), ort_reference(path, feeds, qdq_twin=twin)
    diff = np.array([np.abs(a - b).max() for a, b in zip(got, ref)])
    step = _output_scale(path)
    assert diff.max() <= step * 1.001, (diff.max(), step)
    assert np.mean(diff == 0) >= 0.9


def test_ort_quantized_digits_cnn_matches_ort_and_keeps_accuracy(tmp_path):
    from tvmedge.frontend.onnx import import_model

    calib = np.load(DIGITS / "calib.npz")["input"]
    test = np.load(DIGITS / "test.npz")
    path = ort_quantize(DIGITS / "digits_cnn.onnx", tmp_path / "q.onnx", "qdq", "uint8",
                        [{"input": calib[i:i + 1]} for i in range(64)])
    imported = import_model(path)
    assert imported.integer.summary()["integer_layers"] == 4
    feeds = [{"input": test["input"][i:i + 1]} for i in range(len(test["labels"]))]
    got, ref = np.concatenate(_run(_build(imported.mod), feeds)), np.concatenate(ort_reference(path, feeds))
    assert np.abs(got - ref).max() <= _output_scale(path) * 1.001
    float_ref = np.concatenate(ort_outputs(DIGITS / "digits_cnn.onnx", feeds))
    accuracy, float_accuracy = (got.argmax(1) == test["labels"]).mean(), (float_ref.argmax(1) == test["labels"]).mean()
    assert accuracy >= 0.98 * float_accuracy


# --- a layer with no integer kernel stays float, and says so ---------------------------------------

def _qdq_model(pool="AveragePool", act_zero=128, second_scale=0.05, weight_zero=None, int4_zero=None,
               float_weight=False):
    """input -> Q -> DQ -> Conv(DQ(int8 w)) -> Q -> DQ -> pool -> Q -> DQ -> output (hand-made QDQ)."""
    rng = np.random.default_rng(0)
    w = rng.integers(-100, 100, (4, 2, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s_in"),
             numpy_helper.from_array(np.array(act_zero, np.uint8), "z_in"),
             numpy_helper.from_array(w, "w_q"),
             numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(4, np.int8) if weight_zero is None else weight_zero, "w_z"),
             numpy_helper.from_array(np.array(0.05, np.float32), "s_mid"),
             numpy_helper.from_array(np.array(second_scale, np.float32), "s_mid2"),
             numpy_helper.from_array(np.array(120, np.uint8), "z_mid")]
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["input", "s_in", "z_in"], ["xq"], name="q_in"),
             n("DequantizeLinear", ["xq", "s_in", "z_in"], ["x"], name="dq_in"),
             n("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="dq_w", axis=0),
             n("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             n("QuantizeLinear", ["c", "s_mid", "z_mid"], ["cq"], name="q_conv"),
             n("DequantizeLinear", ["cq", "s_mid2", "z_mid"], ["cd"], name="dq_conv"),
             n(pool, ["cd"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             n("QuantizeLinear", ["p", "s_mid", "z_mid"], ["pq"], name="q_pool"),
             n("DequantizeLinear", ["pq", "s_mid", "z_mid"], ["output"], name="dq_out")]
    if float_weight:  # the weight quantized in the graph: QuantizeLinear(float constant) -> DequantizeLinear
        inits[2] = numpy_helper.from_array(w.astype(np.float32) * np.float32(0.0103), "w_f")
        nodes.insert(2, n("QuantizeLinear", ["w_f", "w_s", "w_z"], ["w_q"], name="q_w", axis=0))
    if int4_zero is not None:
        inits.append(helper.make_tensor("w4_z", TensorProto.INT4, [], [int4_zero]))
        inits.append(helper.make_tensor("w4_q", TensorProto.INT4, [4], [1, 2, 3, 4]))
        inits.append(numpy_helper.from_array(np.array(0.1, np.float32), "w4_s"))
        nodes.append(n("DequantizeLinear", ["w4_q", "w4_s", "w4_z"], ["w4"], name="dq_w4"))
        nodes.append(n("Add", ["output_pre", "w4"], ["output"], name="add4"))
        nodes[-3].output[0] = "output_pre"
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, (1, 2, 8, 8))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, (1, 4, 4, 4))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def test_a_pattern_without_integer_kernel_falls_back_to_float_with_a_note(tmp_path):
    from tvmedge.frontend.onnx import import_model

    path = tmp_path / "avgpool.onnx"
    onnx.save(_qdq_model(second_scale=0.05), path)
    imported = import_model(path)
    assert imported.integer.summary() == {
        "integer_layers": 1, "layers": ["conv (Conv)"],
        "float_fallback": ["pool (AveragePool): float: no integer kernel for AveragePool"]}
    feeds = samples(4, shape=(1, 2, 8, 8))
    got, ref = _run(_build(imported.mod), feeds), ort_outputs(path, feeds)
    assert max(np.abs(a - b).max() for a, b in zip(got, ref)) <= 0.05 * 1.001


def test_quantized_operators_without_integer_kernel_run_in_float_with_one_note_each(tmp_path):
    # ORT's QOperator format: QLinearSigmoid / QLinearMul / QLinearLeakyRelu / QLinearAveragePool / QLinearSoftmax
    from tvmedge.frontend.onnx import import_model

    onnx.save(activation_cnn(), tmp_path / "f.onnx")
    path = ort_quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", "qoperator", "uint8", samples(8, shape=(1, 3, 8, 8)))
    twin = ort_quantize(tmp_path / "f.onnx", tmp_path / "twin.onnx", "qdq", "uint8", samples(8, shape=(1, 3, 8, 8)))
    assert {n.op_type for n in onnx.load(path).graph.node} >= {"QLinearSigmoid", "QLinearMul", "QLinearAveragePool"}
    imported = import_model(path)
    assert imported.integer.summary() == {
        "integer_layers": 1, "layers": ["conv_quant (QLinearConv)"],
        "float_fallback": [f"{name}_quant ({op}): float: no integer kernel for {op}" for name, op in
                           (("sig", "Sigmoid"), ("swish", "Mul"), ("leaky", "LeakyRelu"), ("avg", "AveragePool"),
                            ("softmax", "Softmax"))]}
    feeds = samples(4, shape=(1, 3, 8, 8))
    got, ref = _run(_build(imported.mod), feeds), ort_reference(path, feeds, qdq_twin=twin)
    assert max(np.abs(a - b).max() for a, b in zip(got, ref)) <= _output_scale(path) * 1.001


def test_a_weight_quantized_in_the_graph_is_quantized_at_compile_time(tmp_path):
    # ONNX Runtime's quantizer writes Q(float W) -> DQ when W is also a graph input (IR version 3 models)
    from tvmedge.frontend.onnx import import_model

    path = tmp_path / "qw.onnx"
    onnx.save(_qdq_model(pool="MaxPool", float_weight=True), path)
    imported = import_model(path)
    assert imported.integer.summary()["layers"] == ["conv (Conv)"]
    feeds = samples(4, shape=(1, 2, 8, 8))
    got, ref = _run(_build(imported.mod), feeds), ort_outputs(path, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(got, ref))


def test_maxpool_between_equal_qdq_runs_on_the_integers(tmp_path):
    from tvmedge.frontend.onnx import import_model

    path = tmp_path / "maxpool.onnx"
    onnx.save(_qdq_model(pool="MaxPool"), path)
    imported = import_model(path)
    assert imported.integer.summary()["float_fallback"] == []
    assert "max_pool2d" in imported.mod["main"].script() and "uint8" in imported.mod["main"].script()
    feeds = samples(4, shape=(1, 2, 8, 8))
    got, ref = _run(_build(imported.mod), feeds), ort_outputs(path, feeds)
    assert max(np.abs(a - b).max() for a, b in zip(got, ref)) <= 0.05 * 1.001


# --- bad quantization parameters: one line each, exit 1 -------------------------------------------

def _qlinear_conv_with_weight_zero(zero) -> onnx.ModelProto:
    w = np.ones((4, 2, 1, 1), np.int8)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "sx"), numpy_helper.from_array(np.array(0, np.uint8), "zx"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.full(4, 0.01, np.float32), "sw"),
             numpy_helper.from_array(np.asarray(zero, np.int8), "zw"),
             numpy_helper.from_array(np.array(0.05, np.float32), "sy"), numpy_helper.from_array(np.array(0, np.uint8), "zy")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "sx", "zx"], ["xq"], name="q"),
             helper.make_node("QLinearConv", ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["yq"], name="qconv"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["output"], name="dq")]
    graph = helper.make_graph(nodes, "qconv", [helper.make_tensor_value_info("input", TensorProto.FLOAT, (1, 2, 4, 4))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, (1, 4, 4, 4))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("model, message", [
    (lambda: _qdq_model(second_scale=0.07),
     "DequantizeLinear 'dq_conv': inconsistent with QuantizeLinear 'q_conv' that feeds it: scale 0.07 / zero point "
     "120 vs 0.05 / 120"),
    (lambda: _qdq_model(int4_zero=9), "DequantizeLinear 'dq_w4': INT4 zero point 9 is outside -8..7"),
    (lambda: _qdq_model(weight_zero=np.array([0, 0, 0], np.int8)),
     "DequantizeLinear 'dq_w': zero point 'w_z' has 3 values but the scale has 4"),
    (lambda: _qlinear_conv_with_weight_zero([0, 3, 0, 0]),
     "QLinearConv 'qconv': per-channel weight zero points must be 0 (symmetric weights), got [0, 3]"),
], ids=["inconsistent-qdq", "int4-zero-point", "zero-point-shape", "qlinearconv-weight-zero-point"])
def test_bad_quantization_parameters_are_one_error_line(tmp_path, model, message):
    from click.testing import CliRunner

    from tvmedge.cli.main import cli

    path = tmp_path / "bad.onnx"
    onnx.save(model(), path)
    result = CliRunner().invoke(cli, ["compile", str(path), "--target", "x86-host", "--search", "naive",
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {path}: {message}"


def test_qlinear_conv_with_a_zero_weight_zero_point_per_channel_is_accepted(tmp_path):
    from tvmedge.frontend.onnx import import_model

    path = tmp_path / "ok.onnx"
    onnx.save(_qlinear_conv_with_weight_zero([0, 0, 0, 0]), path)
    imported = import_model(path)
    feeds = samples(2, shape=(1, 2, 4, 4))
    got, ref = _run(_build(imported.mod), feeds), ort_outputs(path, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(got, ref))


def _residual_sum_cnn() -> onnx.ModelProto:
    """conv -> ReLU and a 1x1 conv of the same input, joined by a two-input Sum, ReLU, conv: a resnet block as
    resnet exports write it."""
    rng = np.random.default_rng(3)
    w = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)  # noqa: E731
    n = helper.make_node
    nodes = [n("Conv", ["input", "a.w"], ["a"], name="a", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             n("Relu", ["a"], ["ar"], name="ar"),
             n("Conv", ["input", "b.w"], ["b"], name="b", kernel_shape=[1, 1]),
             n("Sum", ["ar", "b"], ["res"], name="res"),
             n("Relu", ["res"], ["rr"], name="rr"),
             n("Conv", ["rr", "c.w"], ["output"], name="c", kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "sum", [helper.make_tensor_value_info("input", TensorProto.FLOAT, (1, 3, 16, 16))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, (1, 4, 16, 16))],
                              [w("a.w", 8, 3, 3, 3), w("b.w", 8, 3, 1, 1), w("c.w", 4, 8, 1, 1)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_residual_written_as_sum_runs_on_integers_and_matches_ort(tmp_path):
    # resnet exports write the residual connection as a two-input Sum: between DQ and Q it is a QLinearAdd
    from tvmedge.frontend.onnx import import_model

    onnx.save(_residual_sum_cnn(), tmp_path / "sum.onnx")
    path = ort_quantize(tmp_path / "sum.onnx", tmp_path / "q.onnx", "qdq", "uint8", samples(16))
    assert any(n.op_type == "Sum" for n in onnx.load(path).graph.node)  # ORT leaves it between DQ and Q
    imported = import_model(path)
    report = imported.integer.summary()
    assert "res (Sum)" in report["layers"] and report["float_fallback"] == [], report
    feeds = samples(12, seed=5)
    got, ref = _run(_build(imported.mod), feeds), ort_reference(path, feeds)
    diff = np.array([np.abs(a - b).max() for a, b in zip(got, ref)])
    assert diff.max() <= _output_scale(path) * 1.001
