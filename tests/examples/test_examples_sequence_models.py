"""examples/models/make_sequence_models.py: the streaming LSTM and the attention block, compiled for x86 and
for the rk3588 and run there (emulated), equal to ONNX Runtime within 1e-5 (issue 14 "Done when")."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5


def _builder():
    spec = importlib.util.spec_from_file_location("make_sequence_models",
                                                  REPO / "examples" / "models" / "make_sequence_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sequence_models")
    _builder().main(["-o", str(folder)])
    return folder


def _compile(model, board, out):
    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    api.compile(model, board, out=out, tuning=TuningOptions(search="naive"))
    return out


def _chunks(n, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((16, 1, 40)).astype(np.float32) for _ in range(n)]


def _stream(run, chunks):
    """Feed chunks one after the other, the state of each into the next; returns every chunk's outputs."""
    state = {"h_in": np.zeros((1, 1, 64), np.float32), "c_in": np.zeros((1, 1, 64), np.float32)}
    results = []
    for chunk in chunks:
        out = run({"features": chunk, **state})
        results.append(out)
        state = {"h_in": out["h_out"], "c_in": out["c_out"]}
    return results


def _max_diff(ours, theirs):
    return max(float(np.max(np.abs(a[k] - b[k]))) for a, b in zip(ours, theirs) for k in b)


def test_streaming_lstm_on_x86_matches_onnxruntime_chunk_after_chunk(models, tmp_path):
    from tvmedge import api
    from tvmedge.peer import onnxruntime_outputs

    model = models / "streaming_lstm.onnx"
    artifact = api.load(_compile(model, "x86-host", tmp_path / "out"))
    chunks = _chunks(4)
    ours = _stream(artifact.run, chunks)
    theirs = _stream(lambda feeds: onnxruntime_outputs(model, feeds, threads=1), chunks)
    assert _max_diff(ours, theirs) <= TOL
    assert not np.allclose(ours[0]["h_out"], ours[3]["h_out"])  # the state really moves between chunks


def test_attention_block_on_x86_matches_onnxruntime(models, tmp_path):
    from tvmedge import api
    from tvmedge.peer import onnxruntime_outputs

    model = models / "attention_block.onnx"
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((1, 16, 64)).astype(np.float32),
             "residual": rng.standard_normal((1, 16, 64)).astype(np.float32)}
    ours = api.load(_compile(model, "x86-host", tmp_path / "out")).run(feeds)
    assert _max_diff([ours], [onnxruntime_outputs(model, feeds, threads=1)]) <= TOL


@pytest.mark.emulated
def test_streaming_lstm_on_emulated_rk3588_matches_onnxruntime(models, tmp_path):
    from tvmedge import api
    from tvmedge.peer import onnxruntime_outputs

    model = models / "streaming_lstm.onnx"
    out = _compile(model, "rk3588", tmp_path / "out")
    chunks = _chunks(2)
    ours = _stream(lambda feeds: api.run(out, feeds, board="emu:rk3588").outputs, chunks)
    theirs = _stream(lambda feeds: onnxruntime_outputs(model, feeds, threads=1), chunks)
    assert _max_diff(ours, theirs) <= TOL


@pytest.mark.emulated
def test_attention_block_on_emulated_rk3588_via_cli_reference(models, tmp_path):
    # The command a user runs: `tvmedge run out/ --board emu:rk3588 --reference model.onnx`.
    from click.testing import CliRunner

    from tvmedge.cli.main import cli

    model = models / "attention_block.onnx"
    out = _compile(model, "rk3588", tmp_path / "out")
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "in.npz", x=rng.standard_normal((1, 16, 64)).astype(np.float32),
             residual=rng.standard_normal((1, 16, 64)).astype(np.float32))
    result = CliRunner().invoke(cli, ["run", str(out), "--board", "emu:rk3588", "--input", str(tmp_path / "in.npz"),
                                      "--reference", str(model), "--repeat", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["emulated"] is True or report.get("stats", {}).get("emulated") is True
    assert {row["name"] for row in report["comparison"]} == {"y", "residual_out"}
    assert all(row["match"] and row["max_abs_diff"] <= TOL for row in report["comparison"])
