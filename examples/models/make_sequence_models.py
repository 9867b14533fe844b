"""Generate two sequence models of the kinds users bring: a streaming LSTM and a transformer attention block.

* ``streaming_lstm.onnx`` — a keyword-spotting-style stateful LSTM: one chunk of audio features in
  (``features [chunk, 1, 40]``), the LSTM state in (``h_in``, ``c_in`` ``[1, 1, 64]``), per-frame scores
  (``scores [chunk, 1, 12]``) and the state for the next chunk out (``h_out``, ``c_out``).
* ``attention_block.onnx`` — a pre-norm transformer block as ONNX Runtime's transformer optimizer writes it,
  with ``com.microsoft`` ops: SkipLayerNormalization, Q/K/V projections, RotaryEmbedding, causal
  MultiHeadAttention, output projection (``x``, ``residual`` ``[1, 16, 64]`` in; ``y`` and the new
  ``residual_out`` out).

Weights are seeded random numbers (no download, reproducible). Run:
``python examples/models/make_sequence_models.py [-o FOLDER]``.
"""

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def _init(rng, name, *shape, scale=None):
    fan_in = shape[-1] if len(shape) > 1 else 1
    values = rng.standard_normal(shape) * (scale if scale is not None else 1.0 / np.sqrt(fan_in))
    return numpy_helper.from_array(values.astype(np.float32), name)


def streaming_lstm(chunk=16, features=40, hidden=64, classes=12, seed=0) -> onnx.ModelProto:
    """One LSTM layer with its state as inputs and outputs, then a per-frame linear classifier."""
    rng = np.random.default_rng(seed)
    inits = [_init(rng, "W", 1, 4 * hidden, features), _init(rng, "R", 1, 4 * hidden, hidden),
             _init(rng, "B", 1, 8 * hidden, scale=0.1), _init(rng, "fc.w", hidden, classes),
             _init(rng, "fc.b", classes, scale=0.1),
             numpy_helper.from_array(np.array([1], np.int64), "dir_axis")]
    nodes = [
        helper.make_node("LSTM", ["features", "W", "R", "B", "", "h_in", "c_in"], ["y", "h_out", "c_out"],
                         hidden_size=hidden),
        helper.make_node("Squeeze", ["y", "dir_axis"], ["frames"]),          # [chunk, 1, hidden]
        helper.make_node("MatMul", ["frames", "fc.w"], ["logits"]),
        helper.make_node("Add", ["logits", "fc.b"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "streaming_lstm",
        [helper.make_tensor_value_info("features", F, [chunk, 1, features]),
         helper.make_tensor_value_info("h_in", F, [1, 1, hidden]),
         helper.make_tensor_value_info("c_in", F, [1, 1, hidden])],
        [helper.make_tensor_value_info("scores", F, [chunk, 1, classes]),
         helper.make_tensor_value_info("h_out", F, [1, 1, hidden]),
         helper.make_tensor_value_info("c_out", F, [1, 1, hidden])],
        inits)
    return _finish(graph, [])


def attention_block(seq=16, hidden=64, heads=4, seed=0) -> onnx.ModelProto:
    """SkipLayerNorm -> Q/K/V -> rotary on Q and K -> causal multi-head attention -> output projection."""
    rng = np.random.default_rng(seed)
    head = hidden // heads
    angles = np.arange(seq)[:, None] / (10000 ** (np.arange(head // 2)[None, :] * 2 / head))
    inits = [_init(rng, "ln.gamma", hidden, scale=0.1), _init(rng, "ln.beta", hidden, scale=0.1),
             _init(rng, "ln.bias", hidden, scale=0.1),
             _init(rng, "q.w", hidden, hidden), _init(rng, "k.w", hidden, hidden), _init(rng, "v.w", hidden, hidden),
             _init(rng, "o.w", hidden, hidden), _init(rng, "o.b", hidden, scale=0.1),
             numpy_helper.from_array(np.cos(angles).astype(np.float32), "cos"),
             numpy_helper.from_array(np.sin(angles).astype(np.float32), "sin"),
             numpy_helper.from_array(np.arange(seq, dtype=np.int64).reshape(1, seq), "positions")]
    ms = "com.microsoft"
    nodes = [
        helper.make_node("SkipLayerNormalization", ["x", "residual", "ln.gamma", "ln.beta", "ln.bias"],
                         ["normed", "", "", "residual_out"], domain=ms, epsilon=1e-5),
        helper.make_node("MatMul", ["normed", "q.w"], ["q"]),
        helper.make_node("MatMul", ["normed", "k.w"], ["k"]),
        helper.make_node("MatMul", ["normed", "v.w"], ["v"]),
        helper.make_node("RotaryEmbedding", ["q", "positions", "cos", "sin"], ["q_rot"], domain=ms, num_heads=heads),
        helper.make_node("RotaryEmbedding", ["k", "positions", "cos", "sin"], ["k_rot"], domain=ms, num_heads=heads),
        helper.make_node("MultiHeadAttention", ["q_rot", "k_rot", "v"], ["attn"], domain=ms, num_heads=heads,
                         unidirectional=1),
        helper.make_node("MatMul", ["attn", "o.w"], ["proj"]),
        helper.make_node("Add", ["proj", "o.b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "attention_block",
        [helper.make_tensor_value_info("x", F, [1, seq, hidden]),
         helper.make_tensor_value_info("residual", F, [1, seq, hidden])],
        [helper.make_tensor_value_info("y", F, [1, seq, hidden]),
         helper.make_tensor_value_info("residual_out", F, [1, seq, hidden])],
        inits)
    return _finish(graph, [helper.make_opsetid(ms, 1)])


def _finish(graph, extra_opsets) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)] + extra_opsets,
                              producer_name="tvmedge-examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=str(Path(__file__).parent), help="folder to write into")
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name, model in (("streaming_lstm", streaming_lstm()), ("attention_block", attention_block())):
        onnx.save(model, out / f"{name}.onnx")
        print(f"wrote {out / name}.onnx")


if __name__ == "__main__":
    main()
