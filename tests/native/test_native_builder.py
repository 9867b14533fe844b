"""The C++ loader (tvmedge/native/src/tvmedge_run.cc) and TVM's runtime built per architecture
(:mod:`tvmedge.native.builder`).

On this host the loader is built against the installed wheels (a few seconds) and held to the Python loader:
same outputs, same refusals, same manifest digest. The ``emulated`` tests build the riscv64 runtime from
source once per machine (~1.5 min, cached) and run RISC-V and aarch64 artifacts under qemu.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tvmedge import api, runtime
from tvmedge.native import builder as native
from tvmedge.errors import ArtifactError, ConfigError, InputError, ToolchainError
from tvmedge.runtime.manifest import Manifest
from tvmedge.versions import TVM_VERSION

@pytest.fixture(scope="module")
def host_runtime():
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    return native.native_runtime("x86_64")


def _run(rt, *args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(rt.loader), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def _error(proc) -> str:
    """The loader's one error line (and nothing else on stderr)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    return lines[0][len("Error: "):]


def _python_error(directory, inputs=None) -> tuple[type, str]:
    try:
        model = runtime.load(directory)
        if inputs is not None:
            model.run(inputs)
    except (ArtifactError, InputError) as err:
        return type(err), str(err)
    raise AssertionError("the Python loader accepted it")


# --- on this host: the loader against the Python loader -------------------------------------------------------


