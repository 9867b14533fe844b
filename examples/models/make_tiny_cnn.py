"""Generate ``tiny_cnn.onnx``: a small mobile-style CNN (conv-BN-ReLU, depthwise, pointwise, pool, FC, softmax).

Weights are seeded random numbers (no download, reproducible): the model exercises the compiler and the
runtime, not accuracy. Run: ``python examples/models/make_tiny_cnn.py [--batch N|--dynamic] [-o FILE]``.
``--dynamic`` writes a symbolic batch dim and a PyTorch-style Shape -> Gather -> Concat -> Reshape flatten,
the pattern real exporters produce.
"""

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(batch=1, dynamic=False, seed=0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def weight(name, *shape, scale=None):
        fan_in = int(np.prod(shape[1:])) or 1
        values = rng.standard_normal(shape) * (scale or np.sqrt(2.0 / fan_in))
        return numpy_helper.from_array(values.astype(np.float32), name)

    inits = [
        weight("conv1.w", 16, 3, 3, 3), weight("conv1.b", 16, scale=0.1),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "bn1.scale"),
        numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "bn1.bias"),
        numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "bn1.mean"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "bn1.var"),
        weight("dw.w", 16, 1, 3, 3), weight("pw.w", 32, 16, 1, 1), weight("pw.b", 32, scale=0.1),
        weight("fc.w", 10, 32), weight("fc.b", 10, scale=0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"]),
        helper.make_node("Relu", ["b1"], ["r1"]),
        helper.make_node("Conv", ["r1", "dw.w"], ["d1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Clip", ["d1", "clip.min", "clip.max"], ["r2"]),  # ReLU6, as MobileNet does
        helper.make_node("Conv", ["r2", "pw.w", "pw.b"], ["p1"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["p1"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["g1"]),
    ]
    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "clip.min"),
              numpy_helper.from_array(np.array(6.0, np.float32), "clip.max")]
    if dynamic:  # flatten the way torch.onnx.export writes x.view(x.size(0), -1)
        inits += [numpy_helper.from_array(np.array(0, np.int64), "zero"),
                  numpy_helper.from_array(np.array([0], np.int64), "axes0"),
                  numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
        nodes += [
            helper.make_node("Shape", ["g1"], ["g1.shape"]),
            helper.make_node("Gather", ["g1.shape", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus1"], ["flat.shape"], axis=0),
            helper.make_node("Reshape", ["g1", "flat.shape"], ["f1"]),
        ]
    else:
        nodes.append(helper.make_node("Flatten", ["g1"], ["f1"], axis=1))
    nodes += [
        helper.make_node("Gemm", ["f1", "fc.w", "fc.b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    dim = "batch" if dynamic else batch
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [dim, 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [dim, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tvmedge-examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="examples/models/tiny_cnn.onnx")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dynamic", action="store_true")
    args = parser.parse_args()
    onnx.save(build(args.batch, args.dynamic), args.output)
    print(f"wrote {args.output}")
