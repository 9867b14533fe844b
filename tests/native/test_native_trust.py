"""The C++ loader verifies signed artifacts and pins versions like the Python loader (issue 19).

``tvmedge-run --trust KEY`` (Monocypher's Ed25519, cross-built with the loader) accepts what the Python loader
accepts and refuses what it refuses, with the same one-line messages: unsigned, signed by another key, a forged
library with every hash recomputed, an altered signature; and an artifact built with another TVM unless
``--allow-version-mismatch``. On this host and on the emulated RISC-V board (qemu).
"""

import base64
import json
import os
import shutil
import subprocess

import pytest

from tvmedge import api, runtime
from tvmedge.native import builder as native
from tvmedge.compiler.signing import generate_keys, generate_secret
from tvmedge.errors import ArtifactError
from tvmedge.runtime.manifest import Manifest, sha256_file


@pytest.fixture(scope="module")
def host_runtime():
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    return native.native_runtime("x86_64")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return generate_keys(root / "builder"), generate_keys(root / "other")


@pytest.fixture(scope="module")
def signed(tmp_path_factory, tiny_cnn, keys, naive_tuning):
    out = tmp_path_factory.mktemp("signed") / "tiny"
    api.compile(tiny_cnn, "x86-host", out=out, tuning=naive_tuning, sign=keys[0]["private"])
    return out


