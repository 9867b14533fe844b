"""ONNX Runtime as a peer: the same inputs through ORT, to compare outputs. Never a runtime dependency."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import ModelError, ToolchainError, first_line

__all__ = ["onnxruntime_outputs", "compare_outputs"]


def onnxruntime_outputs(model_path, inputs: Mapping[str, np.ndarray], *, threads: int = 0, name=None) -> dict:
    """Run ``model_path`` (or an ``onnx.ModelProto``, called ``name`` in errors) with ONNX Runtime's CPU provider;
    returns ``{output name: array}``."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ToolchainError("onnxruntime is not installed (pip install onnxruntime); it is needed only for comparisons") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model_path.SerializeToString() if hasattr(model_path, "SerializeToString") else str(model_path)
    name = name or model_path
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(inputs))))
    except Exception as err:  # ORT raises its own Fail/InvalidArgument types
        raise ModelError(f"onnxruntime could not run {name}: {first_line(err)}") from err


def compare_outputs(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
                    rtol: float = 1e-4, atol: float = 1e-4) -> list:
    """Per output: max absolute difference and whether ``|a - b| <= atol + rtol * |b|`` everywhere."""
    rows = []
    for name, value in outputs.items():
        if name not in reference:
            rows.append({"name": name, "max_abs_diff": None, "match": False, "note": "missing in reference"})
            continue
        ref = np.asarray(reference[name])
        if ref.shape != value.shape:
            rows.append({"name": name, "max_abs_diff": None, "match": False,
                         "note": f"shape {value.shape} vs reference {ref.shape}"})
            continue
        a, b = value.astype(np.float64), ref.astype(np.float64)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        match = bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
        rows.append({"name": name, "max_abs_diff": diff, "match": match, "note": ""})
    return rows
