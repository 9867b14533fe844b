"""Weights lifted out of a library and written once (issue 16: an LM artifact's two graphs share one copy)."""

import json
import struct

import numpy as np
import pytest

from tvmedge.compiler.weights import MIN_LIFT_BYTES, lift_weights, weight_name, write_safetensors
from tvmedge.runtime.weights import load_weights


def test_weight_names_are_content_hashes():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert weight_name(a) == weight_name(a.copy()) and len(weight_name(a)) == 65
    # same bytes, another shape or dtype: another tensor
    assert weight_name(a) != weight_name(a.reshape(4, 3)) != weight_name(a.view(np.int32))


def test_safetensors_round_trip_is_the_standard_layout(tmp_path):
    tensors = {weight_name(a): a for a in (np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32),
                                           np.arange(40, dtype=np.uint8), np.array([True, False]))}
    path = write_safetensors(tmp_path / "w.safetensors", tensors, {"format": "test"})
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    assert header["__metadata__"] == {"format": "test"} and (8 + size) % 8 == 0
    assert sorted(k for k in header if k != "__metadata__") == sorted(tensors)
    loaded = load_weights(path, make=lambda array: array.copy())
    assert loaded.nbytes == sum(a.nbytes for a in tensors.values())
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], array)


def test_lift_makes_constants_parameters_and_dedupes_them():
    # Only the compiler's side: a weight read twice is one parameter; scalars stay constants.
    import tvm
    from tvm import relax

    w = np.random.default_rng(1).standard_normal((16, 16)).astype(np.float32)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 16], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.matmul(x, relax.const(w)))
            z = bb.emit(relax.op.matmul(y, relax.const(w)))
            out = bb.emit_output(relax.op.add(z, relax.const(np.float32(1.0))))
        bb.emit_func_output(out)
    store = {}
    lifted = lift_weights(bb.get(), store)
    params = lifted["main"].params
    assert [str(p.name) for p in params] == ["x", weight_name(w)] and list(store["weights"]) == [weight_name(w)]
    assert int(lifted["main"].attrs["num_input"]) == 1 and w.nbytes >= MIN_LIFT_BYTES
    ex = tvm.compile(lifted, target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    x_value = np.ones((1, 16), np.float32)
    out = vm["main"](tvm.runtime.tensor(x_value), tvm.runtime.tensor(w)).numpy()
    np.testing.assert_allclose(out, x_value @ w @ w + 1, rtol=1e-5)
