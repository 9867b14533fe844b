"""Inputs fixed at compile time: ``--freeze-input NAME=VALUE``, and the inputs that must be.

Some inputs only select a mode (a sample rate, a flag) or carry shape data (``axes``, ``shape``, ``k``,
``sizes``, ...). Freezing one turns it into a constant: it leaves the artifact's inputs, and folding
(onnxslim) then removes what it selected — an ``If`` on it keeps one branch, a ``Reshape`` gets a fixed
shape. The frozen values are recorded in the manifest's build block.

An input that sets shapes in the graph (its value decides an output's shape) cannot stay an input of an
artifact with static shapes; :func:`shape_inputs` finds them so the error can say which to freeze.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ConfigError

__all__ = ["freeze_inputs", "parse_frozen_inputs", "shape_inputs"]

# op type -> positions of the inputs whose values decide output shapes (a graph input there must be frozen).
SHAPE_OPERANDS = {
    "Reshape": (1,), "Expand": (1,), "ConstantOfShape": (0,), "Tile": (1,), "Slice": (1, 2, 3, 4),
    "Pad": (1, 3), "Resize": (1, 2, 3), "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "TopK": (1,),
    "Split": (1,), "OneHot": (1,), "Range": (0, 1, 2), "CenterCropPad": (1, 2), "Col2Im": (1, 2),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,),
    "ReduceL1": (1,), "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,), "ReduceSumSquare": (1,),
    "Loop": (0,), "AffineGrid": (1,), "DFT": (1, 2), "STFT": (1, 2, 3),
    # not shapes, but constants the lowering needs (an axis)
    "CumSum": (1,), "CumProd": (1,), "CenterCropPad": (1,),
}


def parse_frozen_inputs(items: Iterable[str]) -> dict:
    """``["rate=16000", "axes=0,2"]`` -> ``{"rate": [16000.0], "axes": [0.0, 2.0]}`` (numbers; shaped and typed
    against the model's input by :func:`freeze_inputs`)."""
    frozen = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            if not sep or not name or not text:
                raise ValueError
            values = [_number(v) for v in text.split(",")]
        except ValueError:
            raise ConfigError(f"--freeze-input '{item}' must look like NAME=VALUE or NAME=V0,V1,... with numbers "
                              "(true/false for booleans)") from None
        frozen[name] = values
    return frozen


def _number(text: str):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    return int(low) if low.lstrip("-").isdigit() else float(low)


def freeze_inputs(model: onnx.ModelProto, frozen: Mapping[str, list]) -> dict:
    """Turn the named graph inputs of ``model`` (in place) into initializers holding the given values.

    Returns ``{name: value as a nested list}`` for the manifest. ConfigError for an unknown input, a count
    that fits neither the input's shape nor a scalar, or a value its dtype cannot hold.
    """
    inits = {init.name for init in model.graph.initializer}
    inputs = {v.name: v for v in model.graph.input if v.name not in inits}
    record = {}
    for name, values in frozen.items():
        if name not in inputs:
            raise ConfigError(f"--freeze-input names unknown input '{name}'; the model's inputs are: {', '.join(inputs)}")
        array = _as_input_array(inputs[name], name, values)
        model.graph.initializer.append(numpy_helper.from_array(array, name))
        record[name] = array.tolist()
    kept = [v for v in model.graph.input if v.name not in frozen]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return record


def _as_input_array(value: onnx.ValueInfoProto, name: str, values: list) -> np.ndarray:
    tensor = value.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tensor.shape.dim]
    if None in dims:  # symbolic dims: only a rank-1 input can take the given count
        if len(dims) != 1:
            raise ConfigError(f"--freeze-input {name}: the input's shape {dims} is not static; fix it with --input-shape")
        dims = [len(values)]
    count = int(np.prod(dims)) if dims else 1
    if len(values) != count:
        raise ConfigError(f"--freeze-input {name}: the input has shape {tuple(dims)} ({count} value(s)), "
                          f"got {len(values)}")
    array = np.array(values).reshape(dims)
    cast = array.astype(dtype)
    if not np.array_equal(cast.astype(np.float64), array.astype(np.float64)):
        raise ConfigError(f"--freeze-input {name}: {values} cannot be held exactly by the input's dtype {dtype}")
    return cast


def shape_inputs(model: onnx.ModelProto) -> dict:
    """Graph inputs whose values decide shapes: ``{input name: "Op's operand i"}`` (first use found)."""
    inits = {init.name for init in model.graph.initializer}
    inputs = {v.name for v in model.graph.input if v.name not in inits}
    found = {}
    for node in model.graph.node:
        for position in SHAPE_OPERANDS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position] in inputs:
                found.setdefault(node.input[position], f"{node.op_type} '{node.name or node.output[0]}' operand {position}")
    return found
