"""The library API (issue 12): one call per CLI verb, typed results; the CLI only parses, calls and prints."""

import json

import numpy as np
import pytest

from tvmedge import api
from tvmedge.errors import ConfigError
from tvmedge.runtime import LatencyStats, RunResult


def test_run_returns_a_typed_result(x86_artifact, tiny_input, tmp_path):
    result = api.run(x86_artifact, {"input": tiny_input}, repeat=2, output=tmp_path / "y.npz")
    assert isinstance(result, RunResult) and isinstance(result.stats, LatencyStats)
    assert result.where == "host" and result.emulated is False and result.stats.repeat == 2
    assert result.comparison is None and result.matches_reference is None
    with np.load(result.written) as saved:
        np.testing.assert_array_equal(saved["probabilities"], result.outputs["probabilities"])


def test_run_compares_with_a_reference_on_the_same_inputs(x86_artifact, tiny_cnn, tiny_input, tmp_path):
    # the reference comparison lived in the CLI's run command; the library does it now, on files too
    np.save(tmp_path / "x.npy", tiny_input)
    result = api.run(x86_artifact, input_files=[str(tmp_path / "x.npy")], reference=tiny_cnn)
    assert result.matches_reference is True and [row["name"] for row in result.comparison] == ["probabilities"]
    assert result.reference == str(tiny_cnn)
    same = api.run(x86_artifact, {"input": tiny_input}).outputs["probabilities"]
    np.testing.assert_array_equal(result.outputs["probabilities"], same)


def test_latency_stats_read_back_what_a_board_prints(x86_artifact, tiny_input):
    _, stats = api.load(x86_artifact).timed_run(tiny_input, repeat=3)
    printed = json.loads(json.dumps(dict(stats.to_json(), load_s=0.5, loader="c++")))
    again = LatencyStats.from_json(printed)
    assert again.median_ms == stats.median_ms and again.extra == {"load_s": 0.5, "loader": "c++"}
    assert LatencyStats.from_times(1.0, []).to_json() == {"first_ms": 1.0, "repeat": 0}


def test_quantize_writes_the_model_and_the_report(tmp_path):
    from tvmedge.quant import parse_config

    config = parse_config({"quantization": {"type": "weight_only", "bit_width": 8}})
    result = api.quantize("examples/digits/digits_cnn.onnx", config, out=tmp_path / "q.onnx",
                          report=tmp_path / "r.json")
    assert (tmp_path / "q.onnx").is_file() and json.loads((tmp_path / "r.json").read_text())["output"]
    assert result.report.output == str(tmp_path / "q.onnx")


def test_bench_of_a_board_is_its_declared_figures():
    data = api.bench(board="rpi4")
    assert data["where"] == "rpi4" and {r["status"] for r in data["metrics"]} == {"declared", "unavailable"}


def test_compile_takes_the_former_partition_names_but_not_both(tiny_cnn, tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        api.compile(tiny_cnn, "x86-host", out=tmp_path / "o", plan="latency", partition="latency")
