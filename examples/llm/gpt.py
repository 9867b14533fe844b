"""A GPT-style decoder (pre-LayerNorm blocks, multi-head attention, GELU MLP, learned positions, separate LM head)
written as two static-shape ONNX graphs with an explicit KV cache, plus the LM package folder tvmedge compiles.

Weights are a dict of numpy arrays whose names are the ONNX initializer names (``train.py`` trains them with torch
under the same names; :func:`random_weights` draws them seeded, e.g. for the >= 100 M-parameter speed variant).

Graphs (every shape static; ``T`` = context, ``P`` = prefill length, ``L`` layers, ``H`` heads, ``D`` head dim):

- ``decode.onnx``: ``tokens`` [1, 1] int64, ``position`` [1] int64, ``past_key.i`` [1, H, D, T] (keys stored
  transposed, so the score MatMul reads them as they are), ``past_value.i`` [1, H, T, D] -> ``logits`` [1, V],
  ``present_key.i``, ``present_value.i`` (the caches with slot ``position`` written; slots after it are masked).
- ``prefill.onnx``: ``tokens`` [1, P] int64 (the prompt, padded), ``length`` [1] int64 (its true length) ->
  ``logits`` [1, V] of the last prompt token and the caches of positions 0..P-1 (zeros after P; padding slots
  hold values that decode masks until it overwrites them).

Standard ONNX ops only (opset 17: Gather, LayerNormalization, MatMul, Add, Mul, Erf, Softmax, Where, Equal,
LessOrEqual, Reshape, Transpose, Concat), so TVM's ONNX importer and ONNX Runtime both take them. Node and
initializer names follow the quantization YAML's conventions: the token embedding is ``embeddings`` (Gather node
and initializer), the LM head MatMul node is ``final_fc``.

    python examples/llm/gpt.py --random --layers 2 --dim 64 -o /tmp/tiny-lm     # a random tiny LM package
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
NEG = -1e9  # additive mask (exp underflows to exactly 0 after Softmax's max subtraction)


@dataclass(frozen=True)
class GPTConfig:
    vocab: int
    context: int = 128  # T: the static maximum context (KV-cache slots)
    prefill: int = 64  # P: the prefill graph's static prompt length
    layers: int = 4
    dim: int = 128
    heads: int = 4
    mlp: int = 4  # hidden = mlp * dim

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def parameters(self) -> int:
        d, h = self.dim, self.mlp * self.dim
        block = 2 * 2 * d + 4 * (d * d + d) + (d * h + h) + (h * d + d)
        return self.vocab * d + self.context * d + self.layers * block + 2 * d + d * self.vocab


def weight_shapes(cfg: GPTConfig) -> dict:
    d, h = cfg.dim, cfg.mlp * cfg.dim
    shapes = {"embeddings": (cfg.vocab, d), "pos_embeddings": (cfg.context, d)}
    for i in range(cfg.layers):
        p = f"layers.{i}."
        shapes.update({p + "ln1.weight": (d,), p + "ln1.bias": (d,)})
        for name in ("q", "k", "v", "o"):
            shapes.update({p + f"attn.{name}.weight": (d, d), p + f"attn.{name}.bias": (d,)})
        shapes.update({p + "ln2.weight": (d,), p + "ln2.bias": (d,), p + "mlp.fc1.weight": (d, h),
                       p + "mlp.fc1.bias": (h,), p + "mlp.fc2.weight": (h, d), p + "mlp.fc2.bias": (d,)})
    shapes.update({"ln_f.weight": (d,), "ln_f.bias": (d,), "final_fc.weight": (d, cfg.vocab)})
    return shapes


def random_weights(cfg: GPTConfig, seed: int = 0) -> dict:
    """GPT-2-like initialisation (normal(0, 0.02), LayerNorm 1/0), seeded: the same weights on every machine."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(cfg).items():
        if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "ln_f.weight":
            weights[name] = np.ones(shape, np.float32)
        elif len(shape) == 1:
            weights[name] = np.zeros(shape, np.float32)
        else:
            weights[name] = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
    return weights


