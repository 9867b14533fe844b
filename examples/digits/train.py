"""Train ``digits_cnn.onnx``: a small CNN on scikit-learn's bundled 8x8 handwritten digits, in numpy.

Real data for measuring quantization (issue 6): the model is trained here, with a fixed seed, and the
held-out test split is never used for training or calibration.

Data (1,797 images of 10 digits, pixel values 0..16, scaled to 0..1):
  - test  30 % (540 images, stratified)  -> ``test.npz``   only for measuring accuracy
  - calib 256 images of the training part -> ``calib.npz`` for calibration and mixed-precision sensitivity
  - train the other 1,001 images           (not written: the model is what they produce)
Each .npz holds ``input`` (N, 1, 8, 8) float32 and ``labels`` (N,) int64.

Model: conv3x3(1->16)+ReLU, conv3x3 stride 2 (16->32)+ReLU, flatten 512, fc1 512->1024+ReLU,
final_fc 1024->10 (logits). ~540k weights (2.2 MB float): a wide classifier head as in VGG-style nets,
so that the weights, not TVM's generated code, dominate the compiled artifact's size.

Run (about 45 s on 2 cores): ``python examples/digits/train.py`` (needs scikit-learn for the data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0


def load_splits(seed: int = SEED):
    """``(train, calib, test)``: each a tuple ``(x (N,1,8,8) float32, y (N,) int64)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    x_train, x_calib, y_train, y_calib = train_test_split(x_rest, y_rest, test_size=256, random_state=seed,
                                                          stratify=y_rest)
    return (x_train, y_train), (x_calib, y_calib), (x_test, y_test)


# --- a tiny numpy CNN ------------------------------------------------------------------------------

def _im2col(x, stride):
    """(N, C, H, W) -> (N, OH, OW, C*9) patches of a 3x3 kernel with padding 1."""
    n, c, h, w = x.shape
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


def init_params(rng):
    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "conv1.w": he((16, 1, 3, 3), 9), "conv1.b": np.zeros(16, np.float32),
        "conv2.w": he((32, 16, 3, 3), 144), "conv2.b": np.zeros(32, np.float32),
        "fc1.w": he((1024, 512), 512), "fc1.b": np.zeros(1024, np.float32),
        "final_fc.w": he((10, 1024), 1024) * 0.5, "final_fc.b": np.zeros(10, np.float32),
    }


def forward(p, x, keep=False):
    n = x.shape[0]
    c1 = _im2col(x, 1)
    a1 = np.maximum(c1 @ p["conv1.w"].reshape(16, -1).T + p["conv1.b"], 0)          # (N, 8, 8, 16)
    a1n = a1.transpose(0, 3, 1, 2)
    c2 = _im2col(a1n, 2)
    a2 = np.maximum(c2 @ p["conv2.w"].reshape(32, -1).T + p["conv2.b"], 0)          # (N, 4, 4, 32)
    flat = a2.transpose(0, 3, 1, 2).reshape(n, -1)                                   # NCHW flatten, as ONNX
    h = np.maximum(flat @ p["fc1.w"].T + p["fc1.b"], 0)
    logits = h @ p["final_fc.w"].T + p["final_fc.b"]
    return (logits, (x, c1, a1, a1n, c2, a2, flat, h)) if keep else logits


def backward(p, cache, dlogits):
    x, c1, a1, a1n, c2, a2, flat, h = cache
    n = x.shape[0]
    g = {"final_fc.w": dlogits.T @ h, "final_fc.b": dlogits.sum(0)}
    dh = (dlogits @ p["final_fc.w"]) * (h > 0)
    g["fc1.w"], g["fc1.b"] = dh.T @ flat, dh.sum(0)
    da2 = (dh @ p["fc1.w"]).reshape(n, 32, 4, 4).transpose(0, 2, 3, 1) * (a2 > 0)
    g["conv2.w"] = (da2.reshape(-1, 32).T @ c2.reshape(-1, 144)).reshape(32, 16, 3, 3)
    g["conv2.b"] = da2.sum((0, 1, 2))
    dc2 = da2 @ p["conv2.w"].reshape(32, -1)
    da1 = _col2im(dc2, a1n.shape, 2).transpose(0, 2, 3, 1) * (a1 > 0)
    g["conv1.w"] = (da1.reshape(-1, 16).T @ c1.reshape(-1, 9)).reshape(16, 1, 3, 3)
    g["conv1.b"] = da1.sum((0, 1, 2))
    return g


def train(x, y, *, epochs=40, batch=64, lr=2e-3, weight_decay=1e-4, seed=SEED):
    """Adam on softmax cross-entropy; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(val) for k, val in p.items()}
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        rate = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))  # cosine decay
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb = x[idx] + rng.normal(0, 0.05, x[idx].shape).astype(np.float32)  # light input noise
            logits, cache = forward(p, xb, keep=True)
            prob = np.exp(logits - logits.max(1, keepdims=True))
            prob /= prob.sum(1, keepdims=True)
            prob[np.arange(len(idx)), y[idx]] -= 1
            grads = backward(p, cache, prob / len(idx))
            step += 1
            for k in p:
                gk = grads[k] + weight_decay * p[k]
                m[k] = 0.9 * m[k] + 0.1 * gk
                v[k] = 0.999 * v[k] + 0.001 * gk * gk
                p[k] -= (rate * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)).astype(np.float32)
    return p


def accuracy(p, x, y) -> float:
    return float((forward(p, x).argmax(1) == y).mean())


# --- ONNX export -----------------------------------------------------------------------------------

def to_onnx(p):
    """The trained network as an ONNX model with batch 1 (static shapes, as edge artifacts use)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in p.items()]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["conv1.out"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv1.out"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "conv2.w", "conv2.b"], ["conv2.out"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv2.out"], ["relu2"], name="relu2"),
        helper.make_node("Flatten", ["relu2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.w", "fc1.b"], ["fc1.out"], name="fc1", transB=1),
        helper.make_node("Relu", ["fc1.out"], ["relu3"], name="relu3"),
        helper.make_node("Gemm", ["relu3", "final_fc.w", "final_fc.b"], ["logits"], name="final_fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tvmedge-examples")
    model.ir_version = 8
    model.doc_string = "digits CNN trained by examples/digits/train.py (seed 0); input: 8x8 image / 16"
    onnx.checker.check_model(model)
    return model


def main(argv=None):
    import onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output-dir", default=str(HERE), help="where to write the model and the splits")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_calib, y_calib), (x_test, y_test) = load_splits()
    params = train(x_train, y_train, epochs=args.epochs)
    onnx.save(to_onnx(params), out / "digits_cnn.onnx")
    np.savez_compressed(out / "calib.npz", input=x_calib, labels=y_calib)
    np.savez_compressed(out / "test.npz", input=x_test, labels=y_test)
    print(f"train {len(x_train)}, calib {len(x_calib)}, test {len(x_test)} images; "
          f"accuracy train {accuracy(params, x_train, y_train):.4f}, test {accuracy(params, x_test, y_test):.4f}")
    print(f"wrote {out / 'digits_cnn.onnx'}, {out / 'calib.npz'}, {out / 'test.npz'}")


if __name__ == "__main__":
    main()
