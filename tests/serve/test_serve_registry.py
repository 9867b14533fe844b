"""ModelRegistry: safe names, what counts as a model, and load/unload while requests run (issue 7 §1).

Toy models (a sleep and a multiply) make the timing of admitted, refused and drained requests deterministic;
one test uses a real artifact to check that unloading gives the memory back.
"""

import threading
import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvmedge.errors import ArtifactError, ServeError
from tvmedge.runtime.manifest import TensorSpec
from tvmedge.serve.registry import ModelRegistry, check_name


class ToyModel:
    """Doubles its input after ``delay`` seconds; counts concurrent runs to prove the per-model lock."""

    inputs = [TensorSpec("x", (2,), "float32")]
    outputs = [TensorSpec("y", (2,), "float32")]

    def __init__(self, delay=0.0):
        self.delay, self.running, self.most = delay, 0, 0

    def run(self, feed):
        self.running += 1
        self.most = max(self.most, self.running)
        time.sleep(self.delay)
        self.running -= 1
        return {"y": feed["x"] * 2}


@pytest.fixture
def root(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")  # enough for the registry; the toy loader reads nothing
    return tmp_path


def background(fn, *args):
    box = {}

    def target():
        try:
            box["value"] = fn(*args)
        except Exception as err:  # noqa: BLE001 - handed to the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def state(registry, name):
    return {r["name"]: r for r in registry.status()}[name]


@pytest.mark.parametrize("name", ["tiny", "tiny_cnn-v2.1", "A", "9" * 64])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "..", ".", ".hidden", "a/b", "a\\b", "a..b", "../etc", "x\x00", "m" * 65, "mödel", " a", None, 3])
def test_bad_names(name):
    with pytest.raises(ServeError, match=r"invalid model name .*: use 1-64 letters") as info:
        check_name(name)
    assert info.value.status == 400


def test_only_artifacts_under_the_directory_are_models(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "manifest.json").write_text("{}")
    (root / "link").symlink_to(outside)
    (root / "empty").mkdir()
    (root / "file.txt").write_text("x")
    registry = ModelRegistry(root, loader=lambda path: ToyModel())
    assert registry.available() == ["a", "b"]
    for name, status in (("link", 403), ("empty", 404), ("nope", 404)):
        with pytest.raises(ServeError) as info:
            registry.load(name)
        assert info.value.status == status
    with pytest.raises(ServeError, match="models directory .* does not exist"):
        ModelRegistry(root / "missing")
    with pytest.raises(ServeError, match="no model 'c' under"):
        ModelRegistry(root, allowed=["a", "c"])  # a profile naming a missing model fails at start


def test_unload_waits_for_admitted_requests_and_refuses_new_ones(root):
    toy = ToyModel(delay=0.2)
    registry = ModelRegistry(root, loader=lambda path: toy)
    registry.load("a")
    x = np.array([1, 2], "float32")
    requests = [background(registry.infer, "a", {"x": x}) for _ in range(3)]
    wait_for(lambda: state(registry, "a")["in_flight"] == 3)
    unloading, report = background(registry.unload, "a")
    wait_for(lambda: state(registry, "a")["state"] == "draining")
    with pytest.raises(ServeError, match="model 'a' is being unloaded and takes no new requests") as refused:
        registry.infer("a", {"x": x})
    assert refused.value.status == 503
    unloading.join(10)
    for thread, box in requests:  # every admitted request finished with the right answer before the model went
        thread.join(10)
        np.testing.assert_array_equal(box["value"]["y"], x * 2)
    assert report["value"]["drained_requests"] == 3 and report["value"]["waited_ms"] > 100
    assert toy.most == 1  # one run at a time per model: the TVM VM is not re-entrant
    assert state(registry, "a")["state"] == "available"
    with pytest.raises(ServeError, match=r"model 'a' is not loaded; POST /v1/models/a/load first") as gone:
        registry.infer("a", {"x": x})
    assert gone.value.status == 409


def test_unload_that_times_out_keeps_the_model(root):
    registry = ModelRegistry(root, loader=lambda path: ToyModel(delay=1.0))
    registry.load("a")
    thread, box = background(registry.infer, "a", {"x": np.ones(2, "float32")})
    wait_for(lambda: state(registry, "a")["in_flight"] == 1)
    with pytest.raises(ServeError, match=r"model 'a' still has 1 running request\(s\) after 0.1 s; unload cancelled") as info:
        registry.unload("a", timeout=0.1)
    assert info.value.status == 503 and state(registry, "a")["state"] == "ready"
    thread.join(10)
    assert "value" in box and registry.unload("a")["drained_requests"] == 0


def test_concurrent_loads_load_once_and_failures_leave_nothing_behind(root):
    calls = []

    def loader(path):
        calls.append(path.name)
        time.sleep(0.2)
        if path.name == "b":
            raise ArtifactError(f"{path}/model.so does not match the sha256 in its manifest")
        return ToyModel()

    registry = ModelRegistry(root, loader=loader)
    loads = [background(registry.load, "a") for _ in range(4)]
    for thread, _ in loads:
        thread.join(10)
    assert calls == ["a"] and sorted(box["value"]["already_loaded"] for _, box in loads) == [False, True, True, True]
    with pytest.raises(ArtifactError):
        registry.load("b")
    assert state(registry, "b")["state"] == "available" and registry.loaded() == ["a"]
    with pytest.raises(ServeError, match="model 'b' is not loaded") as info:
        registry.unload("b")
    assert info.value.status == 409


def _mlp(width=1024, layers=2):
    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "input"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) / 32).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


_UNLOAD_PROBE = r"""
import json, sys
import numpy as np
from tvmedge.serve.registry import ModelRegistry
registry = ModelRegistry(sys.argv[1])
registry.load("mlp")       # the first cycle also pays for importing TVM's runtime: measure the next ones
base = registry.unload("mlp")["rss_after_bytes"]
freed = []
for _ in range(3):
    registry.load("mlp")
    registry.infer("mlp", {"input": np.ones((1, 1024), "float32")})
    unloaded = registry.unload("mlp")
    freed.append(unloaded["rss_freed_bytes"])
print(json.dumps({"freed": freed, "growth": unloaded["rss_after_bytes"] - base}))
"""


def test_unload_gives_the_memory_back(tmp_path, naive_tuning):
    # 8 MB of weights: large enough to see in RSS, small enough to compile in seconds. Measured in a fresh
    # runtime-only process: in the test process other tests' threads and caches move RSS too.
    import json
    import os
    import subprocess
    import sys

    import onnx

    from tvmedge import api

    onnx.save(_mlp(), tmp_path / "mlp.onnx")
    api.compile(tmp_path / "mlp.onnx", "x86-host", out=tmp_path / "models" / "mlp", tuning=naive_tuning)
    result = subprocess.run([sys.executable, "-c", _UNLOAD_PROBE, str(tmp_path / "models")], capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # Each unload returns at least the 8 MB of weights, and three load/unload cycles do not grow the process
    # by a model's worth (with the library pinned, as TVM does by default, each cycle added the weights again).
    assert all(freed > 7 << 20 for freed in report["freed"]), report
    assert report["growth"] < 8 << 20, report
