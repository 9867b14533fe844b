"""`tvmedge quantize` and `tvmedge compile --quant` through the real entry point (issue 6)."""

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from tvmedge.cli.main import cli

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
MODEL = DIGITS / "digits_cnn.onnx"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_quantize_writes_the_model_the_report_and_prints_the_table(tmp_path):
    out, report = tmp_path / "digits.q.onnx", tmp_path / "report.json"
    result = run("quantize", MODEL, "--config", DIGITS / "quant.yaml", "-o", out, "--report", report,
                 "--evaluate", DIGITS / "test.npz")
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(onnx.load(out))
    data = json.loads(report.read_text())
    assert data["accuracy"]["quantized"] >= 0.98 * data["accuracy"]["float"]
    assert {row["name"]: row["bits"] for row in data["layers"]}["conv1"] == "float"  # excluded in quant.yaml
    assert "accuracy (top-1 accuracy, 540 samples of test.npz): float" in result.stdout
    assert "conv1     Conv  16x1x3x3   float (excluded)" in result.stdout


def test_quantize_json_output(tmp_path):
    result = run("quantize", MODEL, "--config", DIGITS / "quant_mixed.yaml", "-o", tmp_path / "m.onnx", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mixed"]["int4_layers"] == ["fc1"] and data["size"]["weight_ratio"] <= 0.17


def test_compile_with_quant_reports_what_stayed_quantized(tmp_path, naive_tuning):
    result = run("compile", MODEL, "--target", "x86-host", "--search", "naive", "-o", tmp_path / "art",
                 "--quant", DIGITS / "quant_mixed.yaml")
    assert result.exit_code == 0, result.output
    # issue 15: the INT8 layers compute on integers; the INT4 one stays float (packed weights), with its note
    assert ("quantized: conv1 8, conv2 8, fc1 4, final_fc 8; 3 layer(s) compute on integers (int8 x int8 -> int32); "
            "0 INT8 and 1 packed INT4 weights dequantized inside 1 float layer kernels") in result.stdout
    assert ("    float fallback: fc1 (Gemm): float: INT4 weights (packed in the artifact, computed in float)"
            in result.stdout)


@pytest.mark.parametrize("verb", ["quantize", "compile"])
def test_a_bad_config_is_one_error_line_naming_the_key(tmp_path, verb):
    bad = tmp_path / "quant.yaml"
    bad.write_text("quantization:\n  type: static\n  bit_width: 3\n")
    args = (["quantize", MODEL, "--config", bad, "-o", tmp_path / "q.onnx"] if verb == "quantize" else
            ["compile", MODEL, "--target", "x86-host", "-o", tmp_path / "o", "--quant", bad])
    result = run(*args)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: quant.yaml: quantization.bit_width: 3 is not valid; choose 8, 4 or mixed"


def test_a_missing_calibration_dataset_is_named(tmp_path):
    config = tmp_path / "quant.yaml"
    config.write_text("quantization:\n  type: static\n  bit_width: 8\n  calibration_dataset: ./data/calib_set\n")
    result = run("quantize", MODEL, "--config", config, "-o", tmp_path / "q.onnx")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(
        f"Error: quantization.calibration_dataset: {tmp_path}/data/calib_set does not exist")
