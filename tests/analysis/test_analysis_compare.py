"""``tvmedge compare`` (issue 17): per-layer accuracy by ONNX tensor name. The quantized case is a model built to
break int8 at one layer (examples/models/make_outlier_mlp.py): fc1 writes one channel 400x larger than the
others, so the per-tensor scale of its activations leaves the other channels a step or two, and fc2 (which
ignores that channel) loses everything. The first diverging layer must be fc2's output ``h2``, not earlier (h1,
a1 stay close) and not only the output."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tvmedge import api
from tvmedge.tune.auto import TuningOptions

# Neither reads nor writes tuning records: MetaSchedule matches a record to a structurally equal kernel of
# another model, whose blocks can be named after other Relax variables (lv14_red vs lv1_red), and replaying
# the record then fails; these tests are about the layer map, not schedules.
NO_RECORDS = TuningOptions(search="none", use_records=False)
from tvmedge.analysis.compare import compare_tensors
from tvmedge.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def outlier_mlp(tmp_path_factory):
    """(float model, its static int8 QDQ model) with a per-tensor int8 trap at fc1's output."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_outlier_mlp", REPO / "examples/models/make_outlier_mlp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write(tmp_path_factory.mktemp("outlier"))


def test_compare_shows_the_first_diverging_layer_of_a_quantized_artifact(outlier_mlp, tmp_path, naive_tuning):
    float_model, int8_model = outlier_mlp
    api.compile(int8_model, "x86-host", tuning=naive_tuning, out=tmp_path / "int8", expose_layers=True)
    result = CliRunner().invoke(cli, ["compare", f"ort:{float_model}", str(tmp_path / "int8"),
                                      "--plot", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert "first diverging layer: h2" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("h2 "))
    assert row.rstrip().endswith("<-- first")
    data = json.loads(CliRunner().invoke(cli, ["compare", f"ort:{float_model}", str(tmp_path / "int8"),
                                               "--json"]).stdout)
    layers = {row["layer"]: row for row in data["layers"]}
    assert [r["layer"] for r in data["layers"]] == ["h1", "a1", "h2", "a2", "logits"]  # the model's order
    assert layers["h1"]["cosine"] > 0.9999 and layers["a1"]["cosine"] > 0.999
    assert layers["h2"]["cosine"] < 0.5 and data["largest_jump"]["layer"] == "h2"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_tvmedge_matches_onnxruntime_at_every_layer(tmp_path, tiny_cnn, naive_tuning):
    artifact = api.compile(tiny_cnn, "x86-host", tuning=naive_tuning, out=tmp_path / "dbg", expose_layers=True)
    assert artifact.manifest.build.exposed_layers == 9  # every float intermediate tensor of the folded model
    report = api.compare(f"ort:{tiny_cnn}", str(tmp_path / "dbg"))
    assert [r["layer"] for r in report.rows] == ["b1", "r1", "d1", "r2", "p1", "r3", "g1", "f1", "logits",
                                                 "probabilities"]
    assert report.first_diverging is None and all(r["max_abs"] < 1e-5 for r in report.rows)
    assert report.only_in_a == 1  # c1: the Conv output folded into b1 by onnxslim before the import


def test_an_artifact_without_exposed_layers_compares_its_outputs_and_says_so(x86_artifact, tiny_cnn):
    report = api.compare(f"ort:{tiny_cnn}", str(x86_artifact))
    assert [r["layer"] for r in report.rows] == ["probabilities"]
    assert any("--expose-layers" in note for note in report.notes)


@pytest.mark.emulated
def test_host_build_and_emulated_board_build_agree_layer_by_layer(tmp_path, tiny_cnn, naive_tuning):
    api.compile(tiny_cnn, "x86-host", tuning=naive_tuning, out=tmp_path / "x86", expose_layers=True)
    api.compile(tiny_cnn, "rk3588", tuning=naive_tuning, out=tmp_path / "arm", expose_layers=True)
    report = api.compare(str(tmp_path / "x86"), f"{tmp_path / 'arm'}@emu:rk3588")
    assert report.b.endswith("@emu:rk3588") and len(report.rows) == 10
    assert report.first_diverging is None and all(r["max_abs"] < 1e-5 for r in report.rows)


def test_nan_on_one_side_diverges_and_a_jump_needs_ten_times_the_error_before_it():
    a = {"l1": np.ones(4), "l2": np.arange(4.0) + 1, "l3": np.arange(4.0) + 1}
    b = {"l1": np.ones(4), "l2": np.arange(4.0) + 1.001, "l3": np.array([1.0, np.nan, 3, 4])}
    report = compare_tensors(a, b, ["l1", "l2", "l3"])
    assert [r["diverged"] for r in report.rows] == [False, False, True]
    assert report.first_diverging == "l3" and report.largest_jump["layer"] == "l3"


@pytest.mark.parametrize("side, message", [
    ("ort:missing.onnx", "Error: compare side 'ort:missing.onnx': missing.onnx is not a file (ort: takes an ONNX model)"),
    ("nowhere", "Error: compare side 'nowhere' is neither ort:MODEL.onnx nor an artifact directory"),
])
def test_bad_sides_are_one_line_errors(side, message, x86_artifact):
    result = CliRunner().invoke(cli, ["compare", str(x86_artifact), side])
    assert result.exit_code == 1 and result.stderr.strip() == message


def test_a_board_after_at_must_be_emulated(x86_artifact):
    result = CliRunner().invoke(cli, ["compare", str(x86_artifact), f"{x86_artifact}@rk3588"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: compare side '{x86_artifact}@rk3588': after @ give an emulated board, "
                                     f"e.g. {x86_artifact}@emu:rk3588")


def test_a_quantized_artifacts_kernels_are_never_tied_to_the_wrong_layers(outlier_mlp, tmp_path):
    # keeping int8 weights quantized rewrites the matmuls after the import, and the bindings it creates reuse the
    # importer's names (lv, lv1) for other values: a kernel may then be unknown, but never named after a layer it
    # does not compute (what a name-only map did: fc2's matmul was shown as x.qdq)
    from tvmedge.runtime.layers import LayerMap

    artifact = api.compile(outlier_mlp[1], "x86-host", tuning=NO_RECORDS, out=tmp_path / "int8")
    calls = LayerMap.read(artifact.path).stage(0).calls
    matmuls = [set(c.layers) for c in calls if "matmul" in c.kernel]
    # the integer path (int8 x int8 -> int32 -> requantize, ReLU folded) names each layer's kernel after the
    # tensors of that layer only: fc1 / a1 (its ReLU), fc2 / a2, fc3 / logits
    right = [{"w1.int8.dequantized", "h1", "fc1.q", "a1.q"}, {"w2.int8.dequantized", "h2", "fc2.q", "a2.q"},
             {"w3.int8.dequantized", "logits", "fc3.float", "fc3.int32"}]
    assert len(matmuls) == 3 and all(m and m <= r for m, r in zip(matmuls, right)), matmuls
    others = {layer for c in calls if "matmul" not in c.kernel for layer in c.layers}
    assert not others & {"h1", "h2", "fc1.q", "fc2.q", "fc3.int32"}, others
