"""The activation sign each target's int8 dot-product instruction wants (issue 15): u8 x s8 on x86 (VNNI),
s8 x s8 on aarch64 (SDOT). The shift by 128 must leave every output bit-identical, padding included."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from quantized_models import ort_quantize, samples, small_cnn

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def _activation_dtypes(mod) -> set:
    """dtypes of the data operand of every integer conv / matmul in ``main``."""
    import tvm
    from tvm import relax

    found = set()

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) \
                and expr.op.name in ("relax.nn.conv2d", "relax.matmul") and str(expr.ty.dtype) == "int32":
            found.add(str(expr.args[0].ty.dtype))

    relax.analysis.post_order_visit(mod["main"], visit)
    return found


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from tvmedge.frontend.onnx import import_model

    folder = tmp_path_factory.mktemp("int8")
    onnx.save(small_cnn(), folder / "f.onnx")
    return {act: import_model(ort_quantize(folder / "f.onnx", folder / f"{act}.onnx", "qdq", act, samples(8)))
            for act in ("uint8", "int8")}


@pytest.mark.parametrize("board, want", [("x86-host", "uint8"), ("rk3588", "int8"), ("bananapi-f3", None)])
@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_activations_take_the_sign_of_the_targets_dot_product_and_outputs_stay_bit_identical(
        imported, board, want, activations):
    import tvm
    from tvm import relax

    from tvmedge.compiler.int8 import match_dot_product_sign, preferred_activation
    from tvmedge.devices.target import CompileTarget

    target = CompileTarget.resolve(board).tvm_target
    assert preferred_activation(target) == want
    mod = imported[activations].mod
    moved = match_dot_product_sign(mod, target)
    assert _activation_dtypes(mod) == {activations}  # the imported module is left as it was
    assert _activation_dtypes(moved) == {want or activations}
    if want is None or want == activations:
        assert moved is mod  # nothing to move: the very same module
        return
    # run both on this host: the shift is integer arithmetic, so the outputs must be identical
    feeds = samples(6, seed=3)
    outputs = []
    for module in (mod, moved):
        vm = relax.VirtualMachine(tvm.compile(module, target="llvm"), tvm.cpu())
        outputs.append([vm["main"](tvm.runtime.tensor(f["input"])).numpy() for f in feeds])
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))
