"""KV caches updated in place (tvmedge.compiler.kv_cache): ``Where(mask, new, past)`` on a declared cache input
becomes a write of the new slot into ``past``. Outputs equal ONNX Runtime's, a rerun on the same inputs gives the
same outputs, the caller's numpy arrays are untouched, and a cache input with another use is left as it was."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import naive
from tvmedge.compiler.pipeline import compile_model
from tvmedge.runtime.loader import load

T, H = 8, 3


def _cache_model(path, *, past_first: bool = False, second_use: bool = False):
    """present = Where(arange == position, new, past) over the last axis (or Where(arange != position, past,
    new)); ``second_use`` also returns past * 2 (past is then read after the update would have happened)."""
    nodes = [
        helper.make_node("Equal" if not past_first else "Not", ["slot_eq"] if past_first else ["arange", "position"],
                         ["slot"]),
        helper.make_node("Reshape", ["slot", "mask_shape"], ["mask"]),
        helper.make_node("Where", ["mask", "past", "new"] if past_first else ["mask", "new", "past"], ["present"]),
        helper.make_node("ReduceSum", ["present"], ["total"], keepdims=0),
    ]
    if past_first:
        nodes.insert(0, helper.make_node("Equal", ["arange", "position"], ["slot_eq"]))
    outputs = [helper.make_tensor_value_info("present", TensorProto.FLOAT, [1, H, T]),
               helper.make_tensor_value_info("total", TensorProto.FLOAT, [])]
    if second_use:
        nodes.append(helper.make_node("Add", ["past", "past"], ["doubled"]))
        outputs.append(helper.make_tensor_value_info("doubled", TensorProto.FLOAT, [1, H, T]))
    graph = helper.make_graph(
        nodes, "cache",
        [helper.make_tensor_value_info("new", TensorProto.FLOAT, [1, H, 1]),
         helper.make_tensor_value_info("position", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("past", TensorProto.FLOAT, [1, H, T])],
        outputs,
        initializer=[helper.make_tensor("arange", TensorProto.INT64, [T], list(range(T))),
                     helper.make_tensor("mask_shape", TensorProto.INT64, [3], [1, 1, T])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def _feed(position: int) -> dict:
    rng = np.random.default_rng(position)
    return {"new": rng.standard_normal((1, H, 1)).astype(np.float32), "position": np.array([position], np.int64),
            "past": rng.standard_normal((1, H, T)).astype(np.float32)}


def _ort(model, feed) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


@pytest.mark.parametrize("past_first", [False, True])
def test_a_cache_update_runs_in_place_and_like_onnx_runtime(tmp_path, past_first):
    model = _cache_model(tmp_path / "cache.onnx", past_first=past_first)
    out = tmp_path / "out"
    compile_model(model, "x86-host", out, tuning=naive(), caches=["past"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build"]["updated_in_place"] == ["past"]
    loaded = load(out)
    for position in (0, 5, T - 1):
        feed = _feed(position)
        kept = {k: v.copy() for k, v in feed.items()}
        expected = _ort(model, feed)
        first, again = loaded.run(feed), loaded.run(feed)
        for name, value in expected.items():
            np.testing.assert_allclose(first[name], value, rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(again[name], first[name])
        assert all(np.array_equal(feed[k], kept[k]) for k in feed)  # the caller's arrays are not the caches


def test_the_update_happens_in_the_input_tensor(tmp_path):
    model = _cache_model(tmp_path / "cache.onnx")
    out = tmp_path / "out"
    compile_model(model, "x86-host", out, tuning=naive(), caches=["past"])
    loaded = load(out)
    feed = _feed(3)
    tensors = {name: loaded.tensor(value) for name, value in feed.items()}
    result = loaded.run_stage(0, tensors)
    assert np.array_equal(tensors["past"].numpy(), result["present"].numpy())  # the input now holds the output
    assert not np.array_equal(tensors["past"].numpy(), feed["past"])


def test_a_cache_read_elsewhere_is_not_updated_in_place(tmp_path):
    model = _cache_model(tmp_path / "cache.onnx", second_use=True)
    out = tmp_path / "out"
    compile_model(model, "x86-host", out, tuning=naive(), caches=["past"])
    assert "updated_in_place" not in json.loads((out / "manifest.json").read_text())["build"]
    feed = _feed(2)
    got, expected = load(out).run(feed), _ort(model, feed)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6)


def test_inputs_not_declared_as_caches_are_left_alone(tmp_path):
    model = _cache_model(tmp_path / "cache.onnx")
    out = tmp_path / "out"
    compile_model(model, "x86-host", out, tuning=naive())
    assert "updated_in_place" not in json.loads((out / "manifest.json").read_text())["build"]
