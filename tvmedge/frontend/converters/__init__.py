"""ONNX op converters that TVM 0.27's Relax importer lacks, written in its own shape.

Each converter is an ``OnnxOpConverter`` subclass with ``_impl_vN`` class methods (N = the opset version
the implementation follows), exactly like the converters in ``tvm.relax.frontend.onnx.onnx_frontend``,
so each one can be moved upstream as it is. :func:`register` adds them to the importer's op map, the one
table its ``_convert_operator`` and ``_check_for_unsupported_ops`` read. TVM keeps that map inside a
function (``_get_convert_map``) with no registration hook, so we wrap the function once; our entries
win where TVM has a converter of the same name that cannot handle the op (e.g. ONNX ``Attention``).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["converters", "qualify_domains", "register"]

_DEFAULT_DOMAINS = ("", "ai.onnx")
# TVM converters written for contrib ops, reached under their qualified name like ours.
_TVM_CONTRIB = ("EmbedLayerNormalization",)


@lru_cache(maxsize=1)
def converters() -> dict:
    """Op type -> converter class, for every op tvmedge converts itself."""
    from . import attention, elementwise, losses, misc, nbits, quantized, recurrent

    table = {}
    for module in (recurrent, attention, losses, misc, elementwise, quantized, nbits):
        table.update(module.CONVERTERS)
    return table


def register() -> None:
    """Make TVM's ONNX importer use our converters too (idempotent)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    original = onnx_frontend._get_convert_map
    if getattr(original, "_tvmedge", False):
        return

    def _get_convert_map():
        table = original()
        table.update({f"com.microsoft.{op}": table[op] for op in _TVM_CONTRIB if op in table})
        table.update(converters())
        return table

    _get_convert_map._tvmedge = True
    onnx_frontend._get_convert_map = _get_convert_map


def qualify_domains(model):
    """A copy of ``model`` whose nodes outside the default domain are named ``domain.Op``.

    TVM's importer looks converters up by op type alone (its own TODO), so ONNX ``Attention`` and
    ``com.microsoft.Attention`` — different ops — would share one converter; qualified names keep them apart
    and let an op of an unknown domain be reported as such instead of being converted as another op.
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in _all_nodes(copy.graph):
        if node.domain not in _DEFAULT_DOMAINS:
            node.op_type = f"{node.domain}.{node.op_type}"
            node.domain = ""
    return copy


def _all_nodes(graph):
    import onnx

    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _all_nodes(sub)