def reference_logits(weights: dict, cfg: GPTConfig, tokens) -> np.ndarray:
    """The model in plain numpy over a whole sequence (causal): logits [len(tokens), V]. The ground truth the
    ONNX graphs (prefill + decode steps) and the torch model are checked against."""
    def ln(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * weights[p + ".weight"] + weights[p + ".bias"]

    def lin(x, p):
        return x @ weights[p + ".weight"] + weights[p + ".bias"]

    from math import erf
    n, H, D = len(tokens), cfg.heads, cfg.head_dim
    x = weights["embeddings"][np.asarray(tokens)] + weights["pos_embeddings"][:n]
    causal = np.triu(np.full((n, n), -np.inf), 1)
    verf = np.vectorize(erf)
    for i in range(cfg.layers):
        p = f"layers.{i}."
        h = ln(x, p + "ln1")
        q, k, v = (lin(h, p + f"attn.{c}").reshape(n, H, D).transpose(1, 0, 2) for c in "qkv")
        s = q @ k.transpose(0, 2, 1) / math.sqrt(D) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        x = x + lin(a.transpose(1, 0, 2).reshape(n, cfg.dim), p + "attn.o")
        m = lin(ln(x, p + "ln2"), p + "mlp.fc1")
        x = x + lin(0.5 * m * (1 + verf(m / math.sqrt(2))), p + "mlp.fc2")
    return ln(x, "ln_f") @ weights["final_fc.weight"]


class _Graph:
    """A small ONNX graph writer: unique value names, initializers from numpy, named nodes."""

    def __init__(self, weights: dict):
        self.nodes, self.inits, self.count = [], {}, 0
        self.weights = weights

    def w(self, name: str) -> str:
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(self.weights[name]), name)
        return name

    def const(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"const.{self.count}"
        self.inits[name] = numpy_helper.from_array(np.asarray(value, dtype), name)
        return name

    def op(self, op_type: str, inputs: list, name: str = None, outputs: int = 1, **attrs):
        self.count += 1
        name = name or f"{op_type.lower()}.{self.count}"
        outs = [f"{name}.out{k}" if outputs > 1 else f"{name}.out" for k in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs if outputs > 1 else outs[0]

    def linear(self, x: str, prefix: str, bias: bool = True) -> str:
        y = self.op("MatMul", [x, self.w(prefix + ".weight")], name=prefix)
        return self.op("Add", [y, self.w(prefix + ".bias")], name=prefix + ".add") if bias else y

    def layer_norm(self, x: str, prefix: str) -> str:
        return self.op("LayerNormalization", [x, self.w(prefix + ".weight"), self.w(prefix + ".bias")],
                       name=prefix, axis=-1, epsilon=1e-5)

    def gelu(self, x: str, prefix: str) -> str:
        # exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as torch.nn.functional.gelu computes it
        e = self.op("Erf", [self.op("Mul", [x, self.const(1 / math.sqrt(2))])], name=prefix + ".erf")
        return self.op("Mul", [self.op("Mul", [x, self.const(0.5)]), self.op("Add", [e, self.const(1.0)])])


def _block(g: _Graph, cfg: GPTConfig, i: int, x: str, seq: int, kind: str, extra: dict) -> tuple:
    """One pre-LN block on x [1, seq, d] -> (x, present_key, present_value)."""
    p, H, D, T = f"layers.{i}.", cfg.heads, cfg.head_dim, cfg.context
    h = g.layer_norm(x, p + "ln1")
    heads = g.const([1, seq, H, D], np.int64)
    q = g.op("Transpose", [g.op("Reshape", [g.linear(h, p + "attn.q"), heads])], perm=[0, 2, 1, 3])
    q = g.op("Mul", [q, g.const(1 / math.sqrt(D))])  # [1, H, seq, D], pre-scaled
    kt = g.op("Transpose", [g.op("Reshape", [g.linear(h, p + "attn.k"), heads])], perm=[0, 2, 3, 1])  # [1,H,D,seq]
    v = g.op("Transpose", [g.op("Reshape", [g.linear(h, p + "attn.v"), heads])], perm=[0, 2, 1, 3])  # [1,H,seq,D]
    if kind == "decode":
        slot = extra["slot"]  # bool [T]: arange(T) == position
        key = g.op("Where", [g.op("Reshape", [slot, g.const([1, 1, 1, T], np.int64)]), kt, f"past_key.{i}"],
                   name=f"cache.{i}.key")
        value = g.op("Where", [g.op("Reshape", [slot, g.const([1, 1, T, 1], np.int64)]), v, f"past_value.{i}"],
                     name=f"cache.{i}.value")
        scores = g.op("Add", [g.op("MatMul", [q, key]), extra["mask"]])  # [1,H,1,T] + [T]
        attn = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), value])
    else:
        scores = g.op("Add", [g.op("MatMul", [q, kt]), extra["mask"]])  # [1,H,P,P] + causal [P,P]
        attn = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        if T > seq:
            key = g.op("Concat", [kt, extra["zeros_key"]], axis=3, name=f"cache.{i}.key")
            value = g.op("Concat", [v, extra["zeros_value"]], axis=2, name=f"cache.{i}.value")
        else:
            key, value = kt, v
    merged = g.op("Reshape", [g.op("Transpose", [attn], perm=[0, 2, 1, 3]), g.const([1, seq, cfg.dim], np.int64)])
    x = g.op("Add", [x, g.linear(merged, p + "attn.o")])
    m = g.linear(g.gelu(g.linear(g.layer_norm(x, p + "ln2"), p + "mlp.fc1"), p + "mlp"), p + "mlp.fc2")
    return g.op("Add", [x, m]), key, value


