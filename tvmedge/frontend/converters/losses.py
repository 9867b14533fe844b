"""``NegativeLogLikelihoodLoss`` and ``SoftmaxCrossEntropyLoss`` (opsets 12/13): models exported with their
loss (training graphs run for evaluation) and onnx's function-expanded cases use them."""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter

__all__ = ["CONVERTERS", "negative_log_likelihood"]


def _text(value, default):
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def negative_log_likelihood(bb, log_prob, target, weight, attr):
    """``-log_prob[n, target[n, ...], ...] * weight[target]``, targets equal to ``ignore_index`` count 0, then
    ``reduction``: none, sum, or mean (divided by the summed weights of the counted targets)."""
    dtype = str(log_prob.ty.dtype)
    target = bb.normalize(relax.op.astype(target, "int64"))
    ignore = attr.get("ignore_index")
    valid = None
    if ignore is not None:
        valid = bb.normalize(relax.op.not_equal(target, relax.const(np.array(int(ignore), np.int64), "int64")))
        target = bb.normalize(relax.op.where(valid, target, relax.const(np.array(0, np.int64), "int64")))
    picked = relax.op.squeeze(relax.op.gather_elements(log_prob, relax.op.expand_dims(target, 1), axis=1), [1])
    if weight is not None:
        w = relax.op.take(weight, target, axis=0)
    else:
        w = relax.op.ones_like(picked)
    if valid is not None:
        w = relax.op.where(valid, w, relax.op.zeros_like(w))
    w = bb.normalize(w)
    loss = bb.normalize(relax.op.negative(relax.op.multiply(picked, w)))
    reduction = _text(attr.get("reduction"), "mean")
    if reduction == "none":
        return loss
    if reduction == "sum":
        return bb.normalize(relax.op.sum(loss))
    if reduction == "mean":
        if weight is None and valid is None:
            return bb.normalize(relax.op.mean(loss))
        return bb.normalize(relax.op.divide(relax.op.sum(loss), relax.op.astype(relax.op.sum(w), dtype)))
    raise ValueError(f"reduction '{reduction}' is not none, sum or mean")


class NegativeLogLikelihoodLoss(OnnxOpConverter):
    """ONNX ``NegativeLogLikelihoodLoss``: input ``[N, C, d...]`` (log-probabilities), target ``[N, d...]``."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        weight = inputs[2] if len(inputs) > 2 else None
        return negative_log_likelihood(bb, inputs[0], inputs[1], weight, attr)


class SoftmaxCrossEntropyLoss(OnnxOpConverter):
    """ONNX ``SoftmaxCrossEntropyLoss``: ``log_softmax`` over axis 1, then the NLL loss; outputs the loss and
    (optionally) the log-probabilities."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        weight = inputs[2] if len(inputs) > 2 else None
        log_prob = bb.normalize(relax.op.nn.log_softmax(inputs[0], axis=1))
        loss = negative_log_likelihood(bb, log_prob, inputs[1], weight, attr)
        return relax.Tuple([loss, log_prob])


CONVERTERS = {"NegativeLogLikelihoodLoss": NegativeLogLikelihoodLoss, "SoftmaxCrossEntropyLoss": SoftmaxCrossEntropyLoss}
