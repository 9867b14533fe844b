"""Integer layers in channels-last layout (issue 15, tvmedge.compiler.channels_last): the integer convolutions and
the requantize / residual add / pooling / slicing / concat between them run NHWC, a transpose is inserted only
where a layer that stays NCHW needs one, and every output stays bit-identical."""

from pathlib import Path

import numpy as np
import onnx
import pytest

import tvm
from tvm import relax

from quantized_models import ort_quantize, samples, small_cnn
from tvmedge.compiler.channels_last import integer_layers_channels_last
from tvmedge.compiler.int8 import pad_for_dot_product, match_dot_product_sign
from tvmedge.devices.target import CompileTarget

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def _calls(mod, name) -> list:
    found = []
    relax.analysis.post_order_visit(mod["main"], lambda e: found.append(e) if isinstance(e, relax.Call)
                                    and isinstance(e.op, tvm.ir.Op) and e.op.name == name else None)
    return found


def _arranged(mod, target):
    """The module as the compiler has it just before the layout pass."""
    return pad_for_dot_product(match_dot_product_sign(mod, target), target)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tvmedge.frontend.onnx import import_model

    folder = tmp_path_factory.mktemp("nhwc")
    onnx.save(small_cnn(), folder / "f.onnx")
    calib = np.load(DIGITS / "calib.npz")["input"]
    digits = ort_quantize(DIGITS / "digits_cnn.onnx", folder / "digits.onnx", "qdq", "uint8",
                          [{"input": calib[i:i + 1]} for i in range(16)])
    small = ort_quantize(folder / "f.onnx", folder / "small.onnx", "qdq", "uint8", samples(8))
    return {"small_cnn": import_model(small).mod, "digits": import_model(digits).mod}


def test_integer_convolutions_run_nhwc_with_transposes_only_at_nchw_layers(models):
    target = CompileTarget.resolve("x86-host").tvm_target
    before = _arranged(models["small_cnn"], target)
    after = integer_layers_channels_last(before, target)
    layouts = {(str(c.attrs.data_layout), int(c.attrs.groups)) for c in _calls(after, "relax.nn.conv2d")}
    # every ungrouped integer convolution is NHWC; the depthwise one (no dot-product schedule) stays NCHW
    assert layouts == {("NHWC", 1), ("NCHW", 16)}
    assert not _calls(before, "relax.permute_dims")
    # the image into the first convolution, out of and back into NHWC around the depthwise one: nothing between
    # the NHWC layers (requantize, residual add, max-pool, the channel slices of the padded 1x1 branches, their
    # concat, the global average's sum, the flattening into the classifier)
    assert len(_calls(after, "relax.permute_dims")) == 3
    assert {str(c.attrs.layout) for c in _calls(after, "relax.nn.max_pool2d")} == {"NHWC"}


def test_a_flattened_nhwc_tensor_feeds_the_classifier_with_its_rows_reordered(models):
    target = CompileTarget.resolve("x86-host").tvm_target
    after = integer_layers_channels_last(_arranged(models["digits"], target), target)
    # digits: conv, conv, flatten, fc, fc: the only transpose is the image's
    assert len(_calls(after, "relax.permute_dims")) == 1


@pytest.mark.parametrize("model", ["small_cnn", "digits"])
def test_outputs_are_bit_identical_to_the_nchw_module(models, model):
    target = CompileTarget.resolve("x86-host").tvm_target
    before = _arranged(models[model], target)
    after = integer_layers_channels_last(before, target)
    shape = [int(d) for d in before["main"].params[0].ty.shape.values]
    rng = np.random.default_rng(5)
    feeds = [rng.random(shape, np.float32) for _ in range(3)]
    outputs = []
    for module in (before, after):
        vm = relax.VirtualMachine(tvm.compile(module, target="llvm"), tvm.cpu())
        outputs.append([vm["main"](tvm.runtime.tensor(f)).numpy() for f in feeds])
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))


def test_a_target_without_an_integer_schedule_keeps_nchw(models):
    target = CompileTarget.resolve("licheepi4a").tvm_target  # no vector unit LLVM can use
    before = _arranged(models["small_cnn"], target)
    assert integer_layers_channels_last(before, target) is before


def test_a_float_model_is_left_alone():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 4, 8, 8], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, relax.const(np.ones((8, 4, 3, 3), "float32"))))
            out = bb.emit_output(relax.op.nn.relu(y))
        bb.emit_func_output(out)
    mod = bb.get()
    assert integer_layers_channels_last(mod, CompileTarget.resolve("x86-host").tvm_target) is mod
