"""``quantize(model, config)`` on the digits CNN trained in examples/digits (issue 6), run with ONNX Runtime.

Real data: scikit-learn's digits, test split held out from training and calibration.
"""

from collections import Counter
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto

from tvmedge.errors import ConfigError
from tvmedge.quant import parse_config, quantize

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
MODEL, CALIB, TEST = DIGITS / "digits_cnn.onnx", DIGITS / "calib.npz", DIGITS / "test.npz"


def config(**options):
    options.setdefault("calibration_dataset", str(CALIB))
    return parse_config({"quantization": options})


def _ops(model) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def _weight_input(model, node_name):
    node = next(n for n in model.graph.node if n.name == node_name)
    return node.input[1]


def test_static_int8_keeps_98_percent_of_float_accuracy_on_the_test_split():
    result = quantize(MODEL, config(type="static", bit_width=8), evaluate=TEST)
    accuracy = result.report.accuracy
    assert accuracy["samples"] == 540 and accuracy["metric"] == "top-1 accuracy"
    assert accuracy["float"] > 0.97  # the trained model is a real classifier
    assert accuracy["quantized"] >= 0.98 * accuracy["float"]
    ops = _ops(result.model)
    # 4 weight dequantizes + one quantize/dequantize pair per distinct activation (4 layers, 4 inputs)
    assert ops["DequantizeLinear"] == 8 and ops["QuantizeLinear"] == 4
    int8 = [i for i in result.model.graph.initializer if i.data_type == TensorProto.INT8]
    assert {i.name for i in int8} == {"conv1.w.int8", "conv2.w.int8", "fc1.w.int8", "final_fc.w.int8"}
    assert result.report.size["weight_ratio"] < 0.26


def test_exclude_layers_keeps_named_layers_float_by_name_or_glob():
    result = quantize(MODEL, config(type="dynamic", bit_width=8, exclude_layers=["final_fc", "conv*", "nothing"]))
    q = result.model
    assert _weight_input(q, "final_fc") == "final_fc.w"  # the float initializer, not a dequantize output
    assert _weight_input(q, "conv1") == "conv1.w" and _weight_input(q, "conv2") == "conv2.w"
    assert _weight_input(q, "fc1") == "fc1.w.int8.dequantized"
    inits = {i.name: i.data_type for i in q.graph.initializer}
    assert inits["final_fc.w"] == TensorProto.FLOAT and "fc1.w" not in inits
    assert _ops(q)["DynamicQuantizeLinear"] == 1  # only fc1's input is quantized at run time
    rows = {row["name"]: row for row in result.report.layers}
    assert rows["final_fc"]["bits"] == "float" and rows["final_fc"]["excluded"]
    assert result.report.notes == ["exclude_layers pattern 'nothing' matches no layer"]


def test_weight_only_int4_is_packed_int4_onnx_at_opset_21():
    result = quantize(MODEL, config(type="weight_only", bit_width=4))
    q = result.model
    assert q.opset_import[0].version == 21
    int4 = [i for i in q.graph.initializer if i.data_type == TensorProto.INT4]
    assert len(int4) == 4
    fc1 = next(i for i in int4 if i.name == "fc1.w.int4")
    assert len(fc1.raw_data) == 1024 * 512 // 2  # two weights per byte
    assert "QuantizeLinear" not in _ops(q) and "DynamicQuantizeLinear" not in _ops(q)
    onnx.checker.check_model(q)


def test_mixed_meets_a_size_target_with_the_least_sensitive_bytes_first():
    result = quantize(MODEL, config(type="static", bit_width="mixed", mixed={"target_size_ratio": 0.17,
                                                                             "max_accuracy_drop": 0.01}),
                      evaluate=TEST)
    report = result.report
    bits = {row["name"]: row["bits"] for row in report.layers}
    assert bits["fc1"] == 4  # 97 % of the weights: the size target cannot be met without it
    assert report.size["weight_ratio"] <= 0.17
    assert report.mixed["calibration_accuracy"] >= report.mixed["float_calibration_accuracy"] - 0.01
    assert all("sensitivity" in row for row in report.layers)
    assert report.accuracy["quantized"] >= 0.98 * report.accuracy["float"]
    table = report.table()
    assert "fc1" in table and "acc drop (int4)" in table


def test_an_unreachable_size_target_is_reported_not_faked():
    result = quantize(MODEL, config(type="weight_only", bit_width="mixed", mixed={"target_size_ratio": 0.05}))
    assert all(row["bits"] == 4 for row in result.report.layers)
    assert result.report.notes == ["size target 0.050 not reached: weights at 0.129 of float even with every layer INT4"]


def test_static_and_mixed_need_calibration_data_and_a_missing_one_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"^quantization.calibration_dataset is required for type static"):
        quantize(MODEL, parse_config({"quantization": {"type": "static"}}))
    with pytest.raises(ConfigError) as err:
        quantize(MODEL, config(type="dynamic", calibration_dataset=str(tmp_path / "data" / "calib_set")))
    assert str(err.value).startswith(f"quantization.calibration_dataset: {tmp_path}/data/calib_set does not exist")


def test_report_json_has_accuracy_size_and_layers(tmp_path):
    import json

    result = quantize(MODEL, config(type="static", bit_width=8, calibration_method="percentile"), evaluate=TEST)
    result.save(tmp_path / "m.q.onnx")
    data = json.loads(result.report.write(tmp_path / "r.json").read_text())
    assert data["accuracy"]["ratio"] == pytest.approx(data["accuracy"]["quantized"] / data["accuracy"]["float"], 1e-5)
    assert data["size"]["quant_onnx_bytes"] == (tmp_path / "m.q.onnx").stat().st_size
    assert data["calibration"]["method"] == "percentile" and len(data["calibration"]["ranges"]) == 4
    assert [row["bits"] for row in data["layers"]] == [8, 8, 8, 8]
    assert data["engine"].startswith("onnxruntime")


def test_without_onnxruntime_weight_only_works_and_calibration_says_what_to_install(monkeypatch):
    import sys

    from tvmedge.errors import ToolchainError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    result = quantize(MODEL, config(type="weight_only", bit_width=8, calibration_dataset=None))
    assert result.report.engine == "none (nothing was run)"
    with pytest.raises(ToolchainError, match=r"install it: pip install onnxruntime \(or tvmedge\[peer\]\)$"):
        quantize(MODEL, config(type="static", bit_width=8))