def _run(rt, *args, env=None):
    return subprocess.run([str(rt.loader), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def _error(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    return lines[0].removeprefix("Error: ArtifactError: ").removeprefix("Error: ConfigError: ")


def _python_error(directory, **kwargs) -> str:
    with pytest.raises(Exception) as err:
        runtime.load(directory, **kwargs)
    return str(err.value)


def _rewrite(folder, change):
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    data["digest"] = Manifest._digest_of(data)
    (folder / "manifest.json").write_text(json.dumps(data))


def _forge(folder):
    with open(folder / "model.so", "ab") as handle:
        handle.write(b"\0planted\0")
    _rewrite(folder, lambda d: d["files"]["model.so"].update(sha256=sha256_file(folder / "model.so")))


def _alter_signature(folder):
    sig = json.loads((folder / "manifest.sig").read_text())
    raw = bytearray(base64.b64decode(sig["signature"]))
    raw[5] ^= 0x40
    sig["signature"] = base64.b64encode(bytes(raw)).decode()
    (folder / "manifest.sig").write_text(json.dumps(sig))


def test_cpp_loader_runs_a_signed_artifact_with_its_key(host_runtime, signed, keys):
    ok = _run(host_runtime, signed, "--trust", keys[0]["public"], "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1])["stats"]["loader"] == "c++"
    folder = os.path.dirname(keys[0]["public"])
    shutil.copy(keys[0]["public"], os.path.join(os.path.dirname(folder), "trusted.pem"))
    env = _run(host_runtime, signed, "--json", env={"TVMEDGE_TRUSTED_KEYS": keys[0]["public"]})
    assert env.returncode == 0, env.stderr


@pytest.mark.parametrize("damage", ["unsigned", "other key", "forged", "altered signature"])
def test_cpp_loader_refuses_what_the_python_loader_refuses(host_runtime, signed, keys, x86_artifact, tmp_path, damage):
    folder = shutil.copytree(x86_artifact if damage == "unsigned" else signed, tmp_path / "artifact")
    trust = keys[1]["public"] if damage == "other key" else keys[0]["public"]
    if damage == "forged":
        _forge(folder)
        assert _run(host_runtime, folder).returncode == 0  # integrity alone: the forgery runs (the attack)
    if damage == "altered signature":
        _alter_signature(folder)
    cpp = _error(_run(host_runtime, folder, "--trust", trust))
    python = _python_error(folder, trust=trust)
    assert cpp == python, (cpp, python)
    assert "refusing to load" in cpp


def test_cpp_loader_pins_the_tvm_version(host_runtime, signed, tmp_path):
    folder = shutil.copytree(signed, tmp_path / "artifact")
    _rewrite(folder, lambda d: d.update(tvm_version="0.19.0"))
    cpp = _error(_run(host_runtime, folder))
    assert cpp == _python_error(folder)
    assert cpp.startswith(f"{folder} was built with TVM 0.19.0, this runtime is TVM ")
    assert _run(host_runtime, folder, "--allow-version-mismatch").returncode == 0


def test_cpp_loader_refuses_a_private_key_as_trust(host_runtime, signed, keys):
    assert _error(_run(host_runtime, signed, "--trust", keys[0]["private"])) == \
        f"{keys[0]['private']} is a private key; trust the public key beside it (public.pem)"


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    return generate_secret(root / "model.key"), generate_secret(root / "other.key")


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory, tiny_cnn, secrets, naive_tuning):
    out = tmp_path_factory.mktemp("encrypted") / "tiny"
    api.compile(tiny_cnn, "x86-host", out=out, tuning=naive_tuning, encrypt=secrets[0]["key"])
    return out


def test_cpp_loader_decrypts_in_memory_with_the_python_loaders_outputs(host_runtime, encrypted, secrets, tmp_path):
    import numpy as np

    (tmp_path / "out").mkdir()
    np.save(tmp_path / "x.npy", np.ones((1, 3, 32, 32), "float32"))
    proc = _run(host_runtime, encrypted, "--decrypt", secrets[0]["key"], "--inputs", f"input={tmp_path / 'x.npy'}",
                "--output-dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    expected = runtime.load(encrypted, decrypt=secrets[0]["key"]).run({"input": np.ones((1, 3, 32, 32), "float32")})
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "output_0.npy"), expected["probabilities"])


@pytest.mark.parametrize("case", ["no key", "wrong key", "altered"])
def test_cpp_loader_refuses_keys_and_ciphertext_like_the_python_loader(host_runtime, encrypted, secrets, tmp_path, case):
    folder = shutil.copytree(encrypted, tmp_path / "artifact")
    key = {"no key": None, "wrong key": secrets[1]["key"], "altered": secrets[0]["key"]}[case]
    if case == "altered":
        raw = bytearray((folder / "model.so").read_bytes())
        raw[200] ^= 1
        (folder / "model.so").write_bytes(bytes(raw))
        _rewrite(folder, lambda d: d["files"]["model.so"].update(sha256=sha256_file(folder / "model.so")))
    env = {k: v for k, v in os.environ.items() if k != "TVMEDGE_DECRYPTION_KEY"}
    proc = subprocess.run([str(host_runtime.loader), str(folder), *(["--decrypt", key] if key else [])],
                          capture_output=True, text=True, env=env)
    assert _error(proc) == _python_error(folder, decrypt=key)


@pytest.mark.emulated
def test_signed_artifact_on_the_emulated_riscv64_board(tmp_path, tiny_cnn, keys, naive_tuning):
    """Sign here, verify there: the riscv64 C++ loader under qemu accepts the signed artifact and refuses a
    forgery of it."""
    if shutil.which("riscv64-linux-gnu-g++") is None or shutil.which("qemu-riscv64") is None:
        pytest.skip("riscv64 cross compiler or qemu-riscv64 not installed")
    from tvmedge.devices.board import load_board
    from tvmedge.emulator import setup_board

    out = tmp_path / "tiny-rv"
    secret = generate_secret(tmp_path / "model.key")
    api.compile(tiny_cnn, "visionfive2", out=out, tuning=naive_tuning, sign=keys[0]["private"], encrypt=secret["key"])
    board = setup_board(load_board("visionfive2"))
    report = board.run_json([str(out), "--random", "--trust", keys[0]["public"], "--decrypt", secret["key"]])
    assert report["stats"]["loader"] == "c++"  # verified, decrypted into a memfd and run, under qemu-riscv64
    forged = shutil.copytree(out, tmp_path / "forged")
    _forge(forged)
    proc = board.run_loader([str(forged), "--random", "--trust", keys[0]["public"], "--decrypt", secret["key"]])
    assert proc.returncode == 1 and "signs another manifest" in proc.stderr
    with pytest.raises(ArtifactError, match="signs another manifest"):  # and the host refuses it before shipping
        api.run(forged, board="emu:visionfive2", trust=keys[0]["public"])


def test_cpp_loader_refuses_a_graph_of_an_lm_artifact(host_runtime, tiny_lm_artifact):
    # Issue 16: an LM artifact's libraries take their weights from the LM folder's weights.safetensors, which
    # tvmedge-run does not read: one line saying where such an artifact runs, not a crash inside the VM.
    assert _error(_run(host_runtime, tiny_lm_artifact / "decode")) == (
        f"{tiny_lm_artifact / 'decode'} keeps its weights outside the library (a graph of an LM artifact); "
        "tvmedge-run loads single artifacts only: generate with `python -m tvmedge.runtime.lm` or `tvmedge generate`")
