"""tvmedge.frontend.freeze, opset and control_flow: mode inputs frozen, shape inputs named, opsets checked,
static loops unrolled (issue 14)."""

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto as T
from onnx import helper

from ort_check import assert_close, run_both
from tvmedge.cli.main import cli
from tvmedge.errors import ConfigError, ModelError, ShapeInputError
from tvmedge.frontend.freeze import parse_frozen_inputs
from tvmedge.frontend.onnx import import_model, inspect_onnx

vi = helper.make_tensor_value_info


def _save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, path)
    return path


def mode_model():
    """An If on a boolean mode input ``denoise`` and a Reshape whose target shape is the input ``shape``."""
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["a"])], "then", [], [vi("a", T.FLOAT, [2, 3])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["b"])], "else", [], [vi("b", T.FLOAT, [2, 3])])
    nodes = [helper.make_node("If", ["denoise"], ["t"], then_branch=then, else_branch=other),
             helper.make_node("Reshape", ["t", "shape"], ["y"])]
    return _mode_model(nodes)


def _mode_model(nodes):
    graph = helper.make_graph(nodes, "mode", [vi("x", T.FLOAT, [2, 3]), vi("denoise", T.BOOL, []),
                                              vi("shape", T.INT64, [2])], [vi("y", T.FLOAT, ["a", "b"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_parse_frozen_inputs():
    assert parse_frozen_inputs(["rate=16000", "axes=0,-2", "flag=true", "gain=0.5"]) == \
        {"rate": [16000], "axes": [0, -2], "flag": [True], "gain": [0.5]}
    with pytest.raises(ConfigError, match=r"--freeze-input 'rate' must look like NAME=VALUE"):
        parse_frozen_inputs(["rate"])


def test_an_input_that_sets_shapes_is_named_with_the_option_to_freeze_it(tmp_path):
    path = _save(_mode_model([helper.make_node("Reshape", ["x", "shape"], ["y"]),
                              helper.make_node("Identity", ["denoise"], ["unused"])]), tmp_path)
    with pytest.raises(ShapeInputError, match=r"input\(s\) 'shape' \(Reshape 'y' operand 1\) set shapes or constants "
                                              r"the compiled code needs: their values must be known at compile time; "
                                              r"freeze them: --freeze-input shape=VALUE") as info:
        import_model(path)
    assert info.value.inputs == {"shape": "Reshape 'y' operand 1"}


def test_frozen_inputs_leave_the_artifact_and_are_recorded(tmp_path):
    # The mode flag selects a branch (folded away); the frozen shape fixes the Reshape.
    path = _save(mode_model(), tmp_path)
    imported = import_model(path, frozen_inputs={"denoise": [False], "shape": [3, 2]})
    assert [s.name for s in imported.inputs] == ["x"]
    assert imported.outputs[0].shape == (3, 2)
    assert {n.op_type for n in imported.onnx_model.graph.node} == {"Neg", "Reshape"}
    assert imported.frozen_inputs == {"denoise": False, "shape": [3, 2]}


def test_freeze_input_on_compile_reaches_the_manifest_and_matches_onnxruntime(tmp_path):
    model = mode_model()
    path = _save(model, tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compile", str(path), "--target", "x86-host", "--search", "naive", "-o", str(out),
                                      "--freeze-input", "denoise=true", "--freeze-input", "shape=3,2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frozen_inputs"] == {"denoise": True, "shape": [3, 2]}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build"]["frozen_inputs"] == {"denoise": True, "shape": [3, 2]}
    assert [i["name"] for i in manifest["inputs"]] == ["x"]
    from tvmedge import api

    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    assert np.array_equal(api.load(out).run({"x": x})["y"], np.maximum(x, 0).reshape(3, 2))


@pytest.mark.parametrize("args, message", [
    (["--freeze-input", "nope=1"], "Error: --freeze-input names unknown input 'nope'; the model's inputs are: x, denoise, shape"),
    (["--freeze-input", "shape=1,2,3"], "Error: --freeze-input shape: the input has shape (2,) (2 value(s)), got 3"),
    (["--freeze-input", "shape=1.5,2"], "Error: --freeze-input shape: [1.5, 2] cannot be held exactly by the input's dtype int64"),
])
def test_freeze_input_refusals_are_one_line(args, message, tmp_path):
    path = _save(mode_model(), tmp_path)
    result = CliRunner().invoke(cli, ["inspect", str(path), *args])
    assert result.exit_code == 1
    assert result.stderr.strip() == message


def test_inspect_lists_inputs_to_freeze_and_frozen_values(tmp_path):
    path = _save(_mode_model([helper.make_node("Reshape", ["x", "shape"], ["y"]),
                              helper.make_node("Identity", ["denoise"], ["unused"])]), tmp_path)
    report = inspect_onnx(path).summary()
    assert report["needs_freeze_input"] == {"shape": "Reshape 'y' operand 1"} and not report["importable"]
    report = inspect_onnx(path, frozen_inputs={"shape": [3, 2]}).summary()
    assert report["frozen_inputs"] == {"shape": [3, 2]} and report["importable"]


# ------------------------------------------------------------------------------------------------ opsets


def _relu(opset, dims=(2, 3), domain=""):
    node = helper.make_node("Relu" if not domain else "Foo", ["x"], ["y"], domain=domain)
    graph = helper.make_graph([node], "g", [vi("x", T.FLOAT, list(dims))], [vi("y", T.FLOAT, list(dims))])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


@pytest.mark.parametrize("opset, hint", [(99, "is the file from a newer exporter"), (6, "convert it first")])
def test_opset_outside_the_range_is_refused_with_the_range(opset, hint, tmp_path):
    path = _save(_relu(opset), tmp_path)
    newest = onnx.defs.onnx_opset_version()
    result = CliRunner().invoke(cli, ["compile", str(path), "--target", "x86-host", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: ai.onnx opset {opset} is outside the supported range 7..{newest}; {hint}")


def test_unknown_domain_is_named(tmp_path):
    path = _save(_relu(17, domain="com.example"), tmp_path)
    with pytest.raises(ModelError, match=r"ops of unknown domain\(s\): com.example \(Foo\); the importer knows "):
        import_model(path)


def test_minus_one_dims_are_dynamic_and_input_shape_fixes_them(tmp_path):
    # Paddle2ONNX writes dynamic dims as -1; before, --input-shape said "dim 0 is fixed to -1 in the model".
    path = _save(_relu(17, dims=(-1, 3)), tmp_path)
    with pytest.raises(ModelError, match=r"input shape needed: x \('\?', 3\) \(e.g. --input-shape x=1,3\)"):
        import_model(path)
    assert import_model(path, {"x": (5, 3)}).outputs[0].shape == (5, 3)


# ------------------------------------------------------------------------------------------ control flow


def _loop_model(trip_input=False):
    """v = v0; repeat M times: v = v + x * i, with every v stacked as a scan output."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Cast", ["i"], ["fi"], to=T.FLOAT),
         helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("Add", ["v_in", "xi"], ["v_out"]),
         helper.make_node("Identity", ["v_out"], ["scan"])], "body",
        [vi("i", T.INT64, []), vi("cond_in", T.BOOL, []), vi("v_in", T.FLOAT, [2, 3])],
        [vi("cond_out", T.BOOL, []), vi("v_out", T.FLOAT, [2, 3]), vi("scan", T.FLOAT, [2, 3])])
    inputs = [vi("x", T.FLOAT, [2, 3]), vi("v0", T.FLOAT, [2, 3])] + ([vi("M", T.INT64, [])] if trip_input else [])
    inits = [] if trip_input else [onnx.numpy_helper.from_array(np.array(4, np.int64), "M")]
    graph = helper.make_graph([helper.make_node("Loop", ["M", "", "v0"], ["v", "scans"], body=body, name="accumulate")],
                              "loop", inputs, [vi("v", T.FLOAT, [2, 3]), vi("scans", T.FLOAT, [4, 2, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_loop_with_constant_trip_count_is_unrolled_and_matches_onnxruntime(tmp_path):
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32), "v0": rng.standard_normal((2, 3)).astype(np.float32)}
    ours, theirs = run_both(_loop_model(), feeds, tmp_path)
    assert_close(ours, theirs)


def test_loop_with_run_time_trip_count_is_refused_naming_the_node(tmp_path):
    path = _save(_loop_model(trip_input=True), tmp_path)
    with pytest.raises(ShapeInputError, match=r"input\(s\) 'M' \(Loop 'accumulate' operand 0\) set shapes or "
                                              r"constants the compiled code needs: .*; freeze them: --freeze-input M=VALUE"):
        import_model(path)
    assert import_model(path, frozen_inputs={"M": [4]}).outputs[1].shape == (4, 2, 3)


def test_loop_whose_body_decides_when_to_stop_is_refused_naming_the_node(tmp_path):
    model = _loop_model()
    body = model.graph.node[0].attribute[0].g
    body.node[0].CopyFrom(helper.make_node("ReduceMax", ["v_in"], ["m"], keepdims=0))
    body.node.insert(1, helper.make_node("Less", ["m", "x_limit"], ["cond_out"]))
    body.initializer.append(onnx.numpy_helper.from_array(np.array(3.0, np.float32), "x_limit"))
    path = _save(model, tmp_path)
    with pytest.raises(ModelError, match=r"Loop node 'accumulate': its body computes the continue condition, so the "
                                         r"number of iterations is known only at run time; such loops are not unrolled"):
        import_model(path)


def test_scan_is_unrolled_and_matches_onnxruntime(tmp_path):
    # Running sum over the sequence axis, scanned in reverse, outputs stacked on axis 1.
    body = helper.make_graph([helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
                              helper.make_node("Identity", ["s_out"], ["y_t"])], "body",
                             [vi("s_in", T.FLOAT, [3]), vi("x_t", T.FLOAT, [3])],
                             [vi("s_out", T.FLOAT, [3]), vi("y_t", T.FLOAT, [3])])
    node = helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], body=body, num_scan_inputs=1,
                            scan_input_directions=[1], scan_output_axes=[1])
    graph = helper.make_graph([node], "scan", [vi("s0", T.FLOAT, [3]), vi("xs", T.FLOAT, [5, 3])],
                              [vi("s", T.FLOAT, [3]), vi("ys", T.FLOAT, [3, 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rng = np.random.default_rng(1)
    feeds = {"s0": rng.standard_normal(3).astype(np.float32), "xs": rng.standard_normal((5, 3)).astype(np.float32)}
    ours, theirs = run_both(model, feeds, tmp_path)
    assert_close(ours, theirs)