def test_cpp_loader_gives_the_python_loaders_outputs(host_runtime, x86_artifact, tiny_input, tmp_path):
    np.save(tmp_path / "x.npy", tiny_input)
    proc = _run(host_runtime, x86_artifact, "--inputs", f"input={tmp_path / 'x.npy'}", "--output-dir", tmp_path,
                "--repeat", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    assert list(report["outputs"]) == list(expected)
    for index, (name, value) in enumerate(expected.items()):
        got = np.load(tmp_path / report["outputs"][name]["file"])
        assert report["outputs"][name] == {"shape": list(value.shape), "dtype": str(value.dtype),
                                           "file": f"output_{index}.npy"}
        np.testing.assert_array_equal(got, value)  # same library, same machine: bit-identical
    stats = report["stats"]
    assert stats["repeat"] == 3 and stats["loader"] == "c++"
    assert stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"] and stats["first_ms"] > 0


def test_cpp_loader_without_inputs_uses_seeded_random_inputs(host_runtime, x86_artifact, tmp_path):
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        proc = _run(host_runtime, x86_artifact, "--output-dir", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        assert "probabilities: shape (1, 10) float32" in proc.stdout
        runs.append(np.load(tmp_path / name / "output_0.npy"))
    np.testing.assert_array_equal(*runs)


TRICKY = {
    "floats": [0.1, 1e-05, 0.0001, 1e16, 9999999999999998.0, 123456789.0, 1.5e300, -0.0, 2.5e-07, 100.0, -3.75,
               1 / 3, 2.2250738585072014e-308, 1.7976931348623157e308],  # (tvm-ffi cannot parse denormals)
    "ints": [0, -1, 2**62, 7],
    "text": ["plain", "é", "ü中", "😀 emoji", "tab\there", "new\nline", "ctrl\x01", 'quote"s', "back\\slash", "\x7f"],
    "nested": {"b": [True, False, None], "a": {"z": 1, "A": 2, "_": [[]]}, "": {}},
}


def test_cpp_loader_reproduces_the_manifest_digest(host_runtime, x86_artifact, tmp_path):
    """The loader recomputes Python's json.dumps(sort_keys=True) digest: floats, unicode and nesting included."""
    directory = Path(shutil.copytree(x86_artifact, tmp_path / "artifact"))
    manifest = Manifest.read(directory)
    manifest.build = replace(manifest.build, extra={"tricky": TRICKY, "ключ": "значение", "Zeta": math.pi})
    manifest.write(directory)
    Manifest.read(directory)  # the Python loader accepts it
    proc = _run(host_runtime, directory, "--repeat", "0")
    assert proc.returncode == 0, proc.stderr
    # and a one-character edit of a value is caught
    text = (directory / "manifest.json").read_text()
    (directory / "manifest.json").write_text(text.replace("123456789.0", "123456788.0"))
    assert "was modified after it was built" in _error(_run(host_runtime, directory))


@pytest.mark.parametrize("damage", ["library", "manifest", "missing", "not-json", "version", "arch"])
def test_cpp_loader_refuses_what_the_python_loader_refuses(host_runtime, x86_artifact, tmp_path, damage):
    directory = Path(shutil.copytree(x86_artifact, tmp_path / "artifact"))
    manifest_path = directory / "manifest.json"
    if damage == "library":
        with open(directory / "model.so", "r+b") as handle:
            handle.seek(100)
            byte = handle.read(1)
            handle.seek(100)
            handle.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "manifest":
        manifest_path.write_text(manifest_path.read_text().replace('"x86-host"', '"rk3588"'))
    elif damage == "missing":
        (directory / "model.so").unlink()
    elif damage == "not-json":
        manifest_path.write_text("{ not json")
    else:
        manifest = Manifest.read(directory)
        if damage == "version":
            manifest.format_version = 9
        else:
            manifest.arch = "riscv64"
        manifest.write(directory)
    message = _error(_run(host_runtime, directory))
    if damage == "arch":  # the Python loader's check_arch adds a hint for its own CLI; the cause is the same
        assert message.startswith(f"ArtifactError: {directory} is built for riscv64 (board x86-host); "
                                  "this machine is x86_64")
        return
    cls, python_message = _python_error(directory)
    if damage == "not-json":  # both say so; the parsers' own words differ
        assert message.startswith(f"ArtifactError: {manifest_path} is not valid JSON (corrupt or edited): ")
        return
    assert message == f"{cls.__name__}: {python_message}"


@pytest.mark.parametrize("case", ["shape", "dtype", "unknown", "missing-file", "bad-npy"])
def test_cpp_loader_input_errors_match_the_python_loader(host_runtime, x86_artifact, tiny_input, tmp_path, case):
    value = {"shape": tiny_input[..., :3], "dtype": tiny_input.astype(np.float64)}.get(case, tiny_input)
    path = tmp_path / "x.npy"
    np.save(path, value)
    name = "nope" if case == "unknown" else "input"
    if case == "missing-file":
        path = tmp_path / "absent.npy"
    if case == "bad-npy":
        path.write_bytes(b"not an npy file")
    message = _error(_run(host_runtime, x86_artifact, "--inputs", f"{name}={path}"))
    assert message.startswith("InputError: ")
    if case in ("shape", "dtype", "unknown"):
        cls, python_message = _python_error(x86_artifact, {name: value})
        assert message == f"{cls.__name__}: {python_message}"
    elif case == "missing-file":
        assert message == f"InputError: input file {path} does not exist"
    else:
        assert message.startswith(f"InputError: {path} is not a readable .npy file")


@pytest.mark.parametrize("args, expected", [
    ([], "no artifact given"),
    (["--repeat", "-2"], "--repeat takes a non-negative integer"),
    (["--frobnicate"], "unknown option --frobnicate"),
])
def test_cpp_loader_usage_errors(host_runtime, x86_artifact, args, expected):
    full = args if not args or args[0] != "--repeat" and args[0] != "--frobnicate" else [x86_artifact, *args]
    assert expected in _error(_run(host_runtime, *full))


def test_cpp_loader_runs_a_partitioned_artifact(host_runtime, tiny_cnn, x86_artifact, tiny_input, tmp_path,
                                                two_cpu_board, naive_tuning):
    out = tmp_path / "partitioned"
    api.compile(tiny_cnn, str(two_cpu_board), out=out, tuning=naive_tuning, plan="throughput")
    assert len(Manifest.read(out).stages()) >= 2
    np.save(tmp_path / "x.npy", tiny_input)
    proc = _run(host_runtime, out, "--inputs", tmp_path / "x.npy", "--output-dir", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    np.testing.assert_allclose(np.load(tmp_path / "output_0.npy"), expected["probabilities"], rtol=1e-5, atol=1e-6)


# --- the build itself -----------------------------------------------------------------------------------------


def test_unknown_arch_is_refused():
    with pytest.raises(ConfigError, match="no native runtime recipe for arch mips"):
        native.native_runtime("mips")


def test_missing_cross_compiler_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("TVMEDGE_CACHE", str(tmp_path))
    monkeypatch.setattr(native.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(ToolchainError, match="riscv64-linux-gnu-g.. not found; install the Debian package "
                                             "g..-riscv64-linux-gnu"):
        native.native_runtime("riscv64")
    assert not (tmp_path / "runtime").exists()


def test_old_cmake_is_a_one_line_error(monkeypatch, tmp_path):
    fake = tmp_path / "cmake"
    fake.write_text("#!/bin/sh\necho 'cmake version 3.25.1'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(native.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(native.shutil, "which", lambda name, *a, **k: str(fake) if name == "cmake" else None)
    with pytest.raises(ToolchainError, match=r"needs CMake >= 3.26; install it with: pip install 'cmake>=3.26'"):
        native._cmake()


def test_host_runtime_is_cached_and_described(host_runtime):
    info = host_runtime.info
    assert info["arch"] == "x86_64" and info["tvm"] == TVM_VERSION
    assert native.load_native_runtime("x86_64") == host_runtime
    assert all(path.is_file() for path in host_runtime.files)


# --- RISC-V and aarch64 on emulated boards --------------------------------------------------------------------


@pytest.fixture(scope="module")
def riscv_artifact(tmp_path_factory, tiny_cnn, naive_tuning) -> Path:
    if shutil.which("riscv64-linux-gnu-g++") is None:
        pytest.skip("riscv64-linux-gnu-g++ not installed (Debian package g++-riscv64-linux-gnu)")
    out = tmp_path_factory.mktemp("artifacts") / "tiny-visionfive2"
    api.compile(tiny_cnn, "visionfive2", out=out, tuning=naive_tuning)
    return out


@pytest.mark.emulated
def test_riscv64_and_aarch64_artifacts_give_the_hosts_outputs(riscv_artifact, arm_artifact, x86_artifact,
                                                              tiny_input):
    """The issue's promise: one model, three architectures, the host's outputs (within 1e-4)."""
    if shutil.which("qemu-riscv64") is None:
        pytest.skip("qemu-riscv64 not installed (Debian package qemu-user)")
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    differences = {}
    for artifact, board in ((riscv_artifact, "emu:visionfive2"), (arm_artifact, "emu:rk3588")):
        result = api.run(artifact, board=board, inputs={"input": tiny_input}, repeat=1)
        assert result.emulated is True and result.where == board
        outputs = result.outputs
        differences[board] = float(np.max(np.abs(outputs["probabilities"] - expected["probabilities"])))
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-4, atol=1e-4)
    assert Manifest.read(riscv_artifact).arch == "riscv64"
    print(f"max |board - host|: {differences}")


@pytest.mark.emulated
def test_riscv64_board_refuses_what_the_host_refuses(riscv_artifact, arm_artifact, tiny_input, tmp_path):
    from tvmedge.devices.board import load_board
    from tvmedge.emulator import CppEmulatedBoard, setup_board

    board = setup_board(load_board("visionfive2"))
    assert isinstance(board, CppEmulatedBoard)
    assert board.runtime.info["bytes"]["lib/libtvm_runtime.so"] < 4e6  # CPU runtime only: no GPU, no compiler
    # an aarch64 artifact on the RISC-V board
    with pytest.raises(ArtifactError, match="is built for aarch64 .*this machine is riscv64"):
        board.run_artifact(arm_artifact, {"input": tiny_input})
    # a tampered library
    damaged = Path(shutil.copytree(riscv_artifact, tmp_path / "damaged"))
    with open(damaged / "model.so", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="does not match the sha256 in its manifest"):
        board.run_artifact(damaged, {"input": tiny_input})
    # bad inputs come back as the host's InputError
    with pytest.raises(InputError, match=r"input 'input': expected shape \(1, 3, 32, 32\) float32"):
        board.run_artifact(riscv_artifact, {"input": tiny_input[..., :3]})


@pytest.mark.emulated
def test_cli_run_on_the_riscv64_board_with_a_reference(riscv_artifact, tiny_cnn):
    from click.testing import CliRunner

    from tvmedge.cli.main import cli

    result = CliRunner().invoke(cli, ["run", str(riscv_artifact), "--board", "emu:licheepi4a", "--reference",
                                      str(tiny_cnn), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["emulated"] is True and report["where"] == "emu:licheepi4a"
    assert report["comparison"] and all(row["match"] for row in report["comparison"]), report["comparison"]


@pytest.mark.emulated
def test_certify_on_the_riscv64_board(riscv_artifact):
    """`tvmedge certify --board emu:visionfive2` measures with the C++ loader; emulated runs never certify."""
    from tvmedge.bench.certify import certify

    report = certify(riscv_artifact, board="emu:visionfive2", duration=1.0, min_duration=1.0)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["manifest"]["status"] == "pass"
    assert report["verdict"] == "NOT CERTIFIABLE"
    assert "runs in" in checks["sustained load"]["measured"]


def test_cpp_loader_duration_and_times(host_runtime, x86_artifact):
    proc = _run(host_runtime, x86_artifact, "--duration", "0.2", "--times", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])["stats"]
    assert stats["repeat"] == len(stats["times_ms"]) > 10 and stats["load_s"] > 0
    assert sum(stats["times_ms"]) <= 200 + max(stats["times_ms"]) + 50  # runs stop once 0.2 s have passed
    assert "--duration takes a non-negative number" in _error(_run(host_runtime, x86_artifact, "--duration", "x"))


# --- the C++ RPC server (host build: TVM's wheel runtime) -----------------------------------------------------


@pytest.fixture
def cpp_rpc_server(host_runtime):
    from tvmedge.emulator.rack import free_ports

    (port,) = free_ports(1)
    server = subprocess.Popen([str(host_runtime.rpc_server), "--port", str(port), "--port-end", str(port + 1)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout.readline().strip() == f"listening on 127.0.0.1:{port}"
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cpp_rpc_server_runs_artifacts_for_tvm_clients(cpp_rpc_server, x86_artifact, tiny_input):
    from tvm import rpc

    host, port = cpp_rpc_server.split(":")
    # without a tracker the key is the server's (empty here), as in TVM's server: another one is refused
    with pytest.raises(Exception, match="cannot find server that matches key"):
        rpc.connect(host, int(port), key="someone-else")
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    for _ in range(2):  # sessions one after another, each in a fresh folder
        result = api.run(x86_artifact, {"input": tiny_input}, rpc=cpp_rpc_server, repeat=1)
        np.testing.assert_array_equal(result.outputs["probabilities"], expected["probabilities"])
    assert result.where == f"rpc {cpp_rpc_server}"


def test_cpp_rpc_server_usage_error(host_runtime):
    proc = subprocess.run([str(host_runtime.rpc_server), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ConfigError: unknown option --frobnicate")


@pytest.mark.emulated
def test_rvv_board_runs_vector_code_that_traps_on_a_board_without_v(tiny_cnn, x86_artifact, tiny_input, tmp_path,
                                                                    naive_tuning):
    """bananapi-f3 (RVV 1.0, VLEN 256): its artifact runs on its emulated board (qemu with V) with the host's
    outputs, and the same library traps on the VisionFive 2's CPU (no V), as it would on the real board."""
    out = tmp_path / "tiny-bananapi-f3"
    api.compile(tiny_cnn, "bananapi-f3", out=out, tuning=naive_tuning)
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    outputs = api.run(out, {"input": tiny_input}, board="emu:bananapi-f3").outputs
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ArtifactError, match=r"killed by signal 4 \(SIGILL: the code uses an instruction this board's"):
        api.run(out, {"input": tiny_input}, board="emu:visionfive2")
