"""Quantized artifacts (issue 6): really smaller, as accurate, and recorded in the manifest.

Sizes are those of the compiled ``model.so``, built the way ``compile`` builds when it measures nothing
(``--search none``: fused, parallelised + vectorised), for the float model and its INT8 / mixed versions.
The ~70-100 KB of generated code and ELF overhead is a fixed cost, so the ratios depend on the model: the
digits CNN has 2.1 MB of weights.
"""

from pathlib import Path

import numpy as np
import pytest

from tvmedge import api
from tvmedge.runtime.manifest import Manifest
from tvmedge.tune.auto import TuningOptions

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
MODEL = DIGITS / "digits_cnn.onnx"
NO_SEARCH = TuningOptions(search="none", use_records=False)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant-artifacts")
    configs = {"float": None, "int8": DIGITS / "quant.yaml", "mixed": DIGITS / "quant_mixed.yaml"}
    return {name: api.compile(MODEL, "x86-host", out=root / name, tuning=NO_SEARCH, quant=quant)
            for name, quant in configs.items()}


def _library_bytes(artifact) -> int:
    return artifact.summary()["library_bytes"]


def _accuracy(path) -> float:
    test = np.load(DIGITS / "test.npz")
    model = api.load(path)
    predicted = [model.run({"input": x[None]})["logits"].argmax() for x in test["input"]]
    return float((np.array(predicted) == test["labels"]).mean())


def test_int8_artifact_is_at_most_30_percent_and_mixed_at_most_20_percent_of_float(artifacts):
    float_bytes = _library_bytes(artifacts["float"])
    assert float_bytes > 2_000_000  # the float weights really are in the float artifact
    assert _library_bytes(artifacts["int8"]) <= 0.30 * float_bytes
    assert _library_bytes(artifacts["mixed"]) <= 0.20 * float_bytes


def test_quantized_artifacts_keep_98_percent_of_float_accuracy_on_the_test_split(artifacts):
    accuracy = {name: _accuracy(artifact.path) for name, artifact in artifacts.items()}
    assert accuracy["float"] > 0.97
    assert accuracy["int8"] >= 0.98 * accuracy["float"]
    assert accuracy["mixed"] >= 0.98 * accuracy["float"]


def test_the_manifest_records_the_quantization(artifacts):
    manifest = Manifest.read(artifacts["mixed"].path)  # also checks the digest after the rewrite
    record = manifest.build.quantization
    assert record["config"]["bit_width"] == "mixed" and record["layers"]["fc1"] == 4
    assert record["artifact_weights"]["int4_packed"] == 1 and record["artifact_weights"]["unfused"] == 0
    assert manifest.source_model["file"] == "digits_cnn.onnx"
    assert Manifest.read(artifacts["float"].path).build.quantization is None


def test_a_model_written_by_quantize_compiles_small_too(tmp_path, naive_tuning):
    from tvmedge.quant import load_config, quantize

    path = quantize(MODEL, load_config(DIGITS / "quant_mixed.yaml")).save(tmp_path / "digits.q.onnx")
    artifact = api.compile(path, "x86-host", out=tmp_path / "art", tuning=naive_tuning)
    record = artifact.manifest.build.quantization
    assert record["config"] is None and record["artifact_weights"]["int4_packed"] == 1
    assert _library_bytes(artifact) < 700_000  # the float model's artifact is 2.3 MB in this build mode


@pytest.mark.parametrize("options", [{"type": "dynamic", "bit_width": 8}, {"type": "weight_only", "bit_width": 4}])
def test_the_artifact_computes_what_onnxruntime_computes_for_the_quantized_model(tmp_path, tiny_cnn, tiny_input,
                                                                                 naive_tuning, options):
    # tiny_cnn: Conv+BN (folded), depthwise conv, pointwise conv, Gemm; run-time activation quantization.
    import onnxruntime as ort

    from tvmedge.quant import parse_config, quantize

    config = parse_config({"quantization": options})
    qmodel = quantize(tiny_cnn, config).save(tmp_path / "tiny.q.onnx")
    expected = ort.InferenceSession(str(qmodel)).run(None, {"input": tiny_input})[0]
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "art", tuning=naive_tuning, quant=config)
    assert artifact.manifest.build.quantization["artifact_weights"]["fused"] == 4
    outputs = api.run(artifact.path, {"input": tiny_input}).outputs
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-6)
