"""Generated MatMul models and MatMulNBits files for the group-wise INT4 tests (seeded; nothing downloaded)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def matmul_model(k: int, n: int, m: int = 1, *, seed: int = 0, rank3: bool = True, name: str = "fc"):
    """``y = x @ W`` with a constant float ``K x N`` weight (opset 17)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    x_shape, y_shape = ([1, m, k], [1, m, n]) if rank3 else ([m, k], [m, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name=name)], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def mlp_model(k: int = 128, hidden: int = 96, n: int = 64, m: int = 4, *, seed: int = 0):
    """Two layers, MatMul + Add bias and ReLU, the second named ``final_fc`` (as the language model names its
    projection): ``x [1, m, k] -> fc1 -> relu -> final_fc (+ b) -> y [1, m, n]``."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((k, hidden)) / np.sqrt(k)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, n)) / np.sqrt(hidden)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(hidden)).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(n)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
             helper.make_node("Relu", ["h1"], ["h"], name="relu"),
             helper.make_node("MatMul", ["h", "w2"], ["z"], name="final_fc"),
             helper.make_node("Add", ["z", "b2"], ["y"], name="final_bias")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, n])],
                              [numpy_helper.from_array(v, name) for v, name in
                               ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def nbits_node_model(k: int, n: int, block_size: int, *, m: int = 1, bits: int = 4, k_attr=None, g_idx=False,
                     seed: int = 0):
    """A hand-made MatMulNBits model (random codes) for the error cases: ``bits`` / ``K`` as given."""
    rng = np.random.default_rng(seed)
    n_blocks = -(-k // block_size)
    blob = block_size * bits // 8
    inits = [numpy_helper.from_array(rng.integers(0, 256, (n, n_blocks, blob)).astype(np.uint8), "B"),
             numpy_helper.from_array(rng.random((n, n_blocks)).astype(np.float32), "scales")]
    inputs = ["x", "B", "scales"]
    if g_idx:
        inits.append(numpy_helper.from_array(np.arange(k, dtype=np.int32) // block_size, "g_idx"))
        inputs += ["", "g_idx"]
    node = helper.make_node("MatMulNBits", inputs, ["y"], name="fc", domain="com.microsoft",
                            K=k if k_attr is None else k_attr, N=n, bits=bits, block_size=block_size)
    graph = helper.make_graph([node], "nbits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def save(model, path):
    onnx.save(model, str(path))
    return path


def ort_run(path, feeds: dict) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
