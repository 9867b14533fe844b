"""Log-mel features as fixed matrices, inside the ONNX model, and a torch CNN written out as ONNX nodes.

The feature extraction is part of every audio model these packs ship: the model's input is raw audio
(``audio``, shape (1, samples), float32 at 16 kHz) and its first layers compute log-mel energies with constant
weights, so the board runs the front end too, compiled by TVM like the rest, and needs no DSP code of its own:

    audio (1, L) -> Reshape (1, 1, 1, L)
      -> Conv "stft"  (2F, 1, 1, 400), stride 160: a Hann-windowed DFT (cos and -sin rows), 25 ms / 10 ms frames
      -> Mul (square) -> Conv "mel" (40, 2F, 1, 1): [mel | mel] sums re^2 + im^2 per mel band (HTK, 20-7,600 Hz)
      -> Add 1e-6 -> Log -> Transpose (1, 1, 40, T) -> (x - mean) * inv_std per band (from the training set)

Why a convolution and not ONNX's STFT / MelWeightMatrix ops: TVM 0.27's importer has no STFT converter, and a
DFT written as a strided convolution is an op every board and the quantizer already know. F = 201 bins
(0..8 kHz), T = (L - 400) // 160 + 1 frames (98 for one second).

:func:`log_mel` computes the same features in numpy (training uses it), :func:`frontend_nodes` writes the
ONNX nodes, :func:`torch_nodes` appends a trained ``torch.nn.Sequential`` (Conv2d, BatchNorm2d folded into the
conv before it, ReLU, Sigmoid, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Linear, Dropout skipped).
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_FFT", "HOP", "N_MELS", "frames", "stft_matrix", "mel_matrix", "log_mel", "frontend_nodes",
           "torch_nodes", "make_model"]

N_FFT, HOP, N_MELS = 400, 160, 40
_BINS = N_FFT // 2 + 1
_RATE = 16000


def frames(samples: int) -> int:
    """Number of feature frames for a clip of ``samples`` samples."""
    return (samples - N_FFT) // HOP + 1


def stft_matrix() -> np.ndarray:
    """(2F, N_FFT): Hann-windowed DFT rows, cosines then negative sines."""
    n = np.arange(N_FFT)
    k = np.arange(_BINS)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)
    angle = 2 * np.pi * k * n / N_FFT
    return np.concatenate([np.cos(angle) * window, -np.sin(angle) * window]).astype(np.float32)


def mel_matrix(low: float = 20.0, high: float = 7600.0) -> np.ndarray:
    """(N_MELS, 2F): triangular HTK-mel filters over the F power bins, repeated for the re and im halves."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(low), mel(high), N_MELS + 2))
    freqs = np.linspace(0, _RATE / 2, _BINS)
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:, None] - edges[1:-1, None])
    filters = np.maximum(0.0, np.minimum(lower, upper))
    return np.concatenate([filters, filters], axis=1).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(N, L) audio -> (N, 1, N_MELS, T) log-mel energies, as the ONNX front end computes them (unnormalized)."""
    audio = np.asarray(audio, np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(audio, N_FFT, axis=1)[:, ::HOP]  # (N, T, N_FFT)
    spectrum = windows @ stft_matrix().T                                                   # (N, T, 2F)
    mel = (spectrum * spectrum) @ mel_matrix().T                                           # (N, T, N_MELS)
    return np.log(mel + 1e-6).transpose(0, 2, 1)[:, None].astype(np.float32)


def frontend_nodes(samples: int, mean: np.ndarray, inv_std: np.ndarray):
    """ONNX nodes and initializers from input ``audio`` (1, samples) to normalized ``features`` (1, 1, 40, T)."""
    from onnx import helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.array([1, 1, 1, samples], np.int64), "frontend.shape"),
        numpy_helper.from_array(stft_matrix()[:, None, None, :], "frontend.stft.w"),
        numpy_helper.from_array(mel_matrix()[:, :, None, None], "frontend.mel.w"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "frontend.eps"),
        numpy_helper.from_array(np.asarray(mean, np.float32).reshape(1, 1, N_MELS, 1), "frontend.mean"),
        numpy_helper.from_array(np.asarray(inv_std, np.float32).reshape(1, 1, N_MELS, 1), "frontend.inv_std"),
    ]
    nodes = [
        helper.make_node("Reshape", ["audio", "frontend.shape"], ["frontend.audio4d"], name="frontend_reshape"),
        helper.make_node("Conv", ["frontend.audio4d", "frontend.stft.w"], ["frontend.spectrum"], name="frontend_stft",
                         kernel_shape=[1, N_FFT], strides=[1, HOP]),
        helper.make_node("Mul", ["frontend.spectrum", "frontend.spectrum"], ["frontend.power"], name="frontend_square"),
        helper.make_node("Conv", ["frontend.power", "frontend.mel.w"], ["frontend.mel"], name="frontend_mel",
                         kernel_shape=[1, 1]),
        helper.make_node("Add", ["frontend.mel", "frontend.eps"], ["frontend.mel_eps"], name="frontend_eps"),
        helper.make_node("Log", ["frontend.mel_eps"], ["frontend.logmel"], name="frontend_log"),
        helper.make_node("Transpose", ["frontend.logmel"], ["frontend.logmel_t"], name="frontend_transpose",
                         perm=[0, 2, 1, 3]),
        helper.make_node("Sub", ["frontend.logmel_t", "frontend.mean"], ["frontend.centred"], name="frontend_centre"),
        helper.make_node("Mul", ["frontend.centred", "frontend.inv_std"], ["features"], name="frontend_scale"),
    ]
    return nodes, inits


def torch_nodes(sequential, first: str, last: str, prefix: str = "net"):
    """ONNX nodes + initializers for a trained ``torch.nn.Sequential`` from tensor ``first`` to ``last``.

    Layer names are ``{prefix}_conv1``, ``{prefix}_fc1``, ... (what a quantization YAML's ``exclude_layers``
    matches). Written by hand because torch's ONNX exporter needs the ``onnxscript`` package (not a tvmedge
    dependency) and these layers map one to one onto ONNX ops.
    """
    import torch
    from onnx import helper, numpy_helper

    layers = [m for m in sequential if not isinstance(m, torch.nn.Dropout)]
    nodes, inits, current, count = [], [], first, {}

    def name(kind):
        count[kind] = count.get(kind, 0) + 1
        return f"{prefix}_{kind}{count[kind]}"

    for i, layer in enumerate(layers):
        out = last if i == len(layers) - 1 else f"{prefix}.t{i}"
        if isinstance(layer, torch.nn.BatchNorm2d):
            continue  # folded into the conv before it
        if isinstance(layer, torch.nn.Conv2d):
            w = layer.weight.detach().double().numpy()
            b = layer.bias.detach().double().numpy() if layer.bias is not None else np.zeros(w.shape[0])
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(nxt, torch.nn.BatchNorm2d):
                scale = nxt.weight.detach().double().numpy() / np.sqrt(nxt.running_var.double().numpy() + nxt.eps)
                w = w * scale[:, None, None, None]
                b = (b - nxt.running_mean.double().numpy()) * scale + nxt.bias.detach().double().numpy()
            n = name("conv")
            inits += [numpy_helper.from_array(w.astype(np.float32), f"{n}.w"),
                      numpy_helper.from_array(b.astype(np.float32), f"{n}.b")]
            pads = [p for p in layer.padding] * 2
            nodes.append(helper.make_node("Conv", [current, f"{n}.w", f"{n}.b"], [out], name=n,
                                          kernel_shape=list(layer.kernel_size), strides=list(layer.stride), pads=pads))
        elif isinstance(layer, torch.nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [out], name=name("relu")))
        elif isinstance(layer, torch.nn.Sigmoid):
            nodes.append(helper.make_node("Sigmoid", [current], [out], name=name("sigmoid")))
        elif isinstance(layer, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            kernel = layer.kernel_size if isinstance(layer.kernel_size, tuple) else (layer.kernel_size,) * 2
            stride = layer.stride if isinstance(layer.stride, tuple) else (layer.stride,) * 2
            op = "MaxPool" if isinstance(layer, torch.nn.MaxPool2d) else "AveragePool"
            nodes.append(helper.make_node(op, [current], [out], name=name("pool"), kernel_shape=list(kernel),
                                          strides=list(stride)))
        elif isinstance(layer, torch.nn.AdaptiveAvgPool2d):
            nodes.append(helper.make_node("GlobalAveragePool", [current], [out], name=name("gap")))
        elif isinstance(layer, torch.nn.Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out], name=name("flatten"), axis=1))
        elif isinstance(layer, torch.nn.Linear):
            n = name("fc")
            inits += [numpy_helper.from_array(layer.weight.detach().numpy().astype(np.float32), f"{n}.w"),
                      numpy_helper.from_array(layer.bias.detach().numpy().astype(np.float32), f"{n}.b")]
            nodes.append(helper.make_node("Gemm", [current, f"{n}.w", f"{n}.b"], [out], name=n, transB=1))
        else:
            raise TypeError(f"no ONNX mapping for {type(layer).__name__}")
        current = out
    return nodes, inits


def make_model(nodes, inits, inputs, outputs, doc: str):
    """A checked opset-17 ONNX model from nodes/initializers and ``(name, shape)`` inputs/outputs (float32)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "model", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tvmedge-examples",
                              doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
