"""Group-wise INT4 weights (issue 16): the YAML keys, ONNX Runtime's MatMulNBits bytes, exclude_layers, mixed,
and the compiled artifact (size and outputs)."""

import numpy as np
import pytest

from nbits_models import matmul_model, mlp_model, ort_run, save
from tvmedge.errors import ConfigError
from tvmedge.quant import load_config, parse_config, quantize
from tvmedge.quant.blockwise import quantize_blockwise


def config(**options):
    return parse_config({"quantization": {"type": "weight_only", "bit_width": 4, **options}}, source="q.yaml")


@pytest.mark.parametrize("options, message", [
    ({"group_size": 48}, "q.yaml: quantization.group_size: 48 is not valid; choose 32, 64 or 128"),
    ({"group_size": 32, "bit_width": 8}, "quantization.group_size: group-wise weights are 4-bit"),
    ({"symmetric": False}, "quantization.symmetric: false needs group_size"),
    ({"group_size": 32, "scale_dtype": "bfloat16"}, "quantization.scale_dtype: 'bfloat16' is not valid"),
])
def test_group_options_are_checked_with_one_line_errors(options, message):
    with pytest.raises(ConfigError) as err:
        config(**options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_seed_yaml_as_written_loads(tmp_path):
    path = tmp_path / "int4.yaml"
    path.write_text("quantization:\n  type: weight_only\n  bit_width: 4\n  group_size: 32\n"
                    "  exclude_layers: [embeddings, final_fc]\n")
    loaded = load_config(path)
    assert (loaded.bit_width, loaded.group_size, loaded.symmetric, loaded.scale_dtype) == (4, 32, True, "float32")
    assert loaded.exclude_layers == ("embeddings", "final_fc")


@pytest.mark.parametrize("k, n, block, symmetric", [(256, 48, 32, True), (200, 40, 32, False),
                                                     (256, 32, 64, False), (384, 16, 128, True)])
def test_absmax_weights_are_the_bytes_onnx_runtime_writes(k, n, block, symmetric):
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    w = np.random.default_rng(k + n).standard_normal((k, n)).astype(np.float32)
    n_blocks = -(-k // block)
    packed = np.zeros((n, n_blocks, block // 2), np.uint8)
    scales = np.zeros(n * n_blocks, np.float32)
    zeros = np.zeros(n * ((n_blocks + 1) // 2), np.uint8)
    quantize_matmul_4bits(packed, w, scales, zeros, block, n, k, symmetric)
    ours = quantize_blockwise(w, block, symmetric=symmetric, method="absmax")
    assert np.array_equal(ours.packed, packed) and np.array_equal(ours.scales.reshape(-1), scales)
    assert (ours.zero_points is None) == symmetric
    if not symmetric:
        assert np.array_equal(ours.zero_points.reshape(-1), zeros)


def test_mse_scales_lower_the_weight_error_and_fp16_scales_stay_close():
    w = np.random.default_rng(0).standard_normal((256, 64)).astype(np.float32)
    w[::37, ::5] *= 6  # outliers: clipping pays
    error = {m: float(((quantize_blockwise(w, 32, method=m).dequantize() - w) ** 2).sum()) for m in ("absmax", "mse")}
    assert error["mse"] < error["absmax"]
    half = quantize_blockwise(w, 32, scale_dtype="float16")
    assert half.scales.dtype == np.float16
    assert float(((half.dequantize() - w) ** 2).sum()) < 1.01 * error["absmax"]


def _relative_error(got, want) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("symmetric, scale_dtype", [(True, "float32"), (False, "float16")])
def test_mlp_quantizes_to_matmul_nbits_within_the_quantization_tolerance(tmp_path, group, symmetric, scale_dtype):
    float_path = save(mlp_model(), tmp_path / "mlp.onnx")
    result = quantize(float_path, config(group_size=group, symmetric=symmetric, scale_dtype=scale_dtype))
    path = result.save(tmp_path / "q.onnx")
    nodes = [node for node in result.model.graph.node if node.op_type == "MatMulNBits"]
    assert len(nodes) == 2 and {a.name: a.i for a in nodes[0].attribute}["block_size"] == group
    assert len(nodes[0].input) == (3 if symmetric else 4)
    x = np.random.default_rng(1).standard_normal((1, 4, 128)).astype(np.float32)
    # 4-bit weights, 15 steps per group, of random normal weights: ~8-11 % relative error per layer, two layers
    error = _relative_error(ort_run(path, {"x": x}), ort_run(float_path, {"x": x}))
    assert error < 0.2, error
    assert result.report.size["weight_ratio"] < 1 / 5


def test_exclude_layers_as_the_seed_writes_them(tmp_path):
    path = save(mlp_model(), tmp_path / "mlp.onnx")
    result = quantize(path, config(group_size=32, exclude_layers=["embeddings", "final_fc"]))
    ops = [node.op_type for node in result.model.graph.node]
    # final_fc keeps its float weight although folding fused it with its bias into a Gemm named otherwise
    assert ops.count("MatMulNBits") == 1 and "Gemm" in ops
    assert sorted(str(row["bits"]) for row in result.report.layers) == ["4", "float"]
    assert "exclude_layers pattern 'embeddings' matches no layer" in result.report.notes


def test_mixed_puts_the_sensitive_matmul_at_int8_and_the_rest_at_int4(tmp_path):
    path = save(mlp_model(k=128, hidden=128, n=32), tmp_path / "mlp.onnx")
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 4, 128)).astype(np.float32))
    mixed = parse_config({"quantization": {"type": "weight_only", "bit_width": "mixed", "group_size": 32,
                                           "calibration_dataset": str(tmp_path / "calib.npz"),
                                           "mixed": {"target_size_ratio": 0.2}}})
    result = quantize(path, mixed)
    bits = {row["name"]: row["bits"] for row in result.report.layers}
    assert sorted(bits.values()) == [4, 8]  # one of each reaches the size target
    ops = [node.op_type for node in result.model.graph.node]
    assert ops.count("MatMulNBits") == 1 and ops.count("DequantizeLinear") == 1
    assert all(row.get("sensitivity") for row in result.report.layers)


def test_compiled_int4_artifact_is_a_sixth_of_float_and_runs_like_onnx_runtime(tmp_path):
    from tvmedge import api
    from tvmedge.runtime.manifest import Manifest
    from tvmedge.tune.auto import TuningOptions

    k = n = 768
    float_path = save(matmul_model(k, n, 1), tmp_path / "fc.onnx")
    quant = tmp_path / "int4.yaml"
    quant.write_text("quantization:\n  type: weight_only\n  bit_width: 4\n  group_size: 32\n"
                     "  exclude_layers: [embeddings, final_fc]\n")
    artifact = api.compile(float_path, "x86-host", out=tmp_path / "out", quant=quant,
                           tuning=TuningOptions(search="none", use_records=False, predict=False))
    manifest = Manifest.read(artifact.path)
    record = manifest.build.quantization
    assert record["artifact_weights"]["matmul_nbits"] == 1 and record["layers"] == {"fc": 4}
    weight_bytes = manifest.build.memory["weight_bytes"]
    assert k * n // 2 <= weight_bytes <= 4 * k * n / 6  # packed codes + scales, at most 1/6 of float32
    x = np.random.default_rng(4).standard_normal((1, 1, k)).astype(np.float32)
    got = api.run(artifact.path, {"x": x}).outputs["y"]
    # the same quantized file in ONNX Runtime: same weights, same float32 arithmetic, another summation order
    want = ort_run(quantize(float_path, load_config(quant)).save(tmp_path / "q.onnx"), {"x": x})
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * float(np.abs(want).max()))
    # and the float model within the quantization tolerance (one layer of random normal weights)
    assert _relative_error(got, ort_run(float_path, {"x": x})) < 0.15
