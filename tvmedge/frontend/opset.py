"""Which operator sets the importer accepts: the ``ai.onnx`` opset range and the known domains.

A model stamped with an opset newer than any the installed onnx defines was imported as if it were the
newest, and an op of a domain nobody implements looked like a missing converter; both are refused here
with the reason, before any work is done.
"""

from __future__ import annotations

from collections import Counter

import onnx

from ..errors import ModelError

__all__ = ["MIN_OPSET", "KNOWN_DOMAINS", "check_opsets", "max_opset", "model_opset"]

# TVM's importer and tvmedge's converters follow the ONNX spec from opset 7 (the recurrent ops' first
# version with today's inputs; older models need onnx.version_converter first).
MIN_OPSET = 7
# Domains with converters (TVM's or ours) or ops onnx itself defines; anything else cannot be imported.
KNOWN_DOMAINS = ("", "ai.onnx", "com.microsoft", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training")


def max_opset() -> int:
    """The newest ``ai.onnx`` opset the installed onnx package defines."""
    return onnx.defs.onnx_opset_version()


def model_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def check_opsets(model: onnx.ModelProto, path) -> None:
    """ModelError unless the model's ai.onnx opset is in ``[MIN_OPSET, max_opset()]`` and every node's domain
    is one the importer knows (the message names the domains and their ops)."""
    opset, newest = model_opset(model), max_opset()
    if opset and not MIN_OPSET <= opset <= newest:
        hint = ("convert it first, e.g. onnx.version_converter.convert_version(model, 13)" if opset < MIN_OPSET
                else "is the file from a newer exporter than the installed onnx? upgrade onnx, or re-export")
        raise ModelError(f"{path}: ai.onnx opset {opset} is outside the supported range {MIN_OPSET}..{newest}; {hint}")
    from .converters import _all_nodes

    unknown = Counter()
    for node in _all_nodes(model.graph):
        if node.domain not in KNOWN_DOMAINS:
            unknown[f"{node.domain} ({node.op_type})"] += 1
    if unknown:
        listed = ", ".join(sorted(unknown))
        raise ModelError(f"{path}: ops of unknown domain(s): {listed}; the importer knows "
                         f"{', '.join(d or 'ai.onnx (default)' for d in KNOWN_DOMAINS if d != 'ai.onnx')}")
