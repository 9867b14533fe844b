"""Runtime bundles (:mod:`tvmedge.deploy.bundle`) and deploying to boards (:mod:`tvmedge.deploy.ship`).

The ``emulated`` tests prove the bundles alone run artifacts: the aarch64 one with nothing but the board's own
python3 (the emulated board's Debian python, no site folder of the board root on its path), the riscv64 one
with nothing but the bundle and the toolchain's libc/libstdc++.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tvmedge import api, runtime
from tvmedge.cli.main import cli
from tvmedge.deploy import ship
from tvmedge.deploy.bundle import build_bundle, sha256_sums
from tvmedge.devices.board import load_board
from tvmedge.errors import ArtifactError, ConfigError, DeployError


def _unpack(path: Path, into: Path) -> Path:
    with tarfile.open(path) as archive:
        names = archive.getnames()
        archive.extractall(into)
    tops = {name.split("/")[0] for name in names}
    assert len(tops) == 1, tops  # one top folder: unpacking never litters the current directory
    return into / tops.pop()


def _check_sums(top: Path) -> dict:
    sums = sha256_sums((top / "SHA256SUMS").read_text())
    proc = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=top, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (python writes __pycache__/ next to the modules it imports: bytecode of the shipped sources, not shipped)
    files = {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files == set(sums) | {"SHA256SUMS"}
    return sums


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Deployments to emulated boards land in a private cache (the board roots stay the shared ones)."""
    return tmp_path_factory.mktemp("devices")


@pytest.fixture
def private_devices(cache, monkeypatch):
    monkeypatch.setattr(ship, "emulated_home", lambda name: cache / name)


# --- refusals (no board needed) -------------------------------------------------------------------------------


def test_bundle_refuses_an_unknown_suffix(tmp_path):
    with pytest.raises(ConfigError, match=r"must end in .tar.gz, .tgz or .tar.xz"):
        build_bundle(load_board("visionfive2"), tmp_path / "runtime.zip")


