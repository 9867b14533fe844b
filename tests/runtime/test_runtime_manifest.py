"""The artifact contract (issue 12): typed manifest objects, read the same by the Python and the C++ reader.

``data/golden_manifest.json`` is a two-stage artifact's manifest (``compile --partition throughput`` of the tiny
CNN on the two-CPU test board). Both readers read it into their typed objects (TensorSpec, Stage, StoredPlan,
BuildInfo); ``tvmedge-run --manifest`` prints the C++ reader's view, which must equal the Python reader's.
The Python writer must reproduce the file byte for byte from the objects it read, so a change of the format
shows up here first. Format version 1 (a single library, ``"plan": null``) reads as a one-stage plan.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tvmedge.errors import ArtifactError
from tvmedge.runtime.manifest import BuildInfo, Manifest, Stage, StoredPlan, TensorSpec

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_manifest.json"


@pytest.fixture
def golden(tmp_path) -> Path:
    """An artifact folder holding the golden manifest (no libraries: only the manifest is read)."""
    shutil.copy(GOLDEN, tmp_path / "manifest.json")
    return tmp_path


def typed_view(m: Manifest) -> dict:
    """What the C++ reader prints with --manifest, from the Python reader's typed objects."""
    return {
        "format_version": m.format_version, "board": m.board, "arch": m.arch, "triple": m.triple,
        "library": m.library, "inputs": [s.to_json() for s in m.inputs], "outputs": [s.to_json() for s in m.outputs],
        "build": {"opt_level": m.build.opt_level, "cross_compiler": m.build.cross_compiler,
                  "folding": m.build.folding, "partitions": m.build.partitions},
        "stages": [{"index": s.index, "library": s.library, "inputs": [t.to_json() for t in s.inputs],
                    "outputs": [t.to_json() for t in s.outputs], "unit": s.unit, "built_for": s.built_for,
                    "fallback": s.fallback, "ops": list(s.ops)} for s in m.stages()],
        "output_names": m.output_names(),
        "objective": m.plan.objective if m.plan else None, "algorithm": m.plan.algorithm if m.plan else None,
    }


def test_python_reader_gives_typed_objects(golden):
    m = Manifest.read(golden)
    assert m.format_version == 2 and isinstance(m.plan, StoredPlan) and isinstance(m.build, BuildInfo)
    stages = m.stages()
    assert len(stages) == 2 and all(isinstance(s, Stage) for s in stages)
    assert [s.library for s in stages] == ["stage0.so", "stage1.so"] == m.libraries()
    assert all(isinstance(t, TensorSpec) for s in stages for t in s.inputs + s.outputs)
    assert stages[0].input_names == [t.name for t in m.inputs]  # the first stage reads the model's inputs
    assert set(stages[1].input_names) <= set(stages[0].output_names) | {t.name for t in m.inputs}
    assert m.output_names() == list(m.plan.outputs) and len(m.output_names()) == len(m.outputs)
    assert m.build.partitions == 2 and m.build.extra == {}


def test_python_writer_reproduces_the_golden_file_byte_for_byte(golden):
    assert Manifest.read(golden).to_json() == GOLDEN.read_text()


def test_build_keys_this_runtime_does_not_know_are_kept(golden):
    m = Manifest.read(golden)
    m.build = replace(m.build, extra={"future_key": [1, "two"]})
    m.write(golden)
    again = Manifest.read(golden)
    assert again.build.extra == {"future_key": [1, "two"]} and again.to_json() == m.to_json()


def test_a_single_library_artifact_reads_as_one_stage(x86_artifact):
    m = Manifest.read(x86_artifact)
    assert m.format_version == 1 and m.plan is None
    (stage,) = m.stages()
    assert stage.library == "model.so" and list(stage.inputs) == m.inputs and list(stage.outputs) == m.outputs
    assert m.output_names() == [t.name for t in m.outputs]


def test_a_malformed_stage_is_an_artifact_error(golden):
    data = json.loads(GOLDEN.read_text())
    del data["plan"]["stages"][1]["inputs"][0]["dtype"]
    data["digest"] = Manifest._digest_of(data)
    (golden / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"is malformed: plan.stages\[1\].inputs\[0\]: name and dtype must be strings"):
        Manifest.read(golden)



@pytest.mark.parametrize("weights", [
    {"file": "../weights.safetensors", "names": []},  # outside the folder that holds the artifact
    {"file": "weights.safetensors", "names": ["w" + "0" * 63]},  # not a sha256
    {"file": "weights.safetensors"},
])
def test_a_malformed_weights_field_is_an_artifact_error(golden, weights):
    # issue 16: an LM graph's manifest names its weights file and the tensors main takes, by content hash
    data = json.loads(GOLDEN.read_text())
    data["weights"] = weights
    data["digest"] = Manifest._digest_of(data)
    (golden / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="is malformed: weights must name a file beside the artifact and list "
                                            "its tensors as w<sha256>"):
        Manifest.read(golden)
    data["weights"] = {"file": "weights.safetensors", "names": ["w" + "ab" * 32]}
    data["digest"] = Manifest._digest_of(data)
    (golden / "manifest.json").write_text(json.dumps(data))
    assert Manifest.read(golden).weights == data["weights"]


# --- the C++ reader (tvmedge-run, built for this host with g++ against the installed wheels) -------------------

@pytest.fixture(scope="module")
def cpp_loader():
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    from tvmedge.native.builder import native_runtime

    return native_runtime("x86_64").loader


def _cpp_view(loader, directory) -> dict:
    proc = subprocess.run([str(loader), "--manifest", str(directory)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_cpp_reader_reads_the_golden_manifest_as_python_does(cpp_loader, golden):
    assert _cpp_view(cpp_loader, golden) == typed_view(Manifest.read(golden))


def test_cpp_reader_reads_a_single_library_artifact_as_python_does(cpp_loader, x86_artifact):
    assert _cpp_view(cpp_loader, x86_artifact) == typed_view(Manifest.read(x86_artifact))


def test_cpp_reader_refuses_an_edited_golden_manifest(cpp_loader, golden):
    path = golden / "manifest.json"
    path.write_text(path.read_text().replace('"stage1.so"', '"stage9.so"'))
    proc = subprocess.run([str(cpp_loader), "--manifest", str(golden)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "was modified after it was built" in proc.stderr
