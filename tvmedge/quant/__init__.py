"""Quantization: a typed YAML config, calibration, INT8 / INT4 / mixed weights, an accuracy report (issue 6).

>>> from tvmedge.quant import load_config, quantize
>>> result = quantize("examples/digits/digits_cnn.onnx", load_config("examples/digits/quant.yaml"),
...                   evaluate="examples/digits/test.npz")
>>> result.save("digits_cnn.q.onnx"); print(result.report.table())

Pipeline: ``quantize(model, config)`` reads the model (constants folded, opset raised to 13, or 21 for INT4),
finds Conv / Gemm / MatMul layers with constant weights (``exclude_layers`` keeps matching ones float),
treats activations by the config's type (static: calibrated ranges; dynamic: ``DynamicQuantizeLinear``;
weight_only: none), quantizes weights per output channel, symmetric, to INT8 or INT4 (``mixed``: per layer, by
measured sensitivity, to meet a size or accuracy target), and writes a standard QDQ ONNX model plus a report.

How the quantized model runs through TVM, and why this route
-------------------------------------------------------------
TVM 0.27's ONNX importer has no ``QLinearConv`` / ``ConvInteger`` / ``MatMulNBits`` and there are no int8 CPU
kernels to lower to. It does import ``DequantizeLinear`` as ``R.dequantize``, but the build's ``FoldConstant``
evaluates a dequantize of a constant at compile time, so a plain QDQ model compiles to an artifact holding
float weights again (checked in ``tests/frontend/test_frontend_qdq.py``). We keep the standard QDQ ONNX model (it
also runs in ONNX Runtime, which calibration and the report use) and add one Relax rewrite after import
(:mod:`tvmedge.frontend.qdq`, applied by the frontend's import to every model holding quantized weights):

- per-channel scales move out of the reduction (``conv(x, W_int8 * s) = conv(x, float(W_int8)) * s``), so
  the layer kernel only casts each int8 weight as it loads it;
- int8 weights whose values fit 4 bits are packed two per byte, unpacked by a small TIR kernel (TVM cannot
  import ONNX ``INT4`` tensors, so they are widened to INT8 for the importer and re-packed: lossless);
- the cast / unpack is fused with its layer (plus scale, bias, ReLU) into one primitive function whose
  arguments include the activation, which constant folding cannot evaluate.

The artifact's constant pool then holds int8 and packed int4 weights with float32 per-channel scales.
Arithmetic stays float32. Measured on this host (``benchmarks/quant_bench.py``, digits CNN, 2.1 MB of
weights): INT8 artifact 28.8 % of float, mixed 17.5 %; latency 0.61x / 0.67x of float with the no-search
schedule, 0.78x / 0.90x after the quick search — a smaller weight stream, not int8 arithmetic.

The same route serves ``tvmedge compile --quant quant.yaml`` and compiling a model that ``tvmedge quantize``
wrote (:func:`tvmedge.frontend.onnx.import_model`).
"""

from .config import (DynamicQuantConfig, MixedTarget, QuantConfig, StaticQuantConfig, WeightOnlyConfig, load_config,
                     parse_config)
from .quantize import QuantResult, quantize
from .report import QuantReport

__all__ = [
    "QuantConfig",
    "DynamicQuantConfig",
    "StaticQuantConfig",
    "WeightOnlyConfig",
    "MixedTarget",
    "load_config",
    "parse_config",
    "quantize",
    "QuantResult",
    "QuantReport",
]
