"""Bad input at the CLI: one `Error: ...` line on stderr, a non-zero exit, never a traceback (issue 3).

One row per case of the issue's bad-input table, through the real entry point.
"""

import json
import shutil

import pytest
from click.testing import CliRunner

from tvmedge.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, pattern, code=1):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output


def test_missing_model_file(tmp_path):
    assert_one_line_error(run("compile", tmp_path / "nope.onnx", "--target", "x86-host", "-o", tmp_path / "o"),
                          r"model file .*nope.onnx does not exist")


@pytest.mark.parametrize("content", [b"garbage\x00\xff" * 40, None])
def test_garbage_or_truncated_onnx(tmp_path, tiny_cnn, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content if content is not None else tiny_cnn.read_bytes()[:777])
    for verb in (["inspect", path], ["compile", path, "--target", "x86-host", "-o", tmp_path / "o"]):
        assert_one_line_error(run(*verb), r"bad.onnx is not a valid ONNX file")


def test_unsupported_ops_listed_at_once(tmp_path, unsupported_model):
    assert_one_line_error(run("compile", unsupported_model, "--target", "x86-host", "-o", tmp_path / "o"),
                          r"cannot convert 2 op type\(s\): DFT \(x1\), Det \(x1\)")
    result = run("inspect", unsupported_model)
    assert result.exit_code == 0
    assert "ops the importer lacks (2): DFT (x1), Det (x1)" in result.stdout


def test_unknown_board(tmp_path, tiny_cnn):
    assert_one_line_error(run("compile", tiny_cnn, "--target", "rk3599", "-o", tmp_path / "o"),
                          r"unknown board 'rk3599'; choose from: .*rk3588.*x86-host")
    assert_one_line_error(run("targets", "show", "nope"), r"unknown board 'nope'")


def test_malformed_board_yaml(tmp_path, tiny_cnn):
    bad = tmp_path / "myboard.yaml"
    bad.write_text("name: myboard\narch: aarch64\ntarget: {kind: llvm\n")
    assert_one_line_error(run("compile", tiny_cnn, "--target", bad, "-o", tmp_path / "o"), r"board file .*myboard.yaml is not valid YAML \(line 4\)")
    bad.write_text("name: myboard\narch: sparc\ntarget: {kind: llvm}\n")
    assert_one_line_error(run("targets", "show", bad), r"key 'arch': Input should be 'x86_64', 'aarch64' or 'riscv64'")


def test_symbolic_input_without_shape(tmp_path, dynamic_cnn):
    assert_one_line_error(run("compile", dynamic_cnn, "--target", "x86-host", "-o", tmp_path / "o"),
                          r"input shape needed: input \('batch', 3, 32, 32\) \(e.g. --input-shape input=1,3,32,32\)")


def test_bad_input_shape_option(tmp_path, tiny_cnn):
    assert_one_line_error(run("compile", tiny_cnn, "--target", "x86-host", "--input-shape", "input=1,x", "-o", tmp_path / "o"),
                          r"--input-shape 'input=1,x' must look like NAME=D0,D1")


@pytest.mark.parametrize("array, name, pattern", [
    ((1, 3, 16, 16), "float32", r"input 'input': expected shape \(1, 3, 32, 32\) float32, got \(1, 3, 16, 16\) float32"),
    ((1, 3, 32, 32), "int64", r"expected shape \(1, 3, 32, 32\) float32, got \(1, 3, 32, 32\) int64"),
])
def test_wrong_input_shape_or_dtype(tmp_path, x86_artifact, array, name, pattern):
    import numpy as np

    path = tmp_path / "x.npy"
    np.save(path, np.zeros(array, name))
    assert_one_line_error(run("run", x86_artifact, "--input", f"input={path}"), pattern)


def test_wrong_input_name(tmp_path, x86_artifact):
    import numpy as np

    path = tmp_path / "x.npy"
    np.save(path, np.zeros((1, 3, 32, 32), "float32"))
    assert_one_line_error(run("run", x86_artifact, "--input", f"image={path}"),
                          r"unknown input 'image'; the model's inputs are: input")
    assert_one_line_error(run("run", x86_artifact, "--input", f"input={tmp_path / 'none.npy'}"), r"none.npy does not exist")


def test_tampered_library(artifact_copy):
    with open(artifact_copy / "model.so", "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\x90\x90\x90\x90")
    assert_one_line_error(run("run", artifact_copy), r"model.so does not match the sha256 in its manifest")


def test_modified_manifest(artifact_copy):
    path = artifact_copy / "manifest.json"
    data = json.loads(path.read_text())
    data["target"]["mcpu"] = "cortex-a53"
    path.write_text(json.dumps(data, indent=2))
    assert_one_line_error(run("run", artifact_copy), r"manifest.json was modified after it was built")


def test_missing_cross_compiler(tmp_path, tiny_cnn, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name.endswith("-g++") else real_which(name, *a, **k))
    assert_one_line_error(run("compile", tiny_cnn, "--target", "rk3588", "-o", tmp_path / "o"),
                          r"aarch64-linux-gnu-g\+\+ for board rk3588 not found; install the Debian package g\+\+-aarch64-linux-gnu")


def test_bad_board_spec_for_run(x86_artifact):
    assert_one_line_error(run("run", x86_artifact, "--board", "rk3588"), r"--board 'rk3588' must look like emu:NAME")


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "inspect", tmp_path / "nope.onnx")
    assert result.exit_code != 0 and result.exception is not None
