"""Emulated boards (:mod:`tvmedge.emulator`): fast unit tests that need no board root, and ``emulated``
tests that build (once, cached) and use the aarch64 root.

The basename is unique on purpose: ``tests/`` has no ``__init__.py`` files (rootdir-based discovery).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tvmedge.emulator import python_board as emulator
from tvmedge.emulator.common import board_error
from tvmedge.devices.board import Board, load_board
from tvmedge.emulator import PythonEmulatedBoard, board_root, load_emulated_board, setup_board
from tvmedge.errors import ArtifactError, ConfigError, InputError, ToolchainError, TvmedgeError
from tvmedge.versions import TVM_FFI_VERSION, TVM_VERSION

AARCH64_TARGET = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76", "mattr": ["+neon"]}


def _board(arch="aarch64", name="test-board", target=None):
    target = target or {
        "aarch64": AARCH64_TARGET,
        "riscv64": {"kind": "llvm", "mtriple": "riscv64-linux-gnu", "mcpu": "generic-rv64"},
        "x86_64": {"kind": "llvm"},
    }[arch]
    return Board(name=name, arch=arch, target=target)


def _fake_root(root: Path, **overrides) -> dict:
    """A root with the files and stamp ``setup_board`` checks (nothing runnable in it)."""
    for rel in ("sysroot/usr/bin/python3.11", "site/tvm/lib/libtvm_runtime.so", "site/numpy/__init__.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    info = {
        "layout": emulator.LAYOUT_VERSION,
        "arch": "aarch64",
        "wheels": {"apache-tvm": TVM_VERSION, "apache-tvm-ffi": TVM_FFI_VERSION},
        "qemu_cpus": ["cortex-a53", "cortex-a76", "max"],
        "size_mb": 1.0,
        "setup_s": 0.0,
    }
    info.update(overrides)
    (root / "ready.json").write_text(json.dumps(info))
    return info


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TVMEDGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def qemu_present(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(emulator.shutil, "which",
                        lambda name, *a, **k: f"/usr/bin/{name}" if name.startswith("qemu-") else real(name, *a, **k))


# --- paths ----------------------------------------------------------------------------------------------------


def test_board_root_honours_tvmedge_cache(cache):
    assert board_root("aarch64") == cache / "boards" / "aarch64"
    assert board_root("riscv64") == cache / "boards" / "riscv64"


def test_board_root_defaults_to_home_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("TVMEDGE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert board_root("aarch64") == tmp_path / ".cache" / "tvmedge" / "boards" / "aarch64"


def test_all_aarch64_boards_share_one_root(cache):
    assert board_root(load_board("rk3588").arch) == board_root(_board("aarch64", name="rpi5").arch)


# --- refusals -------------------------------------------------------------------------------------------------


def test_riscv64_board_uses_the_cpp_loader_route(cache, monkeypatch):
    """riscv64 has no TVM wheel: its emulated board is the cross-built runtime + C++ loader, not a Python root."""
    from tvmedge.emulator import cpp_board

    monkeypatch.setattr(cpp_board.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(ToolchainError, match="qemu-riscv64 not found"):
        setup_board(_board("riscv64", name="visionfive2"))
    assert load_emulated_board(load_board("visionfive2")) is None  # nothing built, nothing cached
    assert not (cache / "boards" / "riscv64").exists()


def test_x86_board_needs_no_emulation(cache):
    with pytest.raises(ConfigError, match="natively"):
        setup_board(_board("x86_64", name="x86-host"))


def test_missing_qemu_is_a_toolchain_error(cache, monkeypatch):
    monkeypatch.setattr(emulator.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(ToolchainError, match="qemu-aarch64 not found; install the Debian package qemu-user"):
        setup_board(load_board("rk3588"))
    assert not (cache / "boards").exists()


# --- the cached root ------------------------------------------------------------------------------------------


def test_valid_stamp_returns_at_once_without_running_anything(cache, qemu_present, monkeypatch):
    _fake_root(board_root("aarch64"))

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"setup_board ran a command for a ready root: {args}")

    monkeypatch.setattr(emulator.subprocess, "run", no_subprocess)
    emu = setup_board(load_board("rk3588"))
    assert isinstance(emu, PythonEmulatedBoard)
    assert emu.root == board_root("aarch64") and emu.arch == "aarch64" and emu.board.name == "rk3588"
    assert emu.cpu == "cortex-a76"  # the board's mcpu, as qemu knows it
    assert load_emulated_board(load_board("rk3588")) == emu


@pytest.mark.parametrize("override", [{"layout": -1}, {"arch": "riscv64"}, {"wheels": {"apache-tvm": "0.26.0"}}])
def test_stale_or_foreign_stamp_is_not_ready(cache, override):
    _fake_root(board_root("aarch64"), **override)
    assert load_emulated_board(load_board("rk3588")) is None


def test_stamp_without_its_files_is_not_ready(cache):
    root = board_root("aarch64")
    _fake_root(root)
    (root / "site/tvm/lib/libtvm_runtime.so").unlink()
    assert load_emulated_board(load_board("rk3588")) is None


def test_unknown_mcpu_uses_qemus_default_cpu(cache, qemu_present):
    _fake_root(board_root("aarch64"))
    board = _board("aarch64", target=dict(AARCH64_TARGET, mcpu="cortex-a55"))  # qemu 7.2 has no a55 model
    assert setup_board(board).cpu is None


def test_failed_setup_step_names_the_step(cache, qemu_present, monkeypatch):
    def fail(command, **kwargs):
        return subprocess.CompletedProcess(command, 100, "", "Reading package lists...\nE: Unable to locate package x\n")

    monkeypatch.setattr(emulator.subprocess, "run", fail)
    monkeypatch.setattr(emulator.os, "geteuid", lambda: 1000)  # no root: no dpkg --add-architecture attempt
    with pytest.raises(ToolchainError) as info:
        setup_board(load_board("rk3588"))
    message = str(info.value)
    assert "\n" not in message
    assert "dpkg --print-foreign-architectures" in message and message.endswith("E: Unable to locate package x")
    boards = cache / "boards"
    assert not board_root("aarch64").exists()
    assert [p.name for p in boards.iterdir() if p.is_dir()] == []  # no half root, no temp dir left


# --- command lines, stage, errors -----------------------------------------------------------------------------


def test_python_command(tmp_path):
    emu = PythonEmulatedBoard(board=load_board("rk3588"), root=tmp_path, arch="aarch64", cpu="cortex-a76")
    command = emu.python_command(["-c", "print(1)"], {"FOO": "bar"})
    assert command[:3] == ["qemu-aarch64", "-L", str(tmp_path / "sysroot")]
    assert command[-3:] == [str(tmp_path / "sysroot/usr/bin/python3.11"), "-c", "print(1)"]
    guest = {command[i + 1] for i, arg in enumerate(command) if arg == "-E"}
    assert f"PYTHONPATH={tmp_path / 'site'}:{tmp_path / 'stage'}" in guest
    assert {"TVM_USE_RUNTIME_LIB=1", "FOO=bar"} <= guest
    assert ["-cpu", "cortex-a76"] == command[3:5]
    assert "LD_LIBRARY_PATH" in {command[i + 1] for i, arg in enumerate(command) if arg == "-U"}


def test_stage_holds_only_the_board_side_of_tvmedge(tmp_path):
    import tvmedge

    emu = PythonEmulatedBoard(board=load_board("rk3588"), root=tmp_path, arch="aarch64")
    emu.refresh_stage()
    staged = tmp_path / "stage" / "tvmedge"
    assert (staged / "errors.py").read_bytes() == (Path(tvmedge.__file__).parent / "errors.py").read_bytes()
    assert (staged / "__init__.py").is_file()
    top = {p.name for p in staged.iterdir()}
    assert top <= {"__init__.py", "errors.py", "runtime"}
    assert not (staged / "devices").exists() and not (staged / "build").exists()
    # stale files vanish, unchanged ones are not rewritten
    (staged / "runtime").mkdir(exist_ok=True)
    (staged / "runtime" / "gone.py").write_text("")
    before = (staged / "errors.py").stat().st_mtime_ns
    emu.refresh_stage()
    assert not (staged / "runtime" / "gone.py").exists()
    assert (staged / "errors.py").stat().st_mtime_ns == before


@pytest.mark.parametrize("stderr, cls, message", [
    ("Error: input 'x': expected shape (1, 3) float32, got (1, 2) float32\n", TvmedgeError,
     "input 'x': expected shape (1, 3) float32, got (1, 2) float32"),
    ("Error: InputError: bad input\n", InputError, "bad input"),
    ("warning: something\nError: ArtifactError: out/model.so does not match\n", ArtifactError,
     "out/model.so does not match"),
])
def test_board_side_error_is_reraised(stderr, cls, message):
    error = board_error("rk3588", subprocess.CompletedProcess([], 1, "", stderr))
    assert type(error) is cls and str(error) == message


def test_board_side_crash_is_an_artifact_error():
    error = board_error("rk3588", subprocess.CompletedProcess([], -11, "", "Segmentation fault\n"))
    assert isinstance(error, ArtifactError) and "signal 11" in str(error) and "Segmentation fault" in str(error)


def test_run_artifact_needs_an_artifact_dir(tmp_path):
    emu = PythonEmulatedBoard(board=load_board("rk3588"), root=tmp_path, arch="aarch64")
    with pytest.raises(ArtifactError, match="does not exist"):
        emu.run_artifact(tmp_path / "nope", {"x": np.zeros(1)})


# --- on the emulated board (builds the cached root once per machine: ~15 s with a local mirror) ---------------


@pytest.fixture(scope="module")
def emu():
    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 not installed (Debian package qemu-user)")
    return setup_board(load_board("rk3588"))


@pytest.mark.emulated
def test_emulated_board_runs_python_and_tvm_runtime_only(emu):
    info = json.loads((emu.root / "ready.json").read_text())
    assert info["wheels"]["apache-tvm"] == TVM_VERSION
    assert not (emu.site / "tvm/lib/libtvm_compiler.so").exists()
    assert (emu.site / "tvm/lib/libtvm_runtime.so").is_file()
    script = ("import json, platform, numpy, tvm, tvm.runtime.vm, tvm.base; "
              "print(json.dumps({'machine': platform.machine(), 'tvm': tvm.__version__, 'numpy': numpy.__version__, "
              "'compiler': 'tvm_compiler' in tvm.base._LOADED_LIBS, 'py': platform.python_version()}))")
    proc = emu.run_python(["-c", script], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"machine": "aarch64", "tvm": TVM_VERSION, "numpy": info["wheels"]["numpy"],
                   "compiler": False, "py": info["python"]}


@pytest.mark.emulated
def test_emulated_board_runs_a_cross_compiled_module(emu, tmp_path):
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ not installed (Debian package g++-aarch64-linux-gnu)")
    tvm = pytest.importorskip("tvm")
    from tvm.script import relax as R

    @tvm.script.ir_module
    class Module:
        @R.function
        def main(x: R.Tensor((2, 3), "float32"), y: R.Tensor((2, 3), "float32")):
            with R.dataflow():
                out = R.nn.relu(R.add(R.multiply(x, y), x))
                R.output(out)
            return out

    lib_path = tmp_path / "model.so"
    ex = tvm.compile(Module, target=tvm.target.Target(AARCH64_TARGET))
    ex.export_library(str(lib_path), fcompile=tvm.support.cc.cross_compiler("aarch64-linux-gnu-g++"))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3)).astype("float32"), rng.standard_normal((2, 3)).astype("float32")
    np.savez(tmp_path / "in.npz", x=x, y=y)
    script = (
        "import sys, numpy as np, tvm, tvm.runtime.vm\n"
        "lib = tvm.runtime.load_module(sys.argv[1])\n"
        "vm = tvm.runtime.vm.VirtualMachine(lib, tvm.cpu())\n"
        "d = np.load(sys.argv[2])\n"
        "np.save(sys.argv[3], vm['main'](tvm.runtime.tensor(d['x']), tvm.runtime.tensor(d['y'])).numpy())\n"
    )
    proc = emu.run_python(["-c", script, str(lib_path), str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), np.maximum(x * y + x, 0), rtol=1e-6, atol=1e-6)


@pytest.mark.emulated
def test_run_artifact_on_the_emulated_board(emu, arm_artifact, x86_artifact, tiny_input):
    """The ARM artifact, run by the board-side runtime under qemu, gives the x86 artifact's outputs."""
    from tvmedge import runtime

    host = runtime.load(x86_artifact)
    name = host.inputs[0].name
    expected = host.run({name: tiny_input})
    outputs, stats = emu.run_artifact(arm_artifact, {name: tiny_input}, repeat=2)
    assert outputs.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(outputs[key], expected[key], rtol=1e-4, atol=1e-5)
    assert stats.repeat == 2 and stats.first_ms > 0
    # a board-side error comes back as a tvmedge error with the board's message
    with pytest.raises(TvmedgeError, match=f"'{name}'"):
        emu.run_artifact(arm_artifact, {name: tiny_input[..., :3]})
