"""`tvmedge certify`: the publishable pass/fail report (issue 7 §5). Short runs (1 s) instead of the 60 s standard."""

import json

import pytest
from click.testing import CliRunner

from tvmedge.bench.certify import certify
from tvmedge.cli.main import cli
from tvmedge.runtime.manifest import Manifest
from tvmedge.thermal.sysfs import Sysfs


def invoke(*args):
    return CliRunner().invoke(cli, ["certify", *map(str, args)])


def test_passes_with_readable_thermal_zones(x86_artifact, tmp_path):
    # A fake sysfs tree stands for a board with sensors; min_duration=1 stands for the 60 s run a vendor does.
    Sysfs.create_fake(tmp_path, temp_c=42.0)
    report = certify(x86_artifact, duration=1.0, sysfs_root=tmp_path, min_duration=1.0)
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("manifest", "pass"), ("model load", "pass"), ("first inference", "pass"), ("sustained load", "pass"),
        ("temperature stable", "pass")]
    assert report["verdict"] == "PASS" and not report["emulated"]
    m = report["measurements"]
    assert m["load_s"] < 3 and m["first_inference_ms"] < 500 and m["runs"] > 0
    assert len(m["temperatures"]) >= 2 and {t for _, t in m["temperatures"]} == {42.0}
    assert report["library_sha256"] == Manifest.read(x86_artifact).files[Manifest.read(x86_artifact).library]["sha256"]


def test_without_sensors_reports_not_measurable_and_never_passes(x86_artifact, tmp_path):
    result = invoke(x86_artifact, "--duration", 1, "--sysfs-root", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["temperature stable"]["status"] == "not measurable"
    assert checks["temperature stable"]["note"] == f"not measurable here: no thermal zones under {tmp_path}/sys/class/thermal"
    assert checks["sustained load"]["status"] == "too short"  # 1 s < the 60 s a certificate needs
    assert report["verdict"] == "INCOMPLETE"


def test_human_report_is_a_table_with_a_verdict(x86_artifact, tmp_path):
    result = invoke(x86_artifact, "--duration", 1, "--sysfs-root", tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tvmedge certification report")
    assert any(line.startswith("model load") and "PASS" in line for line in lines)
    assert lines[-1].startswith("VERDICT: INCOMPLETE (not established here: sustained load, temperature stable)")


def test_tampered_artifact_fails_with_one_error_line(artifact_copy):
    library = artifact_copy / Manifest.read(artifact_copy).library
    library.write_bytes(library.read_bytes() + b"\0")
    result = invoke(artifact_copy, "--duration", 1, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "FAIL" and report["checks"][0]["status"] == "fail"
    assert [c["status"] for c in report["checks"][1:]] == ["not run"] * 4  # nothing untrusted is loaded
    assert result.stderr.strip().splitlines() == [
        f"Error: {artifact_copy} failed certification: manifest: {library} does not match the sha256 in its manifest "
        "(tampered or corrupt); refusing to load it"]


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "Error: {missing} is not an artifact directory (compile one with `tvmedge compile`)"),
    (["{artifact}", "--board", "rk3588"],
     "Error: --board 'rk3588' must look like emu:NAME (e.g. emu:rk3588); omit it to certify this machine"),
    (["{artifact}", "--duration", "0"], "Error: --duration must be > 0 seconds (got 0); certification uses 60"),
])
def test_bad_input_is_one_error_line(x86_artifact, tmp_path, args, message):
    fill = {"missing": tmp_path / "nothing", "artifact": x86_artifact}
    result = invoke(*[a.format(**fill) for a in args])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [message.format(**fill)]


@pytest.mark.emulated
def test_emulated_board_reports_but_is_not_certifiable(arm_artifact):
    result = invoke(arm_artifact, "--board", "emu:rk3588", "--duration", 1, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["emulated"] and report["verdict"] == "NOT CERTIFIABLE"
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {"manifest": "pass", "model load": "not certifiable", "first inference": "not certifiable",
                        "sustained load": "not certifiable", "temperature stable": "not measurable"}
    assert report["measurements"]["runs"] > 0
