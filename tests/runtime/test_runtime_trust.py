"""Signed artifacts and the version pin (issue 19): sign -> ship -> verify, and what is refused.

The attack that motivated it: anyone who can write to the artifact folder replaced the library, recomputed
every sha256 and the digest, and the loader ran it. With a trusted key that artifact is refused before any
library is opened; so are unsigned artifacts, signatures by other keys and altered signatures. An artifact built
with another TVM / tvm-ffi is refused naming both versions unless ``allow_version_mismatch``.
"""

import base64
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

import tvmedge.runtime as rt
from tvmedge import api
from tvmedge.cli.main import cli
from tvmedge.compiler.signing import generate_keys, load_signing_key, sign_artifact
from tvmedge.errors import ArtifactError, ConfigError
from tvmedge.runtime.manifest import Manifest, sha256_file


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return generate_keys(root / "builder"), generate_keys(root / "attacker")


@pytest.fixture(scope="module")
def signed(tmp_path_factory, tiny_cnn, keys, naive_tuning):
    out = tmp_path_factory.mktemp("signed") / "tiny"
    api.compile(tiny_cnn, "x86-host", out=out, tuning=naive_tuning, sign=keys[0]["private"])
    return out


@pytest.fixture
def copy(signed, tmp_path):
    return shutil.copytree(signed, tmp_path / "artifact")


def _rewrite(folder, change):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    data["digest"] = Manifest._digest_of(data)
    path.write_text(json.dumps(data))
    return data


def _swap_library(folder, other):
    """The attack: another library in (here: the same code with bytes appended, which dlopen ignores), its
    sha256 and the digest recomputed."""
    (folder / "model.so").write_bytes((other).read_bytes() + b"\0planted by an attacker\0")
    _rewrite(folder, lambda d: d["files"]["model.so"].update(sha256=sha256_file(folder / "model.so"),
                                                            bytes=(folder / "model.so").stat().st_size))


def test_keys_are_written_private_and_never_overwritten(keys):
    builder = keys[0]
    assert stat.S_IMODE(os.stat(builder["private"]).st_mode) == 0o600
    assert len(builder["key_id"]) == 16 and builder["key_id"] != keys[1]["key_id"]
    with pytest.raises(ConfigError, match="exists; keys are never overwritten"):
        generate_keys(os.path.dirname(builder["private"]))
    with pytest.raises(ConfigError, match="is a public key; sign with the private key"):
        load_signing_key(builder["public"])


def test_signed_artifact_records_provenance_and_loads_with_its_key(signed, keys, tiny_cnn, tiny_input):
    manifest = Manifest.read(signed)
    assert manifest.provenance["key_id"] == keys[0]["key_id"]
    assert manifest.provenance["source_model_sha256"] == sha256_file(tiny_cnn)
    assert set(manifest.provenance["compiler"]) >= {"tvmedge", "tvm", "tvm_ffi"}
    model = rt.load(signed, trust=keys[0]["public"])
    assert model.signer == keys[0]["key_id"]
    assert model.run({"input": tiny_input})["probabilities"].shape == (1, 10)


def test_forged_library_with_recomputed_hashes_is_refused(copy, keys, x86_artifact):
    _swap_library(copy, x86_artifact / "model.so")
    rt.load(copy)  # without a trusted key: integrity only, the forgery loads (what the issue found)
    with pytest.raises(ArtifactError, match="manifest.sig signs another manifest than .* \\(edited after signing\\)"):
        rt.load(copy, trust=keys[0]["public"])


def test_forgery_re_signed_with_another_key_is_refused_naming_the_expected_key(copy, keys, x86_artifact):
    _swap_library(copy, x86_artifact / "model.so")
    data = _rewrite(copy, lambda d: d["provenance"].update(key_id=keys[1]["key_id"]))
    sign_artifact(copy, data["digest"], load_signing_key(keys[1]["private"]))
    with pytest.raises(ArtifactError) as err:
        rt.load(copy, trust=keys[0]["public"])
    assert str(err.value) == (f"{copy} is signed by key {keys[1]['key_id']}, which is not trusted (expected key "
                              f"{keys[0]['key_id']} (--trust {keys[0]['public']})): refusing to load it")


def test_altered_signature_and_unsigned_artifact_are_refused(copy, keys, x86_artifact):
    sig = json.loads((copy / "manifest.sig").read_text())
    raw = bytearray(base64.b64decode(sig["signature"]))
    raw[0] ^= 1
    sig["signature"] = base64.b64encode(bytes(raw)).decode()
    (copy / "manifest.sig").write_text(json.dumps(sig))
    with pytest.raises(ArtifactError, match=f"does not verify with key {keys[0]['key_id']} \\(forged or altered\\)"):
        rt.load(copy, trust=keys[0]["public"])
    with pytest.raises(ArtifactError, match=f"is not signed \\(no manifest.sig\\); this runtime trusts only key {keys[0]['key_id']}"):
        rt.load(x86_artifact, trust=keys[0]["public"])


def test_refused_before_any_library_is_opened(copy, keys, monkeypatch):
    import tvm_ffi

    (copy / "model.so").write_bytes(b"\x7fELF not a library")  # and no hash recomputed: the signature speaks first
    opened = []
    monkeypatch.setattr(tvm_ffi, "load_module", lambda *a, **k: opened.append(a))
    monkeypatch.delitem(sys.modules, "tvm_ffi", raising=False)  # not even imported again
    _rewrite(copy, lambda d: d["files"]["model.so"].update(sha256=sha256_file(copy / "model.so")))
    with pytest.raises(ArtifactError, match="signs another manifest"):
        rt.load(copy, trust=keys[0]["public"])
    assert opened == [] and "tvm_ffi" not in sys.modules


