"""The loader against hostile artifacts (issue 19, findings 8 and 9).

8. manifests with wrong types, huge or deeply nested values exited 70 with a traceback from
   ``python -m tvmedge.runtime``, and ``format_version: true`` was accepted: each is now one ArtifactError line;
9. a library that is a symlink pointing outside the artifact folder was followed and loaded.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tvmedge.errors import ArtifactError
from tvmedge.runtime.manifest import Manifest

import tvmedge.runtime as rt


def _rewrite(folder, change):
    """Edit the manifest and recompute its digest (what an attacker with write access can do)."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    data["digest"] = Manifest._digest_of(data)
    path.write_text(json.dumps(data))


def _set(key, value):
    return lambda data: data.__setitem__(key, value)


MALFORMED = [
    ("format_version true", _set("format_version", True), "field 'format_version' must be int, not bool"),
    ("files not an object", _set("files", 5), "field 'files' must be dict, not int"),
    ("inputs not a list", _set("inputs", "x"), "field 'inputs' must be list, not str"),
    ("huge dim", lambda d: d["inputs"][0].__setitem__("shape", [10 ** 30]), "inputs[0]: shape must be a list"),
    ("bool dim", lambda d: d["inputs"][0].__setitem__("shape", [True, 3]), "inputs[0]: shape must be a list"),
    ("bad sha", lambda d: d["files"]["model.so"].__setitem__("sha256", ["x"]), "files['model.so'] must be"),
    ("deep tuning", _set("tuning", json.loads("{\"a\":" * 40 + "1" + "}" * 40)), "nested deeper than 32 levels"),
    ("build type", lambda d: d["build"].__setitem__("opt_level", "3"), "build.opt_level has the wrong type (str)"),
    ("library missing", lambda d: d.pop("library"), "field 'library' is missing"),
    ("plan stage", _set("plan", {"stages": [{"library": 3}], "outputs": []}), "plan.stages[0] must have a library"),
]


@pytest.mark.parametrize("change, message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_manifest_is_one_artifact_error(artifact_copy, change, message):
    _rewrite(artifact_copy, change)
    with pytest.raises(ArtifactError) as caught:
        rt.load(artifact_copy)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_deeply_nested_and_oversized_manifests(artifact_copy):
    path = artifact_copy / "manifest.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ArtifactError, match="is malformed: nested too deeply"):
        Manifest.read(artifact_copy)
    with open(path, "w") as handle:
        handle.write('{"format": "tvmedge-artifact", "x": "' + "a" * (9 << 20) + '"}')
    with pytest.raises(ArtifactError, match="is larger than 8 MiB"):
        Manifest.read(artifact_copy)


def test_python_m_runtime_answers_one_line_not_a_traceback(artifact_copy):
    _rewrite(artifact_copy, _set("files", {"model.so": "x"}))
    proc = subprocess.run([sys.executable, "-m", "tvmedge.runtime", str(artifact_copy), "--random"],
                          capture_output=True, text=True, env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "files['model.so'] must be" in proc.stderr


def test_symlinked_library_outside_the_artifact_is_refused(artifact_copy, tmp_path):
    # finding 9: model.so -> /elsewhere/evil.so (with its hash written in the manifest) was followed and loaded
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(artifact_copy / "model.so", elsewhere / "evil.so")
    (artifact_copy / "model.so").symlink_to(elsewhere / "evil.so")
    with pytest.raises(ArtifactError, match="model.so is a symbolic link; an artifact's files must be regular files inside it"):
        rt.load(artifact_copy)
