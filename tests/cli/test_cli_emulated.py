"""`tvmedge board setup` and `tvmedge run --board emu:...` through the CLI (issue 3)."""

import json

import pytest
from click.testing import CliRunner

from tvmedge.cli.main import cli

pytestmark = pytest.mark.emulated


def test_board_setup_then_run_on_emulated_board_against_onnxruntime(arm_artifact, tiny_cnn):
    runner = CliRunner()
    setup = runner.invoke(cli, ["board", "setup", "rk3588", "--json"])
    assert setup.exit_code == 0, setup.output
    assert json.loads(setup.stdout)["arch"] == "aarch64"
    result = runner.invoke(cli, ["run", str(arm_artifact), "--board", "emu:rk3588", "--reference", str(tiny_cnn),
                                 "--repeat", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["emulated"] is True and report["where"] == "emu:rk3588"
    assert report["comparison"][0]["match"] and report["comparison"][0]["max_abs_diff"] < 1e-5


def test_input_errors_are_caught_before_the_emulator_starts(arm_artifact, tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), "float32"))
    result = CliRunner().invoke(cli, ["run", str(arm_artifact), "--board", "emu:rk3588", "--input", str(tmp_path / "x.npy")])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: input 'input': expected shape (1, 3, 32, 32) float32, got (1, 3, 8, 8) float32"
