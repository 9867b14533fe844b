"""A small image CNN trained in numpy and exported to ONNX: the model of the vision scenario packs.

Why numpy and not torch: torch is an optional extra of tvmedge (a large wheel that setup installs only when
pip finds its CPU build), while numpy is always there; a pack's training must run on every machine that
runs the pack. The network is small enough that numpy trains it in a minute or two on two cores.

Network: ``len(channels)`` blocks of conv3x3 (padding 1, stride 2) + ReLU, then ``head``: ``flatten`` (keeps
where things are: a centred object) or ``max`` (global max pooling: "is there a defect anywhere", the same
wherever it is), a hidden dense layer + ReLU, and a dense layer to the class logits. Input NCHW float32 in 0..1, output ``logits`` (1, classes).
Training: Adam on softmax cross-entropy with cosine decay, deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CNNSpec", "init_params", "forward", "train", "predict", "to_onnx", "count_params", "dihedral"]


@dataclass(frozen=True)
class CNNSpec:
    """Shape of the network: input (channels, size, size), conv widths, hidden units, classes."""

    in_channels: int
    size: int
    channels: tuple
    hidden: int
    classes: int
    head: str = "flatten"  # flatten | max

    @property
    def final_size(self) -> int:
        size = self.size
        for _ in self.channels:
            size = (size + 1) // 2
        return size

    @property
    def flat(self) -> int:
        return self.channels[-1] * (self.final_size ** 2 if self.head == "flatten" else 1)


def _im2col(x, stride):
    """(N, C, H, W) -> (N, OH, OW, C*9): the patches of a 3x3 kernel with padding 1."""
    n, c, _, _ = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride]
    oh, ow = windows.shape[2:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * 9)


def _col2im(cols, shape, stride):
    """Adjoint of :func:`_im2col`: scatter-add patch gradients back to (N, C, H, W)."""
    n, c, h, w = shape
    oh, ow = cols.shape[1:3]
    cols = cols.reshape(n, oh, ow, c, 3, 3)
    grad = np.zeros((n, c, h + 2, w + 2), cols.dtype)
    for i in range(3):
        for j in range(3):
            grad[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols[..., i, j].transpose(0, 3, 1, 2)
    return grad[:, :, 1:-1, 1:-1]


def init_params(spec: CNNSpec, rng) -> dict:
    """He-initialised weights, keyed by the ONNX initializer names."""
    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    p, cin = {}, spec.in_channels
    for i, cout in enumerate(spec.channels):
        p[f"conv{i + 1}.w"], p[f"conv{i + 1}.b"] = he((cout, cin, 3, 3), cin * 9), np.zeros(cout, np.float32)
        cin = cout
    p["fc1.w"], p["fc1.b"] = he((spec.hidden, spec.flat), spec.flat), np.zeros(spec.hidden, np.float32)
    p["fc2.w"] = he((spec.classes, spec.hidden), spec.hidden) * 0.5
    p["fc2.b"] = np.zeros(spec.classes, np.float32)
    return p


def count_params(params: dict) -> int:
    return int(sum(v.size for v in params.values()))


def forward(spec: CNNSpec, p: dict, x, keep: bool = False):
    """Logits of a batch (and the activations backward needs when ``keep``)."""
    cache, a = [], x
    for i, cout in enumerate(spec.channels):
        cols = _im2col(a, 2)
        out = np.maximum(cols @ p[f"conv{i + 1}.w"].reshape(cout, -1).T + p[f"conv{i + 1}.b"], 0)  # NHWC
        cache.append((a.shape, cols, out))
        a = out.transpose(0, 3, 1, 2)
    if spec.head == "max":
        flat = a.max(axis=(2, 3))
    else:
        flat = a.reshape(len(x), -1)  # NCHW flatten, as ONNX's Flatten
    h = np.maximum(flat @ p["fc1.w"].T + p["fc1.b"], 0)
    logits = h @ p["fc2.w"].T + p["fc2.b"]
    return (logits, (cache, flat, h)) if keep else logits


def _backward(spec: CNNSpec, p: dict, state, dlogits) -> dict:
    cache, flat, h = state
    g = {"fc2.w": dlogits.T @ h, "fc2.b": dlogits.sum(0)}
    dh = (dlogits @ p["fc2.w"]) * (h > 0)
    g["fc1.w"], g["fc1.b"] = dh.T @ flat, dh.sum(0)
    da = dh @ p["fc1.w"]
    if spec.head == "max":  # the gradient goes to the first maximum of each channel
        shape, _, out = cache[-1]
        a = out.transpose(0, 3, 1, 2)
        n, c = a.shape[:2]
        where = a.reshape(n, c, -1).argmax(2)
        full = np.zeros((n, c, a.shape[2] * a.shape[3]), da.dtype)
        np.put_along_axis(full, where[..., None], da[..., None], axis=2)
        da = full.reshape(a.shape)
    for i in reversed(range(len(spec.channels))):
        shape, cols, out = cache[i]
        cout = spec.channels[i]
        dout = da.reshape(out.shape[0], cout, *out.shape[1:3]).transpose(0, 2, 3, 1) * (out > 0)
        g[f"conv{i + 1}.w"] = (dout.reshape(-1, cout).T @ cols.reshape(-1, cols.shape[-1])).reshape(
            p[f"conv{i + 1}.w"].shape)
        g[f"conv{i + 1}.b"] = dout.sum((0, 1, 2))
        if i:
            da = _col2im(dout @ p[f"conv{i + 1}.w"].reshape(cout, -1), shape, 2)
    return g


def train(spec: CNNSpec, x, y, *, epochs: int = 20, batch: int = 64, lr: float = 3e-3, weight_decay: float = 1e-4,
          seed: int = 0, augment=None, progress=None) -> dict:
    """Adam on softmax cross-entropy with cosine decay; ``augment(batch, rng)`` (optional) transforms each
    training batch; ``progress(epoch, loss)`` after each epoch."""
    rng = np.random.default_rng(seed)
    p = init_params(spec, rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(val) for k, val in p.items()}
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        rate = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
        losses = []
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb = augment(x[idx], rng) if augment else x[idx]
            logits, state = forward(spec, p, xb, keep=True)
            prob = np.exp(logits - logits.max(1, keepdims=True))
            prob /= prob.sum(1, keepdims=True)
            losses.append(float(-np.log(prob[np.arange(len(idx)), y[idx]] + 1e-9).mean()))
            prob[np.arange(len(idx)), y[idx]] -= 1
            grads = _backward(spec, p, state, prob / len(idx))
            step += 1
            for k in p:
                gk = grads[k] + weight_decay * p[k]
                m[k] = 0.9 * m[k] + 0.1 * gk
                v[k] = 0.999 * v[k] + 0.001 * gk * gk
                update = rate * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
                p[k] -= update.astype(np.float32)
        if progress:
            progress(epoch, float(np.mean(losses)))
    return p


def dihedral(batch, rng):
    """One of the 8 rotations/reflections of the square, drawn per batch: for data whose class does not depend
    on orientation (a scratch is a scratch at any angle), it multiplies the training set by 8 for free."""
    out = np.rot90(batch, int(rng.integers(4)), axes=(2, 3))
    return np.ascontiguousarray(out[..., ::-1] if rng.random() < 0.5 else out)


def predict(spec: CNNSpec, p: dict, x, batch: int = 256) -> np.ndarray:
    return np.concatenate([forward(spec, p, x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def to_onnx(spec: CNNSpec, p: dict, *, name: str, doc: str):
    """The trained network as an ONNX model with batch 1 (static shapes, as edge artifacts use)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(value.astype(np.float32), key) for key, value in p.items()]
    nodes, last = [], "input"
    for i in range(len(spec.channels)):
        nodes += [helper.make_node("Conv", [last, f"conv{i + 1}.w", f"conv{i + 1}.b"], [f"conv{i + 1}.out"],
                                   name=f"conv{i + 1}", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
                  helper.make_node("Relu", [f"conv{i + 1}.out"], [f"relu{i + 1}"], name=f"relu{i + 1}")]
        last = f"relu{i + 1}"
    if spec.head == "max":
        nodes.append(helper.make_node("GlobalMaxPool", [last], ["pooled"], name="global_max_pool"))
        last = "pooled"
    nodes += [
        helper.make_node("Flatten", [last], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.w", "fc1.b"], ["fc1.out"], name="fc1", transB=1),
        helper.make_node("Relu", ["fc1.out"], ["relu_fc1"], name="relu_fc1"),
        helper.make_node("Gemm", ["relu_fc1", "fc2.w", "fc2.b"], ["logits"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, spec.in_channels, spec.size, spec.size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, spec.classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tvmedge-examples")
    model.ir_version = 8
    model.doc_string = doc
    onnx.checker.check_model(model)
    return model
