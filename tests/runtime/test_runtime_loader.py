"""tvmedge.runtime: manifest verification before loading, input checks, outputs (issue 3)."""

import json

import numpy as np
import pytest

import tvmedge.runtime as rt
from tvmedge.errors import ArtifactError, InputError
from tvmedge.peer import onnxruntime_outputs


def test_outputs_match_onnxruntime(x86_artifact, tiny_cnn, tiny_input):
    model = rt.load(x86_artifact)
    outputs = model.run({"input": tiny_input})
    reference = onnxruntime_outputs(tiny_cnn, {"input": tiny_input})
    np.testing.assert_allclose(outputs["probabilities"], reference["probabilities"], rtol=1e-5, atol=1e-6)
    # A single array works for a single-input model.
    np.testing.assert_array_equal(model.run(tiny_input)["probabilities"], outputs["probabilities"])


def test_timed_run_reports_first_inference_separately(x86_artifact, tiny_input):
    outputs, stats = rt.load(x86_artifact).timed_run(tiny_input, repeat=3)
    assert set(outputs) == {"probabilities"}
    assert stats.repeat == 3 and stats.first_ms > 0 and stats.min_ms <= stats.median_ms <= stats.max_ms


@pytest.mark.parametrize("feed, message", [
    ({"input": np.zeros((1, 3, 32), "float32")}, r"input 'input': expected shape \(1, 3, 32, 32\) float32, got \(1, 3, 32\) float32"),
    ({"input": np.zeros((1, 3, 32, 32), "float64")}, r"expected shape \(1, 3, 32, 32\) float32, got \(1, 3, 32, 32\) float64"),
    ({"image": np.zeros((1, 3, 32, 32), "float32")}, r"unknown input 'image'; the model's inputs are: input"),
    ({}, r"missing input 'input' \(expected input \(1, 3, 32, 32\) float32\)"),
])
def test_bad_inputs_are_named(x86_artifact, feed, message):
    with pytest.raises(InputError, match=message):
        rt.load(x86_artifact).run(feed)


def test_tampered_library_is_refused_before_loading(artifact_copy):
    library = artifact_copy / "model.so"
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match the sha256 in its manifest"):
        rt.load(artifact_copy)


def test_edited_manifest_is_refused(artifact_copy):
    path = artifact_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["inputs"][0]["shape"] = [1, 3, 64, 64]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="was modified after it was built"):
        rt.load(artifact_copy)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "manifest.json").unlink(), "has no manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "is not valid JSON"),
    (lambda d: (d / "model.so").unlink(), "missing from the artifact"),
])
def test_broken_artifacts(artifact_copy, damage, message):
    damage(artifact_copy)
    with pytest.raises(ArtifactError, match=message):
        rt.load(artifact_copy)


def test_foreign_architecture_points_to_the_emulated_board(arm_artifact):
    with pytest.raises(ArtifactError, match=r"built for aarch64 \(board rk3588\); this machine is x86_64: .*--board emu:rk3588"):
        rt.load(arm_artifact)


def test_not_an_artifact_directory(tmp_path):
    with pytest.raises(ArtifactError, match="not an artifact directory"):
        rt.load(tmp_path / "missing")


@pytest.mark.parametrize("array", [np.arange(3 * 32 * 32, dtype="float32").reshape(1, 3, 32, 32)[:, :, :, ::-1],
                                   np.array(7, dtype="int64"), np.zeros((1, 4), "float32")[:, ::2],
                                   np.array([True, False]), np.ones((5, 3), "float16")])
def test_inputs_reach_the_vm_as_aligned_copies(array):
    from tvmedge.runtime.loader import _aligned_copy

    copy = _aligned_copy(array)
    assert copy.ctypes.data % 64 == 0 and copy.flags["C_CONTIGUOUS"] and not np.shares_memory(copy, array)
    assert copy.dtype == array.dtype and copy.shape == array.shape and np.array_equal(copy, array)


def test_the_model_reads_a_copy_of_the_callers_array(x86_artifact, tiny_input):
    model = rt.load(x86_artifact)
    tensor = model.tensor(tiny_input)
    kept = tiny_input.copy()
    tiny_input[...] = 0  # the caller reuses its buffer: the tensor handed to the VM keeps the values it was given
    assert np.array_equal(np.from_dlpack(tensor), kept)
    assert np.allclose(model.run(kept)["probabilities"].sum(), 1.0, atol=1e-5)
