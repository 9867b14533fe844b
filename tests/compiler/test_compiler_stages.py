"""Multi-partition artifacts (issue 5 §5): the plan's stages built one library each and run stage by stage."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tvmedge import api
from tvmedge.errors import ArtifactError, ConfigError


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory, tiny_cnn, two_cpu_board, naive_tuning) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "tiny-two-cpu"
    api.compile(tiny_cnn, str(two_cpu_board), out=out, tuning=naive_tuning, plan="throughput")
    return out


def _manifest(path) -> dict:
    return json.loads((Path(path) / "manifest.json").read_text())


def test_outputs_equal_the_single_partition_build(partitioned, x86_artifact, tiny_input):
    single = api.run(x86_artifact, tiny_input).outputs
    result = api.run(partitioned, tiny_input, repeat=2)
    multi = result.outputs
    assert list(multi) == list(single)
    for name in single:
        np.testing.assert_allclose(multi[name], single[name], rtol=1e-5, atol=1e-6)
    assert result.stats.repeat == 2
    model = api.load(partitioned)
    assert model.stage_count >= 2
    again = model.run(tiny_input)
    np.testing.assert_array_equal(again["probabilities"], multi["probabilities"])


def test_manifest_records_the_plan(partitioned):
    m = _manifest(partitioned)
    plan = m["plan"]
    stages = plan["stages"]
    assert m["format_version"] == 2 and len(stages) >= 2
    assert {s["unit"] for s in stages} == {"big", "little"}
    assert [s["library"] for s in stages] == [f"stage{i}.so" for i in range(len(stages))]
    assert set(m["files"]) == {s["library"] for s in stages} | {"layers.json"} and m["library"] == "stage0.so"
    for s in stages:
        assert s["fallback"] is None and s["built_for"] == s["unit"] and s["ops"]
        assert s["predicted"]["compute_ms"] > 0
        assert (Path(partitioned) / s["library"]).is_file()
    # Every op placed once, in topological order; stage k+1 reads what earlier stages wrote.
    ops = [op for s in stages for op in s["ops"]]
    assert sorted(ops) == sorted(plan["assignment"]) and len(set(ops)) == len(ops)  # (JSON sorts the keys)
    produced = {t["name"] for t in m["inputs"]}
    for s in stages:
        assert {t["name"] for t in s["inputs"]} <= produced
        produced |= {t["name"] for t in s["outputs"]}
    assert set(plan["outputs"]) <= produced and plan["predicted"]["throughput_ips"] > 0
    for s in stages:  # each stage is built for its own unit's target ("little" has no mcpu, "big" the host's)
        assert ("mcpu" in s["target"]) == (s["unit"] == "big")


def test_tampered_stage_library_is_refused(partitioned, tmp_path):
    copy = Path(shutil.copytree(partitioned, tmp_path / "artifact"))
    with open(copy / "stage1.so", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="stage1.so does not match the sha256"):
        api.load(copy)


def test_stage_library_missing_is_refused(partitioned, tmp_path):
    copy = Path(shutil.copytree(partitioned, tmp_path / "artifact"))
    (copy / "stage1.so").unlink()
    with pytest.raises(ArtifactError, match="stage1.so is missing"):
        api.load(copy)


def test_fallbacks_for_units_tvm_cannot_build_or_run():
    from tvmedge.compiler.stages import stage_targets
    from tvmedge.devices.graph import DeviceGraph
    from tvmedge.devices.target import CompileTarget

    target = CompileTarget.resolve("rk3588")
    builds = stage_targets(target, DeviceGraph.from_board(target.board), ["a76", "a55", "mali_g610", "npu"])
    assert builds["a55"].fallback is None and builds["a55"].target.spec["mcpu"] == "cortex-a55"
    assert builds["a76"].target.spec["mcpu"] == "cortex-a76"
    assert builds["a76"].target is target  # the board's own target: resolved once, reused
    for unit in ("mali_g610", "npu"):
        assert builds[unit].fallback == "cpu" and builds[unit].built_for == "a76"
        assert builds[unit].target.spec["kind"] == "llvm" and unit in builds[unit].reason
    assert "no code generator" in builds["npu"].reason and "opencl" in builds["mali_g610"].reason


def test_partition_with_quant_is_refused(tiny_cnn, tmp_path):
    with pytest.raises(ConfigError, match="--partition and --quant"):
        api.compile(tiny_cnn, "x86-host", out=tmp_path / "o", plan="latency", quant="q.yaml")


def test_cli_compile_partition(tiny_cnn, two_cpu_board, tmp_path, tiny_input, x86_artifact):
    from tvmedge.cli.main import cli

    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["compile", str(tiny_cnn), "--target", str(two_cpu_board), "--search", "naive",
                                      "--partition", "throughput", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "plan: " in result.output and "stage1.so" in result.output
    multi = api.run(out, tiny_input).outputs
    single = api.run(x86_artifact, tiny_input).outputs
    np.testing.assert_allclose(multi["probabilities"], single["probabilities"], rtol=1e-5, atol=1e-6)


@pytest.mark.emulated
@pytest.mark.parametrize("algorithm", [None, "fixed-rule"])
def test_rk3588_partitioned_runs_on_the_emulated_board(tiny_cnn, tmp_path, tiny_input, x86_artifact, algorithm,
                                                       naive_tuning):
    """latency plan (the optimiser's) and the fixed-rule baseline, whose GPU/NPU stages fall back to the A76."""
    out = tmp_path / "rk3588"
    api.compile(tiny_cnn, "rk3588", out=out, tuning=naive_tuning, plan="latency", algorithm=algorithm)
    plan = _manifest(out)["plan"]
    if algorithm == "fixed-rule":
        fallbacks = [s for s in plan["stages"] if s["fallback"]]
        assert len(plan["stages"]) >= 2 and fallbacks
        assert all(s["built_for"] == "a76" and s["unit"] in ("mali_g610", "npu") for s in fallbacks)
    result = api.run(out, tiny_input, board="emu:rk3588")
    single = api.run(x86_artifact, tiny_input).outputs
    assert result.emulated is True
    np.testing.assert_allclose(result.outputs["probabilities"], single["probabilities"], rtol=1e-5, atol=1e-6)