def test_no_python_bundle_for_riscv64(tmp_path):
    with pytest.raises(ConfigError, match="no riscv64 TVM wheel, so no Python runtime bundle; use --loader cpp"):
        build_bundle(load_board("visionfive2"), tmp_path / "r.tar.gz", loader="python")
    result = CliRunner().invoke(cli, ["bundle", "--board", "visionfive2", "--loader", "python",
                                      "-o", str(tmp_path / "r.tar.gz")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and result.output.startswith("Error: ")


def test_deploy_refuses_a_damaged_artifact_before_copying(artifact_copy, tmp_path):
    (artifact_copy / "model.so").write_bytes(b"\0" + (artifact_copy / "model.so").read_bytes()[1:])
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        ship.deploy(artifact_copy, str(tmp_path / "board"))
    assert not (tmp_path / "board").exists()


def test_deploy_refuses_an_unwritable_destination_before_building(x86_artifact, monkeypatch):
    monkeypatch.setattr(ship, "bundle_contents", lambda *a, **k: pytest.fail("built a bundle for nowhere"))
    with pytest.raises(DeployError, match="cannot create /proc/tvmedge-nope"):
        ship.deploy(x86_artifact, "/proc/tvmedge-nope/board")


def test_deploy_refuses_a_board_of_another_arch(x86_artifact, tmp_path):
    with pytest.raises(ConfigError, match="built for x86_64, board visionfive2 is riscv64"):
        ship.deploy(x86_artifact, "emu:visionfive2")


@pytest.mark.parametrize("spec, kind, host, path", [
    ("pi@rpi5:/opt/models", "ssh", "pi@rpi5", "/opt/models"),
    ("board.local:models", "ssh", "board.local", "models"),
    ("emu:rk3588", "emu", "", None),
    ("./some/dir", "dir", "", None),
])
def test_destinations(spec, kind, host, path):
    dest = ship.parse_destination(spec)
    assert dest.kind == kind and dest.host == host
    if path:
        assert dest.path == path


def test_cli_deploy_needs_exactly_one_destination(x86_artifact):
    result = CliRunner().invoke(cli, ["deploy", str(x86_artifact)])
    assert result.exit_code == 1 and "give one destination" in result.output and result.output.count("\n") == 1


def test_cli_deploy_former_options_still_work_with_a_warning(x86_artifact):
    # issue 12: `--board emu:NAME` (where to) next to `--as-board NAME` (whose runtime) read alike; they are now
    # --to emu:NAME and --for-board NAME, the old spellings kept as deprecated aliases.
    result = CliRunner().invoke(cli, ["deploy", str(x86_artifact), "--board", "emu:rk3588", "--as-board", "rpi5"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Warning: deploy --board is deprecated; use --to emu:NAME",
        "Warning: deploy --as-board is deprecated; use --for-board",
        f"Error: artifact {x86_artifact} is built for x86_64, board rk3588 is aarch64"]
    result = CliRunner().invoke(cli, ["deploy", str(x86_artifact), "--board", "rk3588"])
    assert result.exit_code == 1 and result.stderr.splitlines() == [
        "Error: --board 'rk3588' must look like emu:NAME (e.g. emu:rk3588); use --to for directories and SSH"]


# --- the host's own bundle (x86_64: both kinds, no emulation) -------------------------------------------------


@pytest.mark.parametrize("loader", ["python", "cpp"])
def test_deploy_to_a_directory_verifies_and_runs(x86_artifact, tiny_input, tmp_path, loader):
    dest = tmp_path / "board"
    result = ship.deploy(x86_artifact, str(dest), loader=loader, check=True)
    assert result.verified and result.kind == loader and result.board == "x86-host"
    top = dest / "tvmedge-runtime-x86-host"
    sums = _check_sums(dest)
    assert "tiny-x86/model.so" in sums and "tvmedge-runtime-x86-host/run.sh" in sums
    assert not list(top.rglob("libtvm_compiler.so"))
    assert result.check["outputs"]["probabilities"]["shape"] == [1, 10]
    # the shipped runtime gives the host's outputs
    np.save(tmp_path / "x.npy", tiny_input)
    args = ["--inputs", f"input={tmp_path / 'x.npy'}"]
    args += ["--output", str(tmp_path / "y.npz")] if loader == "python" else ["--output-dir", str(tmp_path)]
    proc = subprocess.run(["sh", str(top / "run.sh"), str(dest / "tiny-x86"), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "y.npz")["probabilities"] if loader == "python" else np.load(tmp_path / "output_0.npy")
    np.testing.assert_allclose(got, runtime.load(x86_artifact).run({"input": tiny_input})["probabilities"],
                               rtol=1e-6, atol=1e-7)


def test_redeploy_replaces_the_shipped_folders_only(x86_artifact, tmp_path):
    dest = tmp_path / "board"
    ship.deploy(x86_artifact, str(dest), loader="cpp")
    stale = dest / "tvmedge-runtime-x86-host" / "bin" / "old-tool"
    stale.write_text("from an older runtime")
    other = dest / "another-model" / "manifest.json"
    other.parent.mkdir()
    other.write_text("{}")
    again = ship.deploy(x86_artifact, str(dest), loader="cpp")
    assert again.verified and not stale.exists() and other.read_text() == "{}"
    _check_sums_ignoring(dest, {"another-model/manifest.json"})


def _check_sums_ignoring(top: Path, extra: set) -> None:
    sums = sha256_sums((top / "SHA256SUMS").read_text())
    files = {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files == set(sums) | {"SHA256SUMS"} | extra


def test_deploy_detects_a_corrupted_copy(x86_artifact, tmp_path, monkeypatch):
    real = ship._transfer

    def flaky_link(stage, dest):  # the copy arrives with one byte flipped, as over a bad link or a bad card
        real(stage, dest)
        damaged = Path(dest.path) / "tiny-x86" / "model.so"
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0x01
        damaged.write_bytes(bytes(data))

    monkeypatch.setattr(ship, "_transfer", flaky_link)
    with pytest.raises(DeployError, match=r"tiny-x86/model.so arrived corrupted at .* \(sha256 differs\)"):
        ship.deploy(x86_artifact, str(tmp_path / "board"), loader="cpp")
    result = CliRunner().invoke(cli, ["deploy", str(x86_artifact), "--to", str(tmp_path / "b2"), "--loader", "cpp",
                                      "--json"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "arrived corrupted" in result.output
    assert result.output.count("\n") == 1


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """``ssh`` and ``rsync`` stand-ins on PATH: the "remote" board is a local folder (commands run locally)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "ssh.log"
    (bin_dir / "ssh").write_text(f"#!/bin/sh\n# ssh [-o X] HOST COMMAND\nwhile [ \"$1\" = -o ]; do shift 2; done\n[ \"$1\" = -- ] && shift\n"
                                 f"echo \"$@\" >> {log}\nshift\n"
                                 "case \"$1\" in *'command -v rsync'*) [ -n \"$NO_REMOTE_RSYNC\" ] && exit 1;; esac\n"
                                 "exec sh -c \"$1\"\n")
    (bin_dir / "scp").write_text("#!/bin/sh\n# scp -q -r -o X SRC... HOST:DEST/\n"
                                 "echo scp >> " + str(log) + "\n"
                                 "shift 4; for a; do last=$a; done; dest=${last#*:}\n"
                                 "while [ $# -gt 1 ]; do cp -r \"$1\" \"$dest\"; shift; done\n")
    (bin_dir / "rsync").write_text("#!/bin/sh\n# rsync -a --delete --compress -e CMD SRC HOST:DEST\n"
                                   "for a; do src=$dst; dst=$a; done\n"
                                   "dest=${dst#*:}\n"
                                   "if [ -d \"$src\" ]; then rm -rf \"$dest\"; mkdir -p \"$dest\" && cp -r \"$src\". \"$dest\";\n"
                                   "else cp \"$src\" \"$dest\"; fi\n"
                                   "if [ -n \"$CORRUPT\" ] && [ -f \"$dest/$CORRUPT\" ]; then printf x >> \"$dest/$CORRUPT\"; fi\n"
                                   "exit 0\n")
    for name in ("ssh", "rsync", "scp"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def test_deploy_over_ssh_verifies_with_sha256sum_on_the_board(x86_artifact, tmp_path, fake_ssh, monkeypatch):
    remote = tmp_path / "remote"
    result = ship.deploy(x86_artifact, f"pi@board:{remote}", loader="cpp", check=True)
    commands = fake_ssh.read_text()
    assert f"cd {remote} && sha256sum -c --quiet SHA256SUMS" in commands
    assert result.run_command.startswith("ssh pi@board 'cd ") and result.check["stats"]["repeat"] == 1
    monkeypatch.setenv("CORRUPT", "manifest.json")  # the artifact's, as it lands
    with pytest.raises(DeployError, match=r"arrived corrupted at pi@board:.* tiny-x86/manifest.json"):
        ship.deploy(x86_artifact, f"pi@board:{tmp_path / 'remote2'}", loader="cpp")


def test_deploy_over_ssh_uses_scp_when_the_board_has_no_rsync(x86_artifact, tmp_path, fake_ssh, monkeypatch):
    monkeypatch.setenv("NO_REMOTE_RSYNC", "1")
    remote = tmp_path / "remote"
    result = ship.deploy(x86_artifact, f"pi@board:{remote}", loader="cpp", check=True)
    assert result.verified and "scp" in fake_ssh.read_text().split("\n")
    assert (remote / "tiny-x86" / "model.so").is_file() and result.check["stats"]["repeat"] == 1


# --- issue 19, finding 5: names and paths that reach a shell ---------------------------------------------------


@pytest.mark.parametrize("name", ["../../escape", "a;touch PWNED", "it's", "a/b", "..", "-rf", ""])
def test_board_names_that_could_escape_a_folder_or_a_shell_are_refused(tmp_path, name):
    # `../` in a board's name made deploy write runtime files outside staging and destination; `;` ran on the board
    path = tmp_path / "board.yaml"
    path.write_text(f"name: {json.dumps(name)}\narch: x86_64\ntarget: {{kind: llvm, num-cores: 1}}\n")
    with pytest.raises(ConfigError, match="key 'name'"):
        load_board(str(path))


@pytest.mark.parametrize("spec, message", [
    ("emu:../../x", "is not a board name"),
    ("-oProxyCommand=touch PWNED:/tmp/x", "is not a host name"),
    ("pi@board:/tmp/x;touch PWNED", "may hold only letters"),
    ("pi@board:/tmp/it's", "may hold only letters"),
])
def test_destinations_that_could_reach_a_shell_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        ship.parse_destination(spec)


def test_printed_run_command_survives_a_quote_in_the_destination(x86_artifact, tmp_path):
    # the "run it there" line nested a quoted path inside single quotes: a "'" in --to ran commands when pasted
    dest = tmp_path / "it's here; touch PWNED"
    result = ship.deploy(x86_artifact, str(dest), runtime=False)
    words = shlex.split(result.run_command)
    assert words == ["cd", str(dest), "&&", "<runtime>/tvmedge-runtime-x86-host/run.sh", "./tiny-x86", "--json"]
    subprocess.run(["sh", "-c", result.run_command.replace("<runtime>", "/nonexistent")], cwd=tmp_path,
                   capture_output=True)
    assert not (tmp_path / "PWNED").exists()


def test_ssh_run_command_is_one_quoted_word_for_the_board(x86_artifact, tmp_path, fake_ssh):
    remote = tmp_path / "remote"
    result = ship.deploy(x86_artifact, f"pi@board:{remote}", runtime=False)
    ssh, host, command = shlex.split(result.run_command)
    assert (ssh, host) == ("ssh", "pi@board")
    assert shlex.split(command) == ["cd", str(remote), "&&", "<runtime>/tvmedge-runtime-x86-host/run.sh",
                                    "./tiny-x86", "--json"]
    odd = Path(shutil.copytree(x86_artifact, tmp_path / "a;b"))
    with pytest.raises(ConfigError, match="artifact folder name 'a;b' may hold only"):
        ship.deploy(odd, f"pi@board:{remote}", runtime=False)


# --- emulated boards: the bundles alone run artifacts ---------------------------------------------------------


@pytest.mark.emulated
def test_python_bundle_runs_with_nothing_but_the_boards_python(arm_artifact, x86_artifact, tiny_input, tmp_path):
    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 not installed")
    from tvmedge.emulator import setup_board

    board = load_board("rk3588")
    bundle = build_bundle(board, tmp_path / "runtime.tar.gz")
    info = bundle.info
    assert info["kind"] == "python" and info["arch"] == "aarch64"
    top = _unpack(bundle.path, tmp_path / "unpacked")
    sums = _check_sums(top)
    assert not [name for name in sums if "libtvm_compiler" in name]
    assert {"site/tvm/lib/libtvm_runtime.so", "site/tvm_ffi/lib/libtvm_ffi.so", "site/tvmedge/runtime/loader.py",
            "run.sh", "BUNDLE.json"} <= set(sums)
    assert not [name for name in sums if name.startswith(("site/tvm/relax/", "site/tvm/s_tir/", "site/tvm/topi/"))]
    assert json.loads((top / "BUNDLE.json").read_text())["board"] == "rk3588"
    # the measured size (README): well under the installed wheels, compressed
    assert info["compressed_bytes"] < 20e6 and info["uncompressed_bytes"] < 70e6

    # Run it the way the board would: its own python3 (the emulated board's Debian python, with no site folder
    # of the board root on its path) through the bundle's run.sh.
    emu = setup_board(board)
    np.save(tmp_path / "x.npy", tiny_input)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "PYTHON": f"qemu-aarch64 -L {emu.sysroot} {emu.python}"}
    proc = subprocess.run(["sh", str(top / "run.sh"), str(arm_artifact), "--inputs", f"input={tmp_path / 'x.npy'}",
                           "--output", str(tmp_path / "y.npz"), "--json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["probabilities"], expected["probabilities"],
                               rtol=1e-4, atol=1e-5)
    # and without the bundle, the board's python has no TVM (the bundle is what made it work)
    bare = subprocess.run(["qemu-aarch64", "-L", str(emu.sysroot), str(emu.python), "-c", "import tvm"],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, cwd=tmp_path, timeout=300)
    assert bare.returncode != 0 and "No module named 'tvm'" in bare.stderr


@pytest.mark.emulated
def test_cpp_bundle_for_riscv64_is_small_and_runs(tiny_cnn, x86_artifact, tiny_input, tmp_path, naive_tuning):
    if shutil.which("qemu-riscv64") is None or shutil.which("riscv64-linux-gnu-g++") is None:
        pytest.skip("qemu-riscv64 or riscv64-linux-gnu-g++ not installed")
    bundle = build_bundle(load_board("visionfive2"), tmp_path / "runtime.tar.gz")
    assert bundle.info["kind"] == "cpp"
    assert bundle.info["compressed_bytes"] <= 5e6  # the goal for a C++-loader bundle
    top = _unpack(bundle.path, tmp_path / "unpacked")
    assert set(_check_sums(top)) == {"bin/tvmedge-run", "bin/tvmedge-rpc-server", "lib/libtvm_runtime.so",
                                     "lib/libtvm_ffi.so", "run.sh", "BUNDLE.json"}
    artifact = tmp_path / "tiny-riscv"
    api.compile(tiny_cnn, "visionfive2", out=artifact, tuning=naive_tuning)
    np.save(tmp_path / "x.npy", tiny_input)
    proc = subprocess.run(["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu", str(top / "bin" / "tvmedge-run"),
                           str(artifact), "--inputs", f"input={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    np.testing.assert_allclose(np.load(tmp_path / "output_0.npy"), expected["probabilities"], rtol=1e-4, atol=1e-5)


@pytest.mark.emulated
@pytest.mark.parametrize("board", ["rk3588", "visionfive2"])
def test_deploy_to_an_emulated_board(board, arm_artifact, tiny_cnn, tmp_path, private_devices, cache, naive_tuning):
    if board == "visionfive2":
        artifact = tmp_path / "tiny-riscv"
        api.compile(tiny_cnn, "visionfive2", out=artifact, tuning=naive_tuning)
    else:
        artifact = arm_artifact
    result = CliRunner().invoke(cli, ["deploy", str(artifact), "--to", f"emu:{board}", "--check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["verified"] is True and report["check"]["outputs"]["probabilities"]["shape"] == [1, 10]
    assert report["destination"].startswith(f"emu:{board}") and Path(report["artifact"]).parent == cache / board
    assert f"--board emu:{board}" in report["host_command"]
    # re-deploying only the artifact keeps the runtime that is there
    again = ship.deploy(artifact, f"emu:{board}", runtime=False)
    assert again.runtime is None and again.files == len(list(Path(artifact).iterdir())) + 0


@pytest.mark.emulated
def test_python_bundle_serves_tvm_rpc(arm_artifact, x86_artifact, tiny_input, tmp_path):
    """With the bundle alone a board can also be a TVM RPC server (for `run --rpc`, tuning through a tracker)."""
    import time

    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 not installed")
    from tvmedge.emulator import setup_board
    from tvmedge.emulator.rack import free_ports

    emu = setup_board(load_board("rk3588"))
    top = _unpack(build_bundle(load_board("rk3588"), tmp_path / "runtime.tar.gz").path, tmp_path / "unpacked")
    (port,) = free_ports(1)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(top / "site"),
           "TVM_USE_RUNTIME_LIB": "1"}
    server = subprocess.Popen(["qemu-aarch64", "-L", str(emu.sysroot), str(emu.python), "-m",
                               "tvmedge.runtime.rpc_server", "--port", str(port), "--port-end", str(port + 1)],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout.readline().startswith(f"listening on 127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                result = api.run(arm_artifact, {"input": tiny_input}, rpc=f"127.0.0.1:{port}")
                break
            except Exception:  # noqa: BLE001 - the server may still be starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    expected = runtime.load(x86_artifact).run({"input": tiny_input})
    np.testing.assert_allclose(result.outputs["probabilities"], expected["probabilities"], rtol=1e-4, atol=1e-5)
    assert result.where == f"rpc 127.0.0.1:{port}"


def test_python_bundle_refuses_another_python_in_one_line(tmp_path):
    bundle = build_bundle(load_board("x86-host"), tmp_path / "runtime.tar.gz", loader="python")
    python = bundle.info["python"]
    assert python.count(".") == 1
    top = _unpack(bundle.path, tmp_path / "unpacked")
    fake = tmp_path / "python3.99"
    fake.write_text("#!/bin/sh\nexit 1\n")  # answers "no" to the version check, as another Python would
    fake.chmod(0o755)
    proc = subprocess.run(["sh", str(top / "run.sh"), "artifact"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "PYTHON": str(fake)}, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"Error: this bundle holds CPython {python} wheels")
