"""Shared by the integer-path tests and benchmarks: a small float CNN that exercises every quantized operator
tvmedge lowers to integers, quantized by ONNX Runtime's own quantizer (QDQ and QOperator formats).

The CNN: strided conv + ReLU, depthwise conv + ReLU6 (Clip), pointwise conv, residual Add + ReLU, MaxPool,
two 1x1 branches concatenated, global average pool, Flatten, Gemm + ReLU, MatMul. Weights are seeded random
numbers (no download).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT = "input"
SHAPE = (1, 3, 16, 16)


def small_cnn(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def w(name, *shape, scale=None):
        fan_in = int(np.prod(shape[1:])) or 1
        return numpy_helper.from_array((rng.standard_normal(shape) * (scale or np.sqrt(2.0 / fan_in)))
                                       .astype(np.float32), name)

    inits = [w("c1.w", 16, 3, 3, 3), w("c1.b", 16, scale=0.1), w("dw.w", 16, 1, 3, 3), w("dw.b", 16, scale=0.1),
             w("pw.w", 16, 16, 1, 1), w("pw.b", 16, scale=0.1), w("ba.w", 8, 16, 1, 1), w("bb.w", 8, 16, 1, 1),
             w("fc.w", 32, 16), w("fc.b", 32, scale=0.1), w("mm.w", 32, 10),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array(6.0, np.float32), "six")]
    n = helper.make_node
    nodes = [
        n("Conv", ["input", "c1.w", "c1.b"], ["c1"], name="c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("Relu", ["c1"], ["r1"], name="r1"),
        n("Conv", ["r1", "dw.w", "dw.b"], ["dw"], name="dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        n("Clip", ["dw", "zero", "six"], ["r2"], name="relu6"),
        n("Conv", ["r2", "pw.w", "pw.b"], ["pw"], name="pw", kernel_shape=[1, 1]),
        n("Add", ["pw", "r1"], ["res"], name="res"),
        n("Relu", ["res"], ["r3"], name="r3"),
        n("MaxPool", ["r3"], ["mp"], name="mp", kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["mp", "ba.w"], ["ba"], name="ba", kernel_shape=[1, 1]),
        n("Conv", ["mp", "bb.w"], ["bb"], name="bb", kernel_shape=[1, 1]),
        n("Concat", ["ba", "bb"], ["cat"], name="cat", axis=1),
        n("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
        n("Flatten", ["gap"], ["flat"], name="flat"),
        n("Gemm", ["flat", "fc.w", "fc.b"], ["fc"], name="fc", transB=1),
        n("Relu", ["fc"], ["r4"], name="r4"),
        n("MatMul", ["r4", "mm.w"], ["output"], name="mm"),
    ]
    graph = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, (1, 10))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def activation_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv -> swish (Sigmoid, Mul) -> LeakyRelu -> AveragePool -> Flatten -> Softmax: ops ONNX Runtime's quantizer
    turns into com.microsoft QLinear* operators that have no integer kernel in tvmedge (float fallback)."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [n("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
             n("Sigmoid", ["c"], ["s"], name="sig"), n("Mul", ["c", "s"], ["m"], name="swish"),
             n("LeakyRelu", ["m"], ["l"], name="leaky", alpha=0.1),
             n("AveragePool", ["l"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="avg"),
             n("Flatten", ["p"], ["f"], name="flat"), n("Softmax", ["f"], ["output"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "activations", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, (1, 3, 8, 8))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, (1, 64))],
                              [numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def samples(count: int, seed: int = 1, shape=SHAPE) -> list:
    rng = np.random.default_rng(seed)
    return [{INPUT: rng.uniform(-1, 1, shape).astype(np.float32)} for _ in range(count)]


def ort_quantize(float_path, out_path, quant_format: str, activations: str, calibration: list, **extra):
    """ONNX Runtime's ``quantize_static`` (per-channel weights, int8 weights; activations ``uint8``/``int8``)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(float_path), str(out_path), Reader(),
                    quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True, **extra)
    model = onnx.load(out_path)
    if model.ir_version < 4:  # an old float model's IR version is kept, but its new initializers are not inputs
        model.ir_version = 7
        onnx.save(model, out_path)
    return out_path


def ort_outputs(path, feeds: list) -> list:
    """ONNX Runtime's outputs with its default optimisations (QDQ groups fused into its integer kernels)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [session.run(None, feed)[0] for feed in feeds]


def ort_u8s8_exact() -> bool:
    """Whether ONNX Runtime's uint8 x int8 kernels compute exact integer products on this CPU.

    On x86 without VNNI, ORT's MLAS multiplies uint8 by int8 with VPMADDUBSW, whose int16 pair sums saturate (ORT's
    quantization guide warns of it): outputs then differ from the integer arithmetic by several steps (measured: 6
    on an AVX2 Zen 3). AVX-VNNI / AVX512-VNNI (and other ISAs) accumulate in int32 and are exact."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def ort_reference(path, feeds: list, *, qdq_twin=None) -> list:
    """The integer arithmetic's outputs, from ONNX Runtime: its fused integer kernels where they are exact on this
    CPU (:func:`ort_u8s8_exact`), else the QDQ form (``path`` itself, or ``qdq_twin`` for a QOperator model quantized
    with the same calibration) run without graph optimisations — DequantizeLinear, the float op, QuantizeLinear —
    which is the same arithmetic up to float rounding ties."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    u8_activations = any(init.data_type == TensorProto.UINT8 for init in model.graph.initializer)
    if ort_u8s8_exact() or not u8_activations:
        return ort_outputs(path, feeds)
    qdq = qdq_twin or path
    if any(n.op_type.startswith("QLinear") or n.op_type == "QGemm" for n in onnx.load(str(qdq)).graph.node):
        raise ValueError(f"{qdq}: a QOperator model needs its QDQ twin as the reference on a CPU without VNNI")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(qdq), options, providers=["CPUExecutionProvider"])
    return [session.run(None, feed)[0] for feed in feeds]
