"""``tvmedge profile`` (issue 17): per-kernel times tied to ONNX layers, on x86, on an emulated board and per stage
of a partitioned artifact. Timings are never asserted (the machine is shared); what is asserted is the structure:
every kernel call found, tied to the layers the compile-time map names, shares and memory consistent."""

import json

import pytest
from click.testing import CliRunner

from tvmedge import api
from tvmedge.cli.main import cli

# tiny_cnn after folding (BatchNormalization folded into the first Conv): the ONNX tensors its kernels compute
TINY_LAYERS = {"b1", "r1", "d1", "r2", "p1", "r3", "g1", "logits", "probabilities"}


def _layers(report) -> set:
    return {layer for row in report.rows for layer in row["layers"]}


def test_profile_ties_every_kernel_call_to_onnx_layers_with_flops(x86_artifact):
    report = api.profile(x86_artifact, repeat=3)
    assert report.where == "host" and not report.emulated and report.repeat == 3
    assert _layers(report) == TINY_LAYERS
    convs = [r for r in report.rows if "conv2d" in r["kernel"]]  # naive build: conv2d, conv2d1, conv2d2
    assert len(convs) == 3 and all(r["flops"] > 1e4 and r["gflops"] > 0 and r["peak_pct"] > 0 for r in convs)
    assert all(r["peak_gflops"] == 80 for r in report.rows)  # x86-host.yaml's cpu unit
    stage = report.stages[0]
    assert stage["kernel_ms"] == pytest.approx(sum(r["ms"] for r in report.rows))
    assert stage["kernel_ms"] + stage["builtin_ms"] <= stage["total_ms"] * 1.0001
    assert 0 < sum(r["share"] for r in report.rows) <= 1.0001
    memory = report.memory
    assert memory["weight_bytes"] > 0 and memory["activation_bytes"] > 0 and memory["peak_rss_bytes"] > 0


def test_cli_profile_prints_the_table_writes_json_and_a_chart(x86_artifact, tmp_path):
    plot = tmp_path / "profile.png"
    # --top above the naive build's 18 kernel calls: the softmax is among the fastest, and a top 15 by time may
    # leave it out
    result = CliRunner().invoke(cli, ["profile", str(x86_artifact), "--repeat", "2", "--top", "50",
                                      "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "ONNX layers" in result.output and "probabilities" in result.output and "measured peak RSS" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(CliRunner().invoke(cli, ["profile", str(x86_artifact), "--repeat", "1", "--json"]).stdout)
    assert {"kernels", "stages", "memory", "total_ms"} <= set(data)


def test_a_tampered_layer_map_is_refused_like_any_artifact_file(artifact_copy):
    path = artifact_copy / "layers.json"
    path.write_text(path.read_text().replace('"b1"', '"xx"'))
    result = CliRunner().invoke(cli, ["profile", str(artifact_copy)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {path} does not match the sha256 in its manifest (tampered or corrupt); "
                                     f"refusing to load it")


def test_profile_of_a_partitioned_artifact_reports_each_stage(tmp_path, tiny_cnn, two_cpu_board, naive_tuning):
    artifact = api.compile(tiny_cnn, str(two_cpu_board), plan="throughput", tuning=naive_tuning, out=tmp_path / "p")
    report = api.profile(artifact.path, repeat=2)
    stages = {row["stage"] for row in report.rows}
    assert len(report.stages) == len(artifact.manifest.plan.stages)
    assert stages == set(range(len(report.stages))) and len(stages) >= 2
    assert {s["unit"] for s in report.stages} <= {"big", "little"}
    assert _layers(report) == TINY_LAYERS  # every layer found in one stage or another


@pytest.mark.emulated
def test_profile_on_the_emulated_board_matches_the_layer_map(arm_artifact):
    report = api.profile(arm_artifact, board="emu:rk3588", repeat=1)
    assert report.emulated and report.where == "emu:rk3588"
    assert _layers(report) == TINY_LAYERS
    assert any("emulated board" in note for note in report.notes)
    assert all(r["peak_gflops"] == 153.6 for r in report.rows)  # rk3588's a76 cluster
