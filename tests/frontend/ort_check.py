"""Shared by the converter tests: build an ONNX model with tvmedge for x86 and compare it with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper


def make_model(nodes, inputs, outputs, initializers=(), opset=22, domains=(), infer_outputs=False,
               feeds=None) -> onnx.ModelProto:
    """A checked model; ``inputs``/``outputs`` are ``(name, elem_type, shape)`` triples (with ``infer_outputs``,
    output names only: their types come from ONNX's shape inference, or ORT run on ``feeds``)."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [] if infer_outputs else [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        list(initializers))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 10
    if infer_outputs:
        model.graph.output.extend(_output_infos(model, outputs, feeds))
    onnx.checker.check_model(model)
    return model


def _output_infos(model, names, feeds) -> list:
    """Output types from ONNX's shape inference, or for ops it does not know (contrib), from one ONNX Runtime
    session on ``feeds`` (ORT does not need output shapes declared)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in inferred.graph.value_info}
    if all(n in known and known[n].type.tensor_type.HasField("shape") for n in names):
        return [known[n] for n in names]
    return _ort_output_infos(model, names, feeds)


def _ort_output_infos(model, names, feeds) -> list:
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    return [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(out.dtype), list(out.shape))
            for name, out in zip(names, session.run(names, feeds))]


def run_both(model: onnx.ModelProto, feeds: dict, tmp_path: Path, *, board: str = "x86-host", ort: bool = True,
             **compile_args):
    """(tvmedge outputs, ONNX Runtime outputs or None), both by output name; the artifact is in ``tmp_path/out``."""
    from tvmedge import api
    from tvmedge.peer import onnxruntime_outputs
    from tvmedge.tune.auto import TuningOptions

    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    api.compile(path, board, out=tmp_path / "out", tuning=TuningOptions(search="naive"), **compile_args)
    ours = api.load(tmp_path / "out").run(feeds) if board == "x86-host" else None
    return ours, (onnxruntime_outputs(path, feeds, threads=1) if ort else None)


def assert_close(ours: dict, theirs: dict, atol: float = 1e-5, rtol: float = 1e-5) -> float:
    """Every ORT output matches ours; returns the largest absolute difference."""
    worst = 0.0
    assert set(theirs) <= set(ours), f"outputs {sorted(ours)} lack {sorted(set(theirs) - set(ours))}"
    for name, ref in theirs.items():
        got = np.asarray(ours[name])
        assert got.shape == ref.shape, f"{name}: shape {got.shape}, ONNX Runtime {ref.shape}"
        np.testing.assert_allclose(got, ref, atol=atol, rtol=rtol, err_msg=name)
        if ref.size:
            worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - ref))))
    return worst
