"""The compile pipeline's front half: an ONNX file in, a Relax module (and what quantization did) out.

The file is read and checked once and folded once (:func:`tvmedge.frontend.onnx.load_onnx`); with ``quant``
the folded model is quantized (:func:`tvmedge.quant.quantize`) and the quantized graph is imported, weights kept
quantized (:func:`tvmedge.frontend.onnx.import_model`); a model that already holds quantized weights (e.g.
``tvmedge quantize``'s output) gets the same treatment.
"""

from __future__ import annotations

from typing import Callable, Optional

__all__ = ["import_for_compile"]


def import_for_compile(model, quant=None, input_shapes=None,
                       progress: Optional[Callable[[str], None]] = None) -> tuple:
    """-> ``(ImportedModel, quantization record for the manifest or None)``.

    ``quant``: a ``QuantConfig`` or the path of its YAML.
    """
    from ..frontend.onnx import import_model, load_onnx

    source = load_onnx(model, input_shapes)
    result = None
    if quant is not None:
        from ..quant.quantize import quantize

        result = quantize(source, quant, progress=progress)
        source = source.with_proto(result.model)
    imported = import_model(source)
    if imported.quantized_weights is None:
        return imported, None
    record = result.manifest_record() if result is not None else \
        {"config": None, "note": "model already quantized (QDQ weights)"}
    record["artifact_weights"] = imported.quantized_weights
    return imported, record
