"""Running ONNX models while quantizing: calibration, sensitivity and the accuracy report.

ONNX Runtime (the ``peer`` extra), with graph optimizations off so that a QDQ model runs as written
(dequantize -> float op), which is also what the TVM artifact computes. Calibration runs many samples
through many model variants, where compiling each with TVM would cost seconds; the test suite checks the
artifacts against these figures. onnx's reference evaluator is no substitute: it has no DequantizeLinear
before opset 19. Weight-only INT8 / INT4 without ``--evaluate`` runs nothing and needs no engine.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ModelError, ToolchainError

__all__ = ["Engine", "outputs_of", "top1", "relative_error"]


class Engine:
    """One ONNX model ready to run; ``extra_outputs`` exposes intermediate tensors (for calibration)."""

    def __init__(self, model, extra_outputs: Optional[list] = None):
        if extra_outputs:
            model = _with_outputs(model, extra_outputs)
        self.output_names = [o.name for o in model.graph.output]
        data = model.SerializeToString()
        try:
            import onnxruntime as ort
        except ImportError:
            raise ToolchainError("quantization runs the model with ONNX Runtime to calibrate and evaluate; "
                                 "install it: pip install onnxruntime (or tvmedge[peer])") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT's own exception types
            raise ModelError(f"ONNX Runtime cannot load the model: {str(err).splitlines()[0][:300]}") from err
        self.name = f"onnxruntime {ort.__version__} (graph optimizations off)"

    def run(self, feed: dict) -> list:
        """All outputs (graph outputs, then the extra ones) for one input dict."""
        return self._session.run(self.output_names, feed)


def _with_outputs(model, names: list):
    """A copy of ``model`` that also outputs ``names`` (typed from shape inference where known)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    except Exception:  # inference is best effort here
        types = {}
    present = {o.name for o in model.graph.output}
    for name in names:
        if name in present:
            continue
        info = types.get(name)
        if info is not None:
            model.graph.output.append(info)
        else:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
        present.add(name)
    return model


def outputs_of(engine: Engine, samples) -> np.ndarray:
    """The first output over all samples, stacked along the batch axis."""
    return np.concatenate([np.asarray(engine.run(sample)[0]) for sample in samples])


def top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose arg-max over the last axis equals the label."""
    predicted = outputs.reshape(len(labels), -1).argmax(axis=1)
    return float((predicted == labels).mean())


def relative_error(outputs: np.ndarray, reference: np.ndarray) -> float:
    """``||outputs - reference|| / ||reference||`` (0 for identical outputs)."""
    denominator = float(np.linalg.norm(reference)) or 1.0
    return float(np.linalg.norm(outputs.astype(np.float64) - reference) / denominator)