def build_graph(weights: dict, cfg: GPTConfig, kind: str) -> onnx.ModelProto:
    """The ``decode`` or ``prefill`` ONNX graph of the model (see the module docstring for its IO)."""
    if kind not in ("decode", "prefill"):
        raise ValueError(f"kind must be decode or prefill, not {kind!r}")
    g = _Graph(weights)
    H, D, T, V = cfg.heads, cfg.head_dim, cfg.context, cfg.vocab
    seq = 1 if kind == "decode" else cfg.prefill
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, seq])]
    extra = {}
    if kind == "decode":
        arange = g.const(np.arange(T), np.int64)
        inputs.append(helper.make_tensor_value_info("position", TensorProto.INT64, [1]))
        for i in range(cfg.layers):
            inputs += [helper.make_tensor_value_info(f"past_key.{i}", TensorProto.FLOAT, [1, H, D, T]),
                       helper.make_tensor_value_info(f"past_value.{i}", TensorProto.FLOAT, [1, H, T, D])]
        positions = g.op("Reshape", ["position", g.const([1, 1], np.int64)])
        extra["slot"] = g.op("Equal", [arange, "position"])
        extra["mask"] = g.op("Where", [g.op("LessOrEqual", [arange, "position"]), g.const(0.0), g.const(NEG)])
    else:
        inputs.append(helper.make_tensor_value_info("length", TensorProto.INT64, [1]))
        positions = g.const(np.arange(seq)[None, :], np.int64)
        extra["mask"] = g.const(np.triu(np.full((seq, seq), NEG, np.float32), 1))
        if T > seq:
            extra["zeros_key"] = g.const(np.zeros((1, H, D, T - seq)))
            extra["zeros_value"] = g.const(np.zeros((1, H, T - seq, D)))
    x = g.op("Add", [g.op("Gather", [g.w("embeddings"), "tokens"], name="embeddings"),
                     g.op("Gather", [g.w("pos_embeddings"), positions], name="pos_embeddings")])
    outputs, caches = [], []
    for i in range(cfg.layers):
        x, key, value = _block(g, cfg, i, x, seq, kind, extra)
        caches += [(key, f"present_key.{i}", [1, H, D, T]), (value, f"present_value.{i}", [1, H, T, D])]
    if kind == "prefill":  # only the last prompt token's logits are needed
        last = g.op("Sub", ["length", g.const([1], np.int64)])
        x = g.op("Gather", [x, last], axis=1)  # [1, 1, d]
    logits = g.op("MatMul", [g.layer_norm(x, "ln_f"), g.w("final_fc.weight")], name="final_fc")
    g.nodes.append(helper.make_node("Reshape", [logits, g.const([1, V], np.int64)], ["logits"], name="logits"))
    outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, V]))
    for value, name, shape in caches:
        g.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(g.nodes, f"gpt-{kind}", inputs, outputs, list(g.inits.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tvmedge-gpt")
    model.ir_version = 8
    return model


def write_package(weights: dict, cfg: GPTConfig, vocab: list, out, *, meta: dict = None) -> Path:
    """Write an LM package folder: ``prefill.onnx``, ``decode.onnx`` and ``lm.json`` (the format tvmedge's
    ``compile`` reads for language models: graphs, cache pairs, context, tokenizer)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if len(vocab) != cfg.vocab:
        raise ValueError(f"vocabulary has {len(vocab)} tokens, the config says {cfg.vocab}")
    for kind in ("prefill", "decode"):
        model = build_graph(weights, cfg, kind)
        big = sum(w.nbytes for w in weights.values()) > 1.5e9  # protobuf's 2 GB limit
        onnx.save_model(model, out / f"{kind}.onnx", save_as_external_data=big,
                        location=f"{kind}.onnx.data" if big else None)
    cache = [[f"past_key.{i}", f"present_key.{i}"] for i in range(cfg.layers)] + \
            [[f"past_value.{i}", f"present_value.{i}"] for i in range(cfg.layers)]
    manifest = {"format": "tvmedge-lm", "format_version": 1, "prefill": "prefill.onnx", "decode": "decode.onnx",
                "context": cfg.context, "prefill_length": cfg.prefill, "cache": cache,
                "tokenizer": {"kind": "char", "vocab": list(vocab)},
                "model": {"architecture": "gpt", **asdict(cfg), "parameters": cfg.parameters(), **(meta or {})}}
    (out / "lm.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random", action="store_true", help="random (seeded) weights; the only source here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--prefill", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=96, help="a printable-ASCII vocabulary of this size")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args(argv)
    if not args.random:
        parser.error("only --random is supported here; trained weights come from train.py")
    vocab = [chr(c) for c in range(32, 127)][: args.vocab - 1] + ["\n"]
    cfg = GPTConfig(vocab=len(vocab), context=args.context, prefill=args.prefill, layers=args.layers, dim=args.dim,
                    heads=args.heads)
    write_package(random_weights(cfg, args.seed), cfg, vocab, args.out, meta={"weights": f"random seed {args.seed}"})
    print(f"{args.out}: {cfg.parameters() / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
