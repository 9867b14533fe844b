"""Generate ``outlier_mlp.onnx`` and its static int8 version: a model built to break per-tensor int8 at one layer.

``fc1`` writes one channel ~400x larger than the others, so the per-tensor int8 scale of its activations leaves
the other channels a step or two; ``fc2`` ignores that channel and so computes from almost nothing once
quantized. ``tvmedge compare`` must point at ``h2`` (fc2's output) as the first diverging layer. Seeded, no
download. Run: ``python examples/models/make_outlier_mlp.py [-o DIR]`` -> ``DIR/outlier_mlp.onnx``,
``DIR/outlier_mlp-int8.onnx`` (tvmedge's static int8 quantization) and ``DIR/calib.npz``.
"""

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(seed: int = 0) -> tuple:
    """``(model, calibration inputs)``."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((32, 32)) / 6).astype(np.float32)
    w1[:, 0] *= 400
    w2 = (rng.standard_normal((32, 16)) / 6).astype(np.float32)
    w2[0, :] = 0
    w3 = (rng.standard_normal((16, 10)) / 4).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
             helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="fc2"),
             helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
             helper.make_node("MatMul", ["a2", "w3"], ["logits"], name="fc3")]
    graph = helper.make_graph(nodes, "outlier_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, rng.standard_normal((32, 32)).astype(np.float32)


def write(folder) -> tuple:
    """Write the float model, the calibration set and the int8 model into ``folder`` -> their paths."""
    from tvmedge import api
    from tvmedge.quant import parse_config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, calibration = build()
    float_path, int8_path, calib = folder / "outlier_mlp.onnx", folder / "outlier_mlp-int8.onnx", folder / "calib.npz"
    onnx.save(model, float_path)
    np.savez(calib, x=calibration)
    config = parse_config({"quantization": {"type": "static", "bit_width": 8, "calibration_dataset": str(calib)}})
    api.quantize(float_path, config, out=int8_path)
    return float_path, int8_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=".", help="folder to write into")
    for path in write(parser.parse_args().output):
        print(f"wrote {path}")
