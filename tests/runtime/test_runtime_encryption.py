"""Encryption at rest (issue 19): ``compile --encrypt KEY`` writes ChaCha20-Poly1305 ciphertext; the loader needs
the key, decrypts into a memfd and loads from there, so no plaintext library is ever on the board's disk."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

import tvmedge.runtime as rt
from tvmedge import api
from tvmedge.cli.main import cli
from tvmedge.compiler.signing import generate_keys, generate_secret
from tvmedge.errors import ArtifactError, ConfigError
from tvmedge.runtime.manifest import Manifest, sha256_file


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    return generate_secret(root / "model.key"), generate_secret(root / "other.key"), generate_keys(root / "signing")


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory, tiny_cnn, secrets, naive_tuning):
    out = tmp_path_factory.mktemp("encrypted") / "tiny"
    api.compile(tiny_cnn, "x86-host", out=out, tuning=naive_tuning, encrypt=secrets[0]["key"], sign=secrets[2]["private"])
    return out


def test_libraries_are_ciphertext_and_the_manifest_says_so(encrypted, x86_artifact, secrets):
    data = (encrypted / "model.so").read_bytes()
    plain = (x86_artifact / "model.so").read_bytes()
    assert not data.startswith(b"\x7fELF") and len(data) == len(plain) + 12 + 16  # nonce + tag
    assert plain[4096:4160] not in data  # no stretch of the library (code, weights) in the clear
    manifest = Manifest.read(encrypted)
    assert manifest.encryption == {"algorithm": "chacha20-poly1305", "key_id": secrets[0]["key_id"], "files": ["model.so"]}
    assert manifest.files["model.so"]["sha256"] == sha256_file(encrypted / "model.so")  # integrity without the key
    assert os.stat(secrets[0]["key"]).st_mode & 0o777 == 0o600


def test_loads_with_its_key_from_memory_with_the_plain_outputs(encrypted, x86_artifact, secrets, tiny_input):
    model = rt.load(encrypted, decrypt=secrets[0]["key"], trust=secrets[2]["public"])
    outputs = model.run({"input": tiny_input})["probabilities"]
    assert (outputs == rt.load(x86_artifact).run({"input": tiny_input})["probabilities"]).all()
    with open("/proc/self/maps") as maps:
        mapped = maps.read()
    assert "/memfd:model.so" in mapped  # the library is mapped from the memfd, not from a file on disk
    assert str(encrypted / "model.so") not in mapped


def test_missing_wrong_key_and_altered_ciphertext_are_one_line(encrypted, secrets, tmp_path, monkeypatch):
    with pytest.raises(ArtifactError) as err:
        rt.load(encrypted)
    assert str(err.value) == (f"{encrypted} is encrypted (key {secrets[0]['key_id']}); pass its key with --decrypt "
                              "KEYFILE or TVMEDGE_DECRYPTION_KEY")
    with pytest.raises(ArtifactError, match=f"is encrypted with key {secrets[0]['key_id']}, .*other.key is key "
                                            f"{secrets[1]['key_id']}: wrong key"):
        rt.load(encrypted, decrypt=secrets[1]["key"])
    altered = shutil.copytree(encrypted, tmp_path / "altered")
    raw = bytearray((altered / "model.so").read_bytes())
    raw[100] ^= 1
    (altered / "model.so").write_bytes(bytes(raw))
    data = json.loads((altered / "manifest.json").read_text())  # hashes recomputed: only the tag can tell
    data["files"]["model.so"]["sha256"] = sha256_file(altered / "model.so")
    data["digest"] = Manifest._digest_of(data)
    (altered / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="cannot decrypt .*model.so with key .*: wrong key or altered file"):
        rt.load(altered, decrypt=secrets[0]["key"])
    monkeypatch.setenv("TVMEDGE_DECRYPTION_KEY", secrets[0]["key"])
    assert rt.load(encrypted).stage_count == 1


def test_bad_key_files_and_reproducible_ciphertext(encrypted, tiny_cnn, secrets, naive_tuning, tmp_path):
    (tmp_path / "short.key").write_text("c2hvcnQ=\n")
    with pytest.raises(ConfigError, match="is not a tvmedge encryption key"):
        rt.load(encrypted, decrypt=tmp_path / "short.key")
    with pytest.raises(ConfigError, match="exists; keys are never overwritten"):
        generate_secret(secrets[0]["key"])
    again = api.compile(tiny_cnn, "x86-host", out=tmp_path / "again", tuning=naive_tuning, encrypt=secrets[0]["key"])
    assert (again.path / "model.so").read_bytes() == (encrypted / "model.so").read_bytes()


def test_cli_and_board_side_command(encrypted, secrets, tmp_path):
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "secret", "-o", str(tmp_path / "k"), "--json"])
    assert made.exit_code == 0 and len(json.loads(made.output)["key_id"]) == 16
    refused = runner.invoke(cli, ["run", str(encrypted)])
    assert refused.exit_code == 1 and "is encrypted (key" in refused.output and refused.output.count("\n") == 1
    ran = runner.invoke(cli, ["run", str(encrypted), "--decrypt", secrets[0]["key"], "--repeat", "1"])
    assert ran.exit_code == 0, ran.output
    shown = json.loads(runner.invoke(cli, ["inspect", str(encrypted), "--json"]).output)
    assert shown["encryption"]["key_id"] == secrets[0]["key_id"]
    proc = subprocess.run([sys.executable, "-m", "tvmedge.runtime", str(encrypted), "--random", "--json", "--decrypt",
                           secrets[0]["key"]], capture_output=True, text=True, env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))
    assert proc.returncode == 0, proc.stderr