def test_trusted_keys_from_the_environment_as_a_folder(signed, keys, monkeypatch, tmp_path, x86_artifact):
    folder = tmp_path / "trusted"
    folder.mkdir()
    shutil.copy(keys[1]["public"], folder / "attacker.pem")
    shutil.copy(keys[0]["public"], folder / "builder.pem")
    monkeypatch.setenv("TVMEDGE_TRUSTED_KEYS", str(folder))
    assert rt.load(signed).signer == keys[0]["key_id"]
    with pytest.raises(ArtifactError, match="is not signed .* \\(TVMEDGE_TRUSTED_KEYS"):
        rt.load(x86_artifact)


def test_version_mismatch_is_refused_naming_both_versions(copy, tiny_input):
    import tvm

    _rewrite(copy, lambda d: d.update(tvm_version="0.19.0"))
    with pytest.raises(ArtifactError) as err:
        rt.load(copy)
    assert str(err.value).startswith(f"{copy} was built with TVM 0.19.0, this runtime is TVM {tvm.__version__}: rebuild")
    assert "--allow-version-mismatch" in str(err.value)
    assert rt.load(copy, allow_version_mismatch=True).run({"input": tiny_input})["probabilities"].shape == (1, 10)
    _rewrite(copy, lambda d: d.update(tvm_version=tvm.__version__, tvm_ffi_version="0.1.15"))
    with pytest.raises(ArtifactError, match="was built with tvm-ffi 0.1.15, this runtime is tvm-ffi "):
        rt.load(copy)


def test_board_side_command_takes_trust_and_the_version_override(copy, keys):
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    command = [sys.executable, "-m", "tvmedge.runtime", str(copy), "--random", "--json"]
    ok = subprocess.run(command + ["--trust", keys[0]["public"]], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(command + ["--trust", keys[1]["public"]], capture_output=True, text=True, env=env)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "which is not trusted" in refused.stderr
    _rewrite(copy, lambda d: d.update(tvm_version="0.19.0"))
    pinned = subprocess.run(command, capture_output=True, text=True, env=env)
    assert pinned.returncode == 1 and "was built with TVM 0.19.0" in pinned.stderr
    assert subprocess.run(command + ["--allow-version-mismatch"], capture_output=True, env=env).returncode == 0


def test_cli_sign_inspect_run_deploy(tmp_path, tiny_cnn, keys, x86_artifact, monkeypatch):
    runner = CliRunner()
    out = tmp_path / "out"
    monkeypatch.setenv("TVMEDGE_SIGNING_KEY", keys[0]["private"])
    made = runner.invoke(cli, ["compile", str(tiny_cnn), "--target", "x86-host", "--search", "naive", "-o", str(out)])
    assert made.exit_code == 0, made.output
    assert f"signed: key {keys[0]['key_id']}" in made.output
    shown = runner.invoke(cli, ["inspect", str(out), "--trust", keys[0]["public"], "--json"])
    info = json.loads(shown.output)
    assert info["signature"] == {"present": True, "key_id": keys[0]["key_id"], "verified": True}
    assert info["provenance"]["key_id"] == keys[0]["key_id"]
    ran = runner.invoke(cli, ["run", str(out), "--trust", keys[1]["public"]])
    assert ran.exit_code == 1 and ran.output.count("\n") == 1 and "which is not trusted" in ran.output
    shipped = runner.invoke(cli, ["deploy", str(x86_artifact), "--to", str(tmp_path / "board"), "--no-runtime",
                                  "--trust", keys[0]["public"]])
    assert shipped.exit_code == 1 and "is not signed" in shipped.output and not (tmp_path / "board" / "tiny-x86").exists()
    bad = runner.invoke(cli, ["compile", str(tiny_cnn), "--target", "x86-host", "--sign", keys[0]["public"], "-o",
                              str(tmp_path / "o2")])
    assert bad.exit_code == 1 and "is a public key; sign with the private key" in bad.output


def test_serve_refuses_unsigned_models_when_it_trusts_a_key(tmp_path, signed, x86_artifact, keys):
    from tvmedge.serve.options import ServeOptions
    from tvmedge.serve.server import start_registry

    root = tmp_path / "models"
    shutil.copytree(signed, root / "signed")
    shutil.copytree(x86_artifact, root / "unsigned")
    registry, summary = start_registry(ServeOptions(root, trust=(keys[0]["public"],)))
    try:
        assert summary["loaded"] == ["signed"] and "is not signed" in summary["skipped"]["unsigned"]
    finally:
        registry.close()


def test_missing_cryptography_is_one_line(signed, keys):
    code = ("import sys; sys.modules['cryptography'] = None\n"
            "import tvmedge.runtime as rt\n"
            "from tvmedge.errors import TvmedgeError\n"
            f"rt.load({str(signed)!r})  # no trust asked: cryptography is not needed\n"
            "try:\n"
            f"    rt.load({str(signed)!r}, trust={keys[0]['public']!r})\n"
            "except TvmedgeError as err:\n"
            "    print(type(err).__name__, err)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))
    assert proc.stdout.strip() == "ToolchainError signed artifacts need the cryptography package: pip install cryptography", proc.stderr
