"""Quantized models into the compile pipeline: quantize (if asked), import, keep the weights quantized.

``api.compile`` calls :func:`import_model` in place of ``frontend.onnx.import_onnx``; for a float model
without ``quant`` it is exactly ``import_onnx``.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Callable, Optional

__all__ = ["import_model"]


def import_model(model, quant=None, input_shapes=None, progress: Optional[Callable[[str], None]] = None) -> tuple:
    """-> ``(ImportedModel, quantization record for the manifest or None)``.

    ``quant``: a ``QuantConfig`` or the path of its YAML; the model is quantized first. Without it, a model
    that already holds quantized weights (e.g. ``tvmedge quantize``'s output) gets the same treatment so
    its artifact stays small; any other model is imported as it is.
    """
    import onnx

    from ..frontend.onnx import import_onnx, read_onnx
    from .relax import has_quantized_weights, keep_weights_quantized, lower_int4_initializers

    progress = progress or (lambda message: None)
    record = None
    if quant is not None:
        from .quantize import quantize

        result = quantize(model, quant, progress=progress)
        qmodel = result.model
        report = result.report
        record = {"config": report.config, "activations": report.activations,
                  "quantized_model_sha256": hashlib.sha256(qmodel.SerializeToString()).hexdigest(),
                  "layers": {row["name"]: row["bits"] for row in report.layers},
                  "weight_bytes": {"float": report.size["float_weight_bytes"],
                                   "quantized": report.size["quant_weight_bytes"]},
                  "notes": report.notes}
    else:
        qmodel, _ = read_onnx(model)
        if not has_quantized_weights(qmodel):
            return import_onnx(model, input_shapes), None
        record = {"config": None, "note": "model already quantized (QDQ weights)"}
    source_sha = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory(prefix="tvmedge-quant-") as tmp:
        # TVM's importer reads files and cannot read INT4 tensors: give it the INT8-widened copy.
        path = Path(tmp) / f"{Path(model).stem}.q.onnx"
        onnx.save(lower_int4_initializers(qmodel), path)
        imported = import_onnx(path, input_shapes)
    mod, stats = keep_weights_quantized(imported.mod)
    imported.mod = mod
    imported.source_path, imported.source_sha256 = str(model), source_sha
    record["artifact_weights"] = stats
    return imported, record
