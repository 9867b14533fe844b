"""Which ONNX ops TVM's Relax importer can convert, read from the importer's own converter table."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import onnx

__all__ = ["op_histogram", "supported_ops", "unsupported_ops"]

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _nodes(graph: onnx.GraphProto):
    """Every node, including those of If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _nodes(sub)


def _op_name(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"


def op_histogram(model: onnx.ModelProto) -> Counter:
    """Count of each op type (``domain.Op`` outside the default domain), subgraphs included."""
    return Counter(_op_name(node) for node in _nodes(model.graph))


@lru_cache(maxsize=1)
def supported_ops() -> frozenset:
    """Op types the importer converts: TVM 0.27's own converters and tvmedge's (``frontend.converters``)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    from .converters import register
    from .qoperator import FLOAT_FALLBACK_OPS

    register()
    # If is converted by the importer itself (a Relax If), not through the map; the quantized operators without
    # an integer kernel are expanded to float ops before import (qoperator).
    return frozenset(onnx_frontend._get_convert_map()) | {"If"} | set(FLOAT_FALLBACK_OPS)


def unsupported_ops(model: onnx.ModelProto) -> Counter:
    """Every op in the model the importer cannot convert, with its count (all listed at once)."""
    known = supported_ops()
    return Counter({op: n for op, n in op_histogram(model).items() if op not in known})
