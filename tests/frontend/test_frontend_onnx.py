"""tvmedge.frontend.onnx: reading, shape fixing + folding, coverage, import (issue 3)."""

import onnx
import pytest

from tvmedge.errors import ConfigError, ModelError, UnsupportedOpError
from tvmedge.frontend.onnx import import_model, inspect_onnx, parse_input_shapes, read_onnx


def test_import_static_model_gives_io_specs(tiny_cnn):
    imported = import_model(tiny_cnn)
    assert [(s.name, s.shape, s.dtype) for s in imported.inputs] == [("input", (1, 3, 32, 32), "float32")]
    assert [(s.name, s.shape, s.dtype) for s in imported.outputs] == [("probabilities", (1, 10), "float32")]
    assert "main" in [gv.name_hint for gv in imported.mod.get_global_vars()]


def test_symbolic_input_needs_a_shape_and_names_it(dynamic_cnn):
    # Real exporters leave symbolic dims; the error must say which input and how to fix it.
    with pytest.raises(ModelError, match=r"input shape needed: input \('batch', 3, 32, 32\) \(e.g. --input-shape input=1,3,32,32\)"):
        import_model(dynamic_cnn)


def test_shape_subgraph_is_folded_once_shapes_are_fixed(dynamic_cnn):
    # Shape -> Gather -> Unsqueeze -> Concat -> Reshape must be folded away before TVM sees it.
    imported = import_model(dynamic_cnn, {"input": (4, 3, 32, 32)})
    ops = {n.op_type for n in imported.onnx_model.graph.node}
    assert not ops & {"Shape", "Gather", "Concat", "Unsqueeze"}
    assert imported.outputs[0].shape == (4, 10)


def test_inspect_reports_symbolic_inputs_without_failing(dynamic_cnn):
    report = inspect_onnx(dynamic_cnn).summary()
    assert report["needs_input_shape"] == ["input"]
    assert report["inputs"][0]["shape"] == ["batch", 3, 32, 32]
    assert report["ops"]["Shape"] == 1 and not report["importable"]


def test_inspect_lists_every_unsupported_op_at_once(unsupported_model):
    report = inspect_onnx(unsupported_model).summary()
    assert report["unsupported_ops"] == {"DFT": 1, "Det": 1}


def test_import_raises_with_all_unsupported_ops(unsupported_model):
    with pytest.raises(UnsupportedOpError, match=r"2 op type\(s\): DFT \(x1\), Det \(x1\)") as info:
        import_model(unsupported_model)
    assert info.value.ops == {"DFT": 1, "Det": 1}


@pytest.mark.parametrize("items, expected", [
    (["x=1,3,224,224"], {"x": (1, 3, 224, 224)}),
    (["a=1,2", "b=3"], {"a": (1, 2), "b": (3,)}),
    (["input:0=1,4"], {"input:0": (1, 4)}),
])
def test_parse_input_shapes(items, expected):
    assert parse_input_shapes(items) == expected


@pytest.mark.parametrize("bad", ["x", "x=", "x=1,a", "=1,2", "x=0,3"])
def test_parse_input_shapes_rejects_malformed(bad):
    with pytest.raises(ConfigError, match="must look like NAME=D0,D1"):
        parse_input_shapes([bad])


def test_input_shape_for_unknown_input(dynamic_cnn):
    with pytest.raises(ConfigError, match="unknown input 'image'; the model's inputs are: input"):
        import_model(dynamic_cnn, {"image": (1, 3, 32, 32)})


def test_input_shape_with_wrong_rank_or_conflicting_dim(dynamic_cnn, tiny_cnn):
    with pytest.raises(ConfigError, match="rank 4, got 2 dims"):
        import_model(dynamic_cnn, {"input": (1, 3)})
    with pytest.raises(ConfigError, match="dim 1 is fixed to 3 in the model, got 4"):
        import_model(tiny_cnn, {"input": (1, 4, 32, 32)})


def test_missing_truncated_and_garbage_files(tmp_path, tiny_cnn):
    with pytest.raises(ModelError, match="does not exist"):
        read_onnx(tmp_path / "nope.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_cnn.read_bytes()[:1000])
    with pytest.raises(ModelError, match="not a valid ONNX file"):
        read_onnx(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffthis is not a protobuf" * 50)
    with pytest.raises(ModelError, match="not a valid ONNX file"):
        read_onnx(garbage)


def test_checker_failure_is_a_model_error(tmp_path, tiny_cnn):
    model = onnx.load(tiny_cnn)
    model.graph.node[0].input[1] = "no_such_tensor"
    path = tmp_path / "broken.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match="fails the ONNX checker"):
        read_onnx(path)
