"""The CLI verbs on good input, through the real entry point (issue 3)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tvmedge.cli.main import _VERBS, cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("verb", sorted(_VERBS))
def test_help_for_every_verb(verb):
    assert "Usage:" in run(verb, "--help").stdout


def test_help_does_not_import_tvm():
    # `tvmedge --help` must be instant: verbs are loaded lazily and tvm is imported only when a verb needs it.
    code = "import sys; from tvmedge.cli.main import main; sys.argv=['tvmedge','--help']\ntry: main()\nexcept SystemExit: pass\nprint('tvm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_targets_list_and_show():
    listed = json.loads(run("targets", "list", "--json").stdout)
    names = {b["name"] for b in listed}
    assert {"rk3588", "rpi5", "rpi4", "jetson-orin-nano", "x86-host", "visionfive2", "licheepi4a"} <= names
    shown = run("targets", "show", "rk3588").stdout
    assert "Cortex-A76" in shown and "mali_g610" in shown and "vendor only" in shown
    raw = json.loads(run("targets", "show", '{"kind": "llvm", "mtriple": "aarch64-linux-gnu"}', "--json").stdout)
    assert raw["arch"] == "aarch64" and raw["cross_compiler"] == "aarch64-linux-gnu-g++"


def test_inspect_json(tiny_cnn):
    report = json.loads(run("inspect", tiny_cnn, "--json").stdout)
    assert report["importable"] and report["ops"]["Conv"] == 3 and report["unsupported_ops"] == {}


def test_inspect_with_input_shape(dynamic_cnn):
    report = json.loads(run("inspect", dynamic_cnn, "--input-shape", "input=2,3,32,32", "--json").stdout)
    assert report["importable"] and report["inputs"][0]["shape"] == [2, 3, 32, 32]
    assert "Shape" not in report["ops"]  # folded


def test_compile_json_then_run_with_files_and_reference(tmp_path, dynamic_cnn):
    out = tmp_path / "art"
    summary = json.loads(run("compile", dynamic_cnn, "--target", "x86-host", "--input-shape", "input=2,3,32,32",
                             "--search", "naive", "-o", out, "--json").stdout)
    assert summary["board"] == "x86-host" and summary["outputs"][0]["shape"] == [2, 10]
    x = np.random.default_rng(0).random((2, 3, 32, 32)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", input=x)
    ran = json.loads(run("run", out, "--input", f"input={tmp_path / 'x.npy'}", "--reference", dynamic_cnn,
                         "-o", tmp_path / "y.npz", "--repeat", "3", "--json").stdout)
    assert ran["comparison"][0]["match"] and ran["latency_ms"]["repeat"] == 3 and not ran["emulated"]
    from_npz = run("run", out, "--input", tmp_path / "x.npz", "-o", tmp_path / "y2.npy", "--repeat", "0").stdout
    assert "latency: first" in from_npz
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["probabilities"], np.load(tmp_path / "y2.npy"))


def test_console_script_entry_point(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "tvmedge")
    result = subprocess.run([exe, "inspect", str(tmp_path / "missing.onnx")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.strip() == f"Error: model file {tmp_path / 'missing.onnx'} does not exist"
