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

How the quantized model runs through TVM
----------------------------------------
The quantized model stays a standard QDQ ONNX model (ONNX Runtime runs it; calibration and the report use
it). At import (:func:`tvmedge.frontend.onnx.import_model`, for every quantized model):

- layers with 8-bit activations and weights (``static``) compute on integers: :mod:`tvmedge.frontend.qoperator`
  rewrites ``DequantizeLinear -> Conv / Gemm / MatMul [-> Relu] -> QuantizeLinear`` into quantized operators
  (ONNX's ``QLinearConv``, ``ConvInteger``, ...) and :mod:`tvmedge.frontend.converters.quantized` lowers those to
  ``int8 x int8 -> int32`` Relax with the zero points folded into an int32 bias and one requantize (per-channel
  scale, ReLU folded) per layer; a layer whose output stays float is scaled to float32 in the same kernel.
  Per target the activation takes the sign of the CPU's dot-product instruction (:mod:`tvmedge.compiler.int8`:
  VNNI on x86, SDOT on ARM);
- layers that stay float (``weight_only``, ``dynamic``, INT4 weights, excluded layers) keep their int8 / packed
  int4 weights through TVM's build (:mod:`tvmedge.frontend.qdq`): per-channel scales move out of the reduction,
  the weights are cast (or unpacked) inside the layer's own kernel, and constant folding cannot undo it. Each
  such quantized layer is named with its reason in the compile output and the manifest
  (``build.quantization.integer.float_fallback``).

Measured: ``benchmarks/quant_results.md``.

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
