"""Weights outside the library: the constants of a built module lifted to parameters of ``main``, named by content,
and written once as ``weights.safetensors`` (read back by :mod:`tvmedge.runtime.weights`).

Why: an LM artifact is two libraries (prefill and decode) computing with the same weights. Each ``.so`` that embeds
its constants holds a copy, and loading it makes another (the VM deserializes its constant pool into tensors while
the library stays mapped): the 106.7 M-parameter model's fp32 generation peaked at ~3 GB of RSS for 427 MB of
weights. With the weights lifted out, both graphs call ``main(inputs..., weights...)`` with the same tensors,
loaded once from one file.

How:

- The lift runs inside the build, after ``LegalizeOps`` (:func:`lifting_pipeline`): what is lifted is exactly what
  the library would have embedded, after the scheduler's constant folding (a weight transposed or packed at build
  time is stored transposed or packed; INT4 weights stay packed), and legalization has already read any constant
  it needed as a constant.
- Each tensor constant of ``main`` of at least :data:`MIN_LIFT_BYTES` becomes a parameter named
  :func:`weight_name`: ``w`` + the sha256 of its dtype, shape and bytes. Two graphs holding the same weight give it
  the same name, so the LM artifact stores it once; the name is also the runtime's check that the bytes it loads
  are the ones the library was built with. Smaller constants (scalars, epsilons) stay in the library.
- ``num_input`` tells the VM how many leading parameters are the model's inputs.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from ..runtime.weights import SAFETENSORS_DTYPES, WEIGHTS_FILE

__all__ = ["MIN_LIFT_BYTES", "weight_name", "lift_weights", "lifting_pipeline", "write_safetensors", "WEIGHTS_FILE"]

MIN_LIFT_BYTES = 64  # smaller constants (scalars, a LayerNorm epsilon) stay embedded in the library


def weight_name(array: np.ndarray) -> str:
    """``w`` + sha256 of ``dtype:shape:`` and the bytes: the same tensor has the same name in every graph."""
    digest = hashlib.sha256(f"{array.dtype.name}:{list(array.shape)}:".encode())
    digest.update(np.ascontiguousarray(array).data)
    return "w" + digest.hexdigest()


def lift_weights(mod, store: dict, min_bytes: int = MIN_LIFT_BYTES):
    """``mod`` with every tensor constant of ``main`` of ``min_bytes`` or more turned into a parameter appended
    after the inputs; ``store["weights"]`` gets ``{name: numpy array}`` in parameter order (one entry per distinct
    tensor: a constant used twice is one parameter)."""
    import tvm
    from tvm import relax
    from tvm.ir.expr import GenericConst

    func = mod["main"]
    lifted: dict = {}  # name -> (Var, array)

    @relax.expr_functor.mutator
    class _Lift(relax.PyExprMutator):
        def visit_generic_const_(self, op):
            value = getattr(op, "value", None)
            if not isinstance(op, GenericConst) or not hasattr(value, "numpy") or not len(value.shape):
                return op
            array = value.numpy()
            if array.nbytes < min_bytes or array.dtype.name not in SAFETENSORS_DTYPES.values():
                return op
            name = weight_name(array)
            if name not in lifted:
                lifted[name] = (relax.Var(name, relax.TensorType(list(array.shape), array.dtype.name)), array)
            return lifted[name][0]

    body = _Lift().visit_expr(func.body)
    store["weights"] = {name: array for name, (_, array) in lifted.items()}
    if not lifted:
        return mod
    params = list(func.params) + [var for var, _ in lifted.values()]
    new = relax.Function(params, body, func.ret_ty, func.is_pure, func.attrs, func.span)
    new = new.with_attr("num_input", len(func.params))
    mod = mod.clone() if hasattr(mod, "clone") else tvm.IRModule(dict(mod.functions), mod.type_definitions,
                                                                  mod.attrs, mod.global_infos)
    mod["main"] = new
    return mod


def lifting_pipeline(store: dict, then):
    """A Relax build pipeline: TVM's dispatch and ``LegalizeOps``, :func:`lift_weights` (arrays into
    ``store["weights"]``), then ``then`` (the rest of the build: TVM's default pipeline, which repeats the
    legalization as a no-op)."""
    import tvm
    from tvm import relax

    @tvm.transform.module_pass(opt_level=0, name="tvmedge.LiftWeights")
    def lift(mod, _ctx):
        return lift_weights(mod, store)

    return tvm.transform.Sequential([relax.backend.DispatchSampling(), relax.backend.DispatchSortScan(),
                                     relax.transform.LegalizeOps(), lift, then])


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> Path:
    """Write ``tensors`` (name -> numpy array) as a safetensors file (little-endian: an 8-byte header length, the
    JSON header, the tensors' bytes back to back in sorted name order), numpy only."""
    inverse = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    header, offset = {}, 0
    names = sorted(tensors)
    for name in names:
        array = tensors[name]
        header[name] = {"dtype": inverse[array.dtype.name], "shape": [int(d) for d in array.shape],
                        "data_offsets": [offset, offset + int(array.nbytes)]}
        offset += int(array.nbytes)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as the safetensors writer does
    path = Path(path)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)))
        handle.write(raw)
        for name in names:
            array = tensors[name]
            handle.write(np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False)).data)
    return path
