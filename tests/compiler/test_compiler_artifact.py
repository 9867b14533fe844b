"""tvmedge.compiler: artifact directory, manifest contents and reproducibility (issue 3)."""

import json

import pytest

from tvmedge import api
from tvmedge.errors import ArtifactError, BuildError
from tvmedge.runtime.manifest import Manifest, sha256_file


def test_manifest_describes_the_artifact(arm_artifact, tiny_cnn):
    manifest = json.loads((arm_artifact / "manifest.json").read_text())
    assert manifest["format"] == "tvmedge-artifact" and manifest["format_version"] == 1
    assert manifest["board"] == "rk3588" and manifest["arch"] == "aarch64"
    assert manifest["triple"] == "aarch64-linux-gnu"
    assert manifest["target"]["mcpu"] == "cortex-a76"
    assert manifest["inputs"] == [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "probabilities", "shape": [1, 10], "dtype": "float32"}]
    assert manifest["files"]["model.so"]["sha256"] == sha256_file(arm_artifact / "model.so")
    assert manifest["source_model"]["sha256"] == sha256_file(tiny_cnn)
    assert manifest["tvm_version"].startswith("0.27") and manifest["tvmedge_version"]
    # Placeholders later issues fill (partition plan, tuning provenance) are present.
    assert "plan" in manifest and "tuning" in manifest
    assert manifest["build"]["cross_compiler"] == "aarch64-linux-gnu-g++"


def test_library_is_an_aarch64_elf(arm_artifact):
    header = (arm_artifact / "model.so").read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


def test_same_inputs_give_byte_identical_manifest_but_timestamp(tmp_path, tiny_cnn, arm_artifact, naive_tuning):
    # Reproducible builds: everything but `created` must be byte-identical, including the .so hash.
    again = api.compile(tiny_cnn, "rk3588", out=tmp_path / "again", tuning=naive_tuning)
    strip = lambda text: "\n".join(l for l in text.splitlines() if '"created"' not in l)  # noqa: E731
    assert strip((arm_artifact / "manifest.json").read_text()) == strip((again.path / "manifest.json").read_text())


def test_symbolic_model_compiles_with_input_shape(tmp_path, dynamic_cnn, naive_tuning):
    artifact = api.compile(dynamic_cnn, "x86-host", input_shapes={"input": (2, 3, 32, 32)}, out=tmp_path / "dyn",
                           tuning=naive_tuning)
    assert artifact.manifest.outputs[0].shape == (2, 10)
    assert artifact.manifest.build.input_shapes == {"input": [2, 3, 32, 32]}


def test_refuses_to_overwrite_a_folder_that_is_not_an_artifact(tmp_path, tiny_cnn):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not empty and holds no tvmedge artifact"):
        api.compile(tiny_cnn, "x86-host", out=out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_riscv64_cross_compiles(tmp_path, tiny_cnn, naive_tuning):
    artifact = api.compile(tiny_cnn, "visionfive2", out=tmp_path / "rv", tuning=naive_tuning)
    header = (artifact.path / "model.so").read_bytes()[:20]
    assert int.from_bytes(header[18:20], "little") == 243  # EM_RISCV
    assert Manifest.read(artifact.path).triple == "riscv64-unknown-linux-gnu"


def test_invalid_tvm_target_is_a_build_error(tmp_path, tiny_cnn, naive_tuning):
    with pytest.raises(BuildError, match="invalid TVM target"):
        api.compile(tiny_cnn, '{"kind": "no-such-kind"}', out=tmp_path / "bad", tuning=naive_tuning)


# --- issue 19, finding 11: a kill during compile ----------------------------------------------------------------


class _Killed(BaseException):
    """Stands for SIGKILL at that moment: nothing after it runs (BaseException, so no handler catches it)."""


def test_a_kill_while_writing_the_manifest_leaves_the_previous_artifact(tmp_path, dynamic_cnn, x86_artifact,
                                                                        naive_tuning, monkeypatch, tiny_input):
    import shutil

    import tvmedge.runtime as rt

    out = tmp_path / "out"
    shutil.copytree(x86_artifact, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed(self, directory):
        raise _Killed()

    monkeypatch.setattr(Manifest, "write", killed)  # the kill lands after every library is built
    with pytest.raises(_Killed):  # another model (batch 2): another library than the one in out/
        api.compile(dynamic_cnn, "x86-host", out=out, tuning=naive_tuning, input_shapes={"input": (2, 3, 32, 32)})
    # the previous artifact is whole (it used to hold the new model.so beside the old manifest)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert rt.load(out).run({"input": tiny_input})["probabilities"].shape == (1, 10)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no half-built folder left beside it
    again = api.compile(dynamic_cnn, "x86-host", out=out, tuning=naive_tuning, input_shapes={"input": (2, 3, 32, 32)})
    assert again.manifest.outputs[0].shape == (2, 10) and rt.load(out).manifest.outputs[0].shape == (2, 10)


def test_a_kill_during_a_fresh_compile_leaves_no_half_artifact(tmp_path, tiny_cnn, naive_tuning, monkeypatch):
    # a fresh folder left with only model.so used to refuse the re-compile ("not empty and holds no artifact")
    out = tmp_path / "fresh"
    monkeypatch.setattr(Manifest, "write", lambda self, directory: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):
        api.compile(tiny_cnn, "x86-host", out=out, tuning=naive_tuning)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert (api.compile(tiny_cnn, "x86-host", out=out, tuning=naive_tuning).path / "model.so").is_file()
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # not the temporary folder's private mode
