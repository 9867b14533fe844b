"""Attention as exported transformers write it: ONNX ``Attention`` (opsets 23-25) and ``RotaryEmbedding``
(23), and the ``com.microsoft`` contrib ops ``Attention``, ``MultiHeadAttention``, ``GroupQueryAttention``,
``RotaryEmbedding`` and ``SkipLayerNormalization``.

Every variant reduces to one core, :func:`scaled_dot_product`, on ``[batch, heads, seq, head_size]``
tensors with an additive bias (masks, causal frontier, sliding window, key padding turned into 0 / -inf),
written in Relax ops so TVM fuses the softmax chain and tunes the two matmuls like any other. The numerics
follow onnx's reference implementation, including its guard that gives zeros (not NaN) for a query row
whose keys are all masked.

TVM's importer keys converters by op type only and its ``Attention`` converter is the contrib one (it
reads ``num_heads``, which ONNX Attention has not), so contrib ops reach us under qualified names
(``com.microsoft.Attention``; see :func:`tvmedge.frontend.converters.qualify_domains`).
"""

from __future__ import annotations

import math

import numpy as np
from tvm import relax
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter

__all__ = ["CONVERTERS", "scaled_dot_product"]

NEG_INF = float("-inf")
_HALF = ("float16", "bfloat16")


def _shape(expr) -> list:
    try:
        return [int(v) for v in expr.ty.shape.values]
    except TypeError as err:
        raise ValueError(f"attention needs static shapes, got {list(expr.ty.shape.values)}; fix the input shapes") from err


def _dtype(expr) -> str:
    return str(expr.ty.dtype)


def _const(value, dtype):
    return relax.const(np.asarray(value, dtype=dtype), dtype)


def _to_heads(bb, x, heads):
    """``[batch, seq, heads*size]`` -> ``[batch, heads, seq, size]``."""
    b, s, hidden = _shape(x)
    return bb.normalize(relax.op.permute_dims(relax.op.reshape(x, (b, s, heads, hidden // heads)), [0, 2, 1, 3]))


def _from_heads(bb, x):
    """``[batch, heads, seq, size]`` -> ``[batch, seq, heads*size]``."""
    b, h, s, d = _shape(x)
    return bb.normalize(relax.op.reshape(relax.op.permute_dims(x, [0, 2, 1, 3]), (b, s, h * d)))


def _where_allowed(bb, allowed, dtype):
    """A boolean ``allowed`` -> additive bias (0 where allowed, -inf elsewhere)."""
    return bb.normalize(relax.op.where(allowed, _const(0, dtype), _const(NEG_INF, dtype)))


def _causal_allowed(q_len, kv_len, offset, bb=None):
    """``j <= i + offset``: a numpy ``[q, kv]`` array for an int offset, or a Relax ``[batch, q, kv]`` for a
    per-batch offset tensor ``[batch]`` (int64)."""
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    if isinstance(offset, int):
        return j <= i + offset
    frontier = bb.normalize(relax.op.add(_const(i.reshape(1, q_len, 1), "int64"),
                                         bb.normalize(relax.op.reshape(offset, (-1, 1, 1)))))
    return bb.normalize(relax.op.less_equal(_const(j.reshape(1, 1, kv_len), "int64"), frontier))


def _add_bias(bb, bias, extra):
    return bb.normalize(extra if bias is None else relax.op.add(bias, extra))


def scaled_dot_product(bb, q, k, v, *, scale, bias=None, softcap=0.0, softmax_dtype=None, qk_mode=None,
                       guard_rows=True):
    """``softmax(q·kᵀ·scale [softcapped] + bias)·v`` on ``[batch, heads, seq, size]``; GQA when ``k`` has
    fewer heads than ``q`` (each kv head repeated for consecutive query heads).

    ``scale`` is split as ``sqrt(scale)`` on each side, as onnx's reference does. Returns ``(y, qk)`` where
    ``qk`` is the QK output of ``qk_mode`` (0/1: scores after softcap, 2: plus bias, 3: probabilities) or
    None. With ``guard_rows``, rows whose ``bias`` is all -inf get zero probabilities (onnx's rule; ONNX
    Runtime's contrib kernels mask with a finite filter value and keep no such guard).
    """
    dtype = _dtype(q)
    q_heads, kv_heads = _shape(q)[1], _shape(k)[1]
    if q_heads != kv_heads:
        if q_heads % kv_heads:
            raise ValueError(f"{q_heads} query heads are not a multiple of {kv_heads} key/value heads")
        k = relax.op.repeat(k, q_heads // kv_heads, axis=1)
        v = relax.op.repeat(v, q_heads // kv_heads, axis=1)
    root = _const(math.sqrt(scale), dtype)
    scores = relax.op.matmul(relax.op.multiply(q, root), relax.op.permute_dims(relax.op.multiply(k, root), [0, 1, 3, 2]))
    if softcap and softcap > 0:
        cap = _const(softcap, dtype)
        scores = relax.op.multiply(relax.op.tanh(relax.op.divide(scores, cap)), cap)
    scores = bb.normalize(scores)
    qk = scores if qk_mode in (0, 1) else None
    if bias is not None:
        scores = bb.normalize(relax.op.add(scores, bias))
    if qk_mode == 2:
        qk = scores
    if softmax_dtype and softmax_dtype != dtype:
        scores = bb.normalize(relax.op.astype(scores, softmax_dtype))
    probs = _safe_softmax(bb, scores)
    if guard_rows and bias is not None:  # a query row with no key to attend gives zeros
        masked_row = relax.op.equal(relax.op.max(bias, axis=-1, keepdims=True), _const(NEG_INF, _dtype(bias)))
        probs = relax.op.where(masked_row, _const(0, _dtype(probs)), probs)
    probs = bb.normalize(relax.op.astype(probs, dtype) if softmax_dtype and softmax_dtype != dtype else probs)
    if qk_mode == 3:
        qk = probs
    return bb.normalize(relax.op.matmul(probs, v)), qk


def _safe_softmax(bb, x):
    """Softmax over the last axis that gives 0 (not NaN) for a row of -inf."""
    dtype = _dtype(x)
    top = relax.op.max(x, axis=-1, keepdims=True)
    top = relax.op.where(relax.op.equal(top, _const(NEG_INF, dtype)), _const(0, dtype), top)
    e = relax.op.exp(relax.op.subtract(x, top))
    total = relax.op.sum(e, axis=-1, keepdims=True)
    total = relax.op.where(relax.op.equal(total, _const(0, dtype)), _const(1, dtype), total)
    return bb.normalize(relax.op.divide(e, total))


# ----------------------------------------------------------------------------------------- ONNX Attention


class Attention(OnnxOpConverter):
    """ONNX ``Attention`` (opset 23; 24 adds ``nonpad_kv_seqlen``; 25 sliding windows): 3-D or 4-D Q/K/V,
    GQA, causal (offset by the past), boolean or additive masks, past/present key and value, softcap,
    ``qk_matmul_output_mode`` and ``softmax_precision``."""

    @classmethod
    def _impl_v23(cls, bb, inputs, attr, params):
        if "num_heads" in attr:  # a contrib Attention in a model whose ai.onnx opset is >= 23
            return ContribAttention._impl_v1(bb, inputs, attr, params)
        q, k, v = inputs[0], inputs[1], inputs[2]
        mask, past_k, past_v, nonpad = (inputs[i] if len(inputs) > i else None for i in (3, 4, 5, 6))
        dtype = _dtype(q)
        three_d = len(_shape(q)) == 3
        if three_d:
            if "q_num_heads" not in attr or "kv_num_heads" not in attr:
                raise ValueError("3-D Attention inputs need the q_num_heads and kv_num_heads attributes")
            q, k, v = (_to_heads(bb, x, attr[n]) for x, n in ((q, "q_num_heads"), (k, "kv_num_heads"),
                                                                (v, "kv_num_heads")))
        if past_k is not None:
            k = bb.normalize(relax.op.concat([past_k, k], axis=2))
            v = bb.normalize(relax.op.concat([past_v, v], axis=2))
        present_k, present_v = k, v
        batch, _, q_len, head = _shape(q)
        kv_len = _shape(k)[2]
        scale = float(attr.get("scale", 1.0 / math.sqrt(head)))
        past_len = _shape(past_k)[2] if past_k is not None else 0
        if dtype in _HALF:  # computed in float32 (numpy's half matmul accumulates in float, as ORT does)
            q, k, v = (bb.normalize(relax.op.astype(x, "float32")) for x in (q, k, v))
            if mask is not None and _dtype(mask) != "bool":
                mask = bb.normalize(relax.op.astype(mask, "float32"))
        bias = _onnx_bias(bb, mask, nonpad, attr, q_len, kv_len, past_len, _dtype(q))
        precision = attr.get("softmax_precision")
        softmax_dtype = _onnx_dtype(precision) if precision else None
        mode = int(attr.get("qk_matmul_output_mode", 0))
        y, qk = scaled_dot_product(bb, q, k, v, scale=scale, bias=bias, softcap=float(attr.get("softcap", 0.0)),
                                   softmax_dtype=softmax_dtype, qk_mode=mode)
        if three_d:
            y = _from_heads(bb, y)
        if qk is None:
            qk = relax.op.zeros((batch, _shape(q)[1], q_len, kv_len), dtype)
        return relax.Tuple([bb.normalize(relax.op.astype(y, dtype)), present_k, present_v,
                            bb.normalize(relax.op.astype(qk, dtype))])


def _onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    return str(helper.tensor_dtype_to_np_dtype(int(elem_type)))


def _onnx_bias(bb, mask, nonpad, attr, q_len, kv_len, past_len, dtype):
    """The additive bias of ONNX Attention (None when nothing masks), as onnx's reference builds it."""
    if mask is not None:
        mask_shape = _shape(mask)
        if mask_shape[-1] < kv_len:  # a short mask is padded with "masked" up to the keys
            pad = list(mask_shape[:-1]) + [kv_len - mask_shape[-1]]
            filler = _const(np.full(pad, _dtype(mask) != "bool" and NEG_INF), _dtype(mask))
            mask = relax.op.concat([mask, filler], axis=-1)
        mask = bb.normalize(mask)
        if _dtype(mask) == "bool":
            mask = _where_allowed(bb, mask, dtype)
    causal = bool(attr.get("is_causal", 0))
    left, right = int(attr.get("left_window_size", -1)), int(attr.get("right_window_size", -1))
    per_batch = nonpad is not None and past_len == 0
    offset = (bb.normalize(relax.op.subtract(relax.op.astype(nonpad, "int64"), _const(q_len, "int64")))
              if per_batch else past_len)
    bias = mask
    if causal:
        allowed = _causal_allowed(q_len, kv_len, offset, bb)
        causal_bias = (_const(np.where(allowed, 0, NEG_INF), dtype) if isinstance(allowed, np.ndarray)
                       else relax.op.expand_dims(_where_allowed(bb, allowed, dtype), 1))
        base = bias if bias is not None else _const(np.zeros((q_len, kv_len)), dtype)
        bias = bb.normalize(relax.op.add(base, causal_bias))
    if left >= 0 or right >= 0:
        bias = _add_bias(bb, bias, _window_bias(bb, q_len, kv_len, offset, left, right, dtype))
    if nonpad is not None:
        keys = _const(np.arange(kv_len).reshape(1, kv_len), "int64")
        valid = relax.op.less(keys, bb.normalize(relax.op.reshape(bb.normalize(relax.op.astype(nonpad, "int64")), (-1, 1))))
        bias = _add_bias(bb, bias, relax.op.reshape(_where_allowed(bb, valid, dtype), (-1, 1, 1, kv_len)))
    return bias


def _window_bias(bb, q_len, kv_len, offset, left, right, dtype):
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    if isinstance(offset, int):
        diff = i + offset - j
        allowed = np.ones_like(diff, dtype=bool)
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        return _const(np.where(allowed, 0, NEG_INF), dtype)
    frontier = bb.normalize(relax.op.reshape(offset, (-1, 1, 1)))
    diff = bb.normalize(relax.op.subtract(bb.normalize(relax.op.add(_const(i.reshape(1, q_len, 1), "int64"), frontier)),
                                          _const(j.reshape(1, 1, kv_len), "int64")))
    allowed = bb.normalize(relax.op.ones((1, q_len, kv_len), "bool"))
    if left >= 0:
        allowed = bb.normalize(relax.op.logical_and(allowed, bb.normalize(relax.op.less_equal(diff, _const(left, "int64")))))
    if right >= 0:
        allowed = bb.normalize(relax.op.logical_and(
            allowed, bb.normalize(relax.op.less_equal(bb.normalize(relax.op.negative(diff)), _const(right, "int64")))))
    return relax.op.expand_dims(_where_allowed(bb, bb.normalize(allowed), dtype), 1)


# ------------------------------------------------------------------------------------------ rotary embedding


def _rotate(bb, x, cos, sin, interleaved, rot_dim):
    """Rotary embedding on ``x [batch, heads, seq, head]`` with ``cos``/``sin`` ``[batch, 1, seq, rot_dim/2]``."""
    b, h, s, d = _shape(x)
    half = rot_dim // 2
    rot = relax.op.strided_slice(x, axes=[3], begin=[0], end=[rot_dim]) if rot_dim < d else x
    if interleaved:
        pairs = relax.op.reshape(rot, (b, h, s, half, 2))
        x1 = relax.op.squeeze(relax.op.strided_slice(pairs, axes=[4], begin=[0], end=[1]), [4])
        x2 = relax.op.squeeze(relax.op.strided_slice(pairs, axes=[4], begin=[1], end=[2]), [4])
    else:
        x1 = relax.op.strided_slice(rot, axes=[3], begin=[0], end=[half])
        x2 = relax.op.strided_slice(rot, axes=[3], begin=[half], end=[rot_dim])
    r1 = relax.op.subtract(relax.op.multiply(x1, cos), relax.op.multiply(x2, sin))
    r2 = relax.op.add(relax.op.multiply(x2, cos), relax.op.multiply(x1, sin))
    if interleaved:
        out = relax.op.reshape(relax.op.stack([r1, r2], axis=4), (b, h, s, rot_dim))
    else:
        out = relax.op.concat([r1, r2], axis=3)
    if rot_dim < d:
        out = relax.op.concat([out, relax.op.strided_slice(x, axes=[3], begin=[rot_dim], end=[d])], axis=3)
    return bb.normalize(out)


def _cache_rows(bb, cache, position_ids):
    """``cache [max_pos, half]`` at ``position_ids [batch, seq]`` -> ``[batch, 1, seq, half]``; a cache that
    is already ``[batch, seq, half]`` (no position ids) just gains the head axis."""
    rows = cache if position_ids is None else relax.op.take(cache, relax.op.astype(position_ids, "int64"), axis=0)
    return bb.normalize(relax.op.expand_dims(rows, 1))


class RotaryEmbedding(OnnxOpConverter):
    """ONNX ``RotaryEmbedding`` (opset 23): inputs ``(X, cos_cache, sin_cache[, position_ids])``; X is
    ``[batch, heads, seq, head]`` or ``[batch, seq, hidden]`` with ``num_heads``. A contrib model's node
    (inputs ``(X, position_ids, cos, sin)``) is told apart by its integer second input."""

    @classmethod
    def _impl_v23(cls, bb, inputs, attr, params):
        if "int" in _dtype(inputs[1]):
            return ContribRotaryEmbedding._impl_v1(bb, inputs, attr, params)
        x, cos, sin = inputs[0], inputs[1], inputs[2]
        position_ids = inputs[3] if len(inputs) > 3 else None
        return _rotary(bb, x, cos, sin, position_ids, attr)


def _rotary(bb, x, cos, sin, position_ids, attr):
    """Shared by both RotaryEmbeddings: 3-D inputs are split into ``num_heads`` (or head = 2 x cache width)."""
    shape = _shape(x)
    interleaved = bool(attr.get("interleaved", 0))
    cos, sin = _cache_rows(bb, cos, position_ids), _cache_rows(bb, sin, position_ids)
    half = _shape(cos)[-1]
    if len(shape) == 3:
        heads = int(attr["num_heads"]) if attr.get("num_heads") else shape[2] // (2 * half)
        x4 = _to_heads(bb, x, heads)
    else:
        x4 = x
    head = _shape(x4)[3]
    rot_dim = int(attr.get("rotary_embedding_dim", 0)) or 2 * half
    if rot_dim > head:
        raise ValueError(f"rotary_embedding_dim {rot_dim} is larger than the head size {head}")
    out = _rotate(bb, x4, relax.op.strided_slice(cos, axes=[3], begin=[0], end=[rot_dim // 2]),
                  relax.op.strided_slice(sin, axes=[3], begin=[0], end=[rot_dim // 2]), interleaved, rot_dim)
    return _from_heads(bb, out) if len(shape) == 3 else out


class ContribRotaryEmbedding(OnnxOpConverter):
    """``com.microsoft.RotaryEmbedding``: inputs ``(X [batch, seq, hidden] or [batch, heads, seq, head],
    position_ids [batch, seq] or [1], cos_cache, sin_cache)``; a one-element ``position_ids`` is a start
    offset, as ONNX Runtime reads it."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x, position_ids, cos, sin = inputs[0], inputs[1], inputs[2], inputs[3]
        shape = _shape(x)
        seq = shape[1] if len(shape) == 3 else shape[2]
        if int(np.prod(_shape(position_ids))) == 1:  # a start position for every row
            start = relax.op.reshape(bb.normalize(relax.op.astype(position_ids, "int64")), (1, 1))
            position_ids = relax.op.add(start, _const(np.arange(seq).reshape(1, seq), "int64"))
            position_ids = relax.op.broadcast_to(position_ids, (shape[0], seq))
        if len(shape) == 3 and not attr.get("num_heads"):
            attr = dict(attr, num_heads=shape[2] // (2 * _shape(cos)[-1]))
        return _rotary(bb, x, cos, sin, bb.normalize(position_ids), attr)


# ---------------------------------------------------------------------------------------- contrib attention


def _key_padding_bias(bb, mask, batch, q_len, kv_len, dtype, filter_value):
    """ONNX Runtime's ``mask_index`` / ``key_padding_mask`` forms -> an additive ``[batch, 1, q|1, kv]`` bias:
    ``[batch]`` valid key counts, ``[batch, kv]`` 1/0 per key, ``[batch, q, kv]`` 1/0 per query and key."""
    shape = _shape(mask)
    fill = _const(filter_value, dtype)
    if len(shape) == 1:
        keys = _const(np.arange(kv_len).reshape(1, kv_len), "int64")
        valid = relax.op.less(keys, bb.normalize(relax.op.reshape(bb.normalize(relax.op.astype(mask, "int64")), (batch, 1))))
        bias = relax.op.where(valid, _const(0, dtype), fill)
        return bb.normalize(relax.op.reshape(bias, (batch, 1, 1, kv_len)))
    masked = relax.op.equal(mask, relax.const(0, _dtype(mask)))
    bias = relax.op.where(masked, fill, _const(0, dtype))
    if len(shape) == 2:
        return bb.normalize(relax.op.reshape(bias, (batch, 1, 1, kv_len)))
    if len(shape) == 3:
        return bb.normalize(relax.op.reshape(bias, (batch, 1, q_len, kv_len)))
    return bb.normalize(bias)


def _causal_bias(q_len, kv_len, past_len, dtype):
    return _const(np.where(_causal_allowed(q_len, kv_len, past_len), 0, NEG_INF), dtype)


class ContribAttention(OnnxOpConverter):
    """``com.microsoft.Attention``: packed QKV projection (``input·weights + bias``), ``num_heads``,
    ``qkv_hidden_sizes``, ``unidirectional`` (causal), ``mask_index`` (key counts or 1/0 masks),
    ``past`` ``[2, batch, heads, past, head]`` -> ``present``, ``attention_bias``, ``scale``."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x, weights = inputs[0], inputs[1]
        bias, mask, past, attn_bias = (inputs[i] if len(inputs) > i else None for i in (2, 3, 4, 5))
        if len(inputs) > 6 and inputs[6] is not None:
            raise ValueError("com.microsoft.Attention with past_sequence_length (shared KV buffer) is not supported")
        heads = int(attr["num_heads"])
        dtype = _dtype(x)
        batch, q_len, _ = _shape(x)
        total = _shape(weights)[1]
        sizes = list(attr.get("qkv_hidden_sizes", ())) or [total // 3] * 3
        qkv = relax.op.matmul(x, weights)
        if bias is not None:
            qkv = relax.op.add(qkv, bias)
        qkv = bb.normalize(qkv)
        q, k, v = (bb.normalize(relax.op.strided_slice(qkv, axes=[2], begin=[a], end=[a + n]))
                   for a, n in ((0, sizes[0]), (sizes[0], sizes[1]), (sizes[0] + sizes[1], sizes[2])))
        q, k, v = _to_heads(bb, q, heads), _to_heads(bb, k, heads), _to_heads(bb, v, heads)
        past_len = 0
        if past is not None:
            past_len = _shape(past)[3]
            take = lambda i: relax.op.squeeze(relax.op.strided_slice(past, axes=[0], begin=[i], end=[i + 1]), [0])  # noqa: E731
            k = bb.normalize(relax.op.concat([take(0), k], axis=2))
            v = bb.normalize(relax.op.concat([take(1), v], axis=2))
        kv_len = _shape(k)[2]
        scale = float(attr.get("scale", 0.0)) or 1.0 / math.sqrt(sizes[0] // heads)
        filter_value = float(attr.get("mask_filter_value", -10000.0))
        total_bias = None
        if mask is not None:
            total_bias = _key_padding_bias(bb, mask, batch, q_len, kv_len, dtype, filter_value)
        if attr.get("unidirectional", 0):
            total_bias = _add_bias(bb, total_bias, _causal_bias(q_len, kv_len, past_len, dtype))
        if attn_bias is not None:
            total_bias = _add_bias(bb, total_bias, attn_bias)
        y, _ = scaled_dot_product(bb, q, k, v, scale=scale, bias=total_bias, guard_rows=False)
        present = bb.normalize(relax.op.stack([k, v], axis=0))
        return relax.Tuple([_from_heads(bb, y), present])


class MultiHeadAttention(OnnxOpConverter):
    """``com.microsoft.MultiHeadAttention``: separate ``query``/``key``/``value`` (3-D, or key/value already
    ``[batch, heads, kv, head]``), optional packed ``bias``, ``key_padding_mask``, ``attention_bias``,
    ``past_key``/``past_value`` -> ``present_key``/``present_value``, ``unidirectional``, ``scale``."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        q, k, v = inputs[0], inputs[1], inputs[2]
        bias, pad_mask, attn_bias, past_k, past_v = (inputs[i] if len(inputs) > i else None for i in range(3, 8))
        if k is None or v is None:
            raise ValueError("com.microsoft.MultiHeadAttention with packed QKV (no key input) is not supported")
        heads = int(attr["num_heads"])
        dtype = _dtype(q)
        batch, q_len, q_hidden = _shape(q)
        if bias is not None:
            kh = q_hidden if len(_shape(k)) == 3 else 0
            b_q = relax.op.strided_slice(bias, axes=[0], begin=[0], end=[q_hidden])
            q = relax.op.add(q, b_q)
            if len(_shape(k)) == 3:
                k = relax.op.add(k, relax.op.strided_slice(bias, axes=[0], begin=[q_hidden], end=[q_hidden + kh]))
                v = relax.op.add(v, relax.op.strided_slice(bias, axes=[0], begin=[q_hidden + kh],
                                                           end=[_shape(bias)[0]]))
        q = _to_heads(bb, bb.normalize(q), heads)
        k = _to_heads(bb, bb.normalize(k), heads) if len(_shape(k)) == 3 else k
        v = _to_heads(bb, bb.normalize(v), heads) if len(_shape(v)) == 3 else v
        past_len = 0
        if past_k is not None:
            past_len = _shape(past_k)[2]
            k = bb.normalize(relax.op.concat([past_k, k], axis=2))
            v = bb.normalize(relax.op.concat([past_v, v], axis=2))
        kv_len = _shape(k)[2]
        scale = float(attr.get("scale", 0.0)) or 1.0 / math.sqrt(q_hidden // heads)
        total_bias = None
        if pad_mask is not None:
            total_bias = _key_padding_bias(bb, pad_mask, batch, q_len, kv_len, dtype,
                                           float(attr.get("mask_filter_value", -10000.0)))
        if attr.get("unidirectional", 0):
            total_bias = _add_bias(bb, total_bias, _causal_bias(q_len, kv_len, past_len, dtype))
        if attn_bias is not None:
            total_bias = _add_bias(bb, total_bias, attn_bias)
        y, _ = scaled_dot_product(bb, q, k, v, scale=scale, bias=total_bias, guard_rows=False)
        return relax.Tuple([_from_heads(bb, y), k, v])


class GroupQueryAttention(OnnxOpConverter):
    """``com.microsoft.GroupQueryAttention`` (always causal): ``query`` (or packed QKV), ``key``, ``value``,
    ``past_key``/``past_value`` ``[batch, kv_heads, past, head]`` concatenated in front, ``seqlens_k``
    (``total - 1`` per row; keys past it are masked), ``total_sequence_length``, optional rotary
    (``do_rotary`` with ``cos_cache``/``sin_cache``), ``softcap``, ``local_window_size``, ``scale``.

    The past must be full (``past + new = total``): ONNX Runtime's in-place shared buffer, where new keys are
    written at each row's own length, is not modelled."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        get = lambda i: inputs[i] if len(inputs) > i else None  # noqa: E731
        q, k, v, past_k, past_v, seqlens_k = (get(i) for i in range(6))
        cos, sin = get(7), get(8)
        heads, kv_heads = int(attr["num_heads"]), int(attr["kv_num_heads"])
        if any(get(i) is not None for i in (9, 10, 11)):
            raise ValueError("com.microsoft.GroupQueryAttention with position_ids, attention_bias or head_sink "
                             "is not supported")
        dtype = _dtype(q)
        batch, q_len, q_hidden = _shape(q)
        if k is None:  # packed [batch, seq, (heads + 2 kv_heads) * head]
            head = q_hidden // (heads + 2 * kv_heads)
            parts = [(0, heads * head), (heads * head, kv_heads * head), ((heads + kv_heads) * head, kv_heads * head)]
            q, k, v = (bb.normalize(relax.op.strided_slice(q, axes=[2], begin=[a], end=[a + n])) for a, n in parts)
        q, k, v = _to_heads(bb, q, heads), _to_heads(bb, k, kv_heads), _to_heads(bb, v, kv_heads)
        head = _shape(q)[3]
        past_len = _shape(past_k)[2] if past_k is not None else 0
        if attr.get("do_rotary", 0):
            positions = _const(np.arange(past_len, past_len + q_len).reshape(1, q_len).repeat(batch, 0), "int64")
            rot_attr = {"interleaved": attr.get("rotary_interleaved", 0)}
            q = _rotary(bb, q, cos, sin, positions, rot_attr)
            k = _rotary(bb, k, cos, sin, positions, rot_attr)
        if past_k is not None:
            k = bb.normalize(relax.op.concat([past_k, k], axis=2))
            v = bb.normalize(relax.op.concat([past_v, v], axis=2))
        kv_len = _shape(k)[2]
        bias = _causal_bias(q_len, kv_len, past_len, dtype)
        window = int(attr.get("local_window_size", -1))
        if window >= 0:
            bias = _add_bias(bb, bias, _window_bias(bb, q_len, kv_len, past_len, window - 1, -1, dtype))
        if seqlens_k is not None:  # keys after a row's own total length are padding
            keys = _const(np.arange(kv_len).reshape(1, kv_len), "int64")
            valid = relax.op.less_equal(keys, bb.normalize(relax.op.reshape(bb.normalize(relax.op.astype(seqlens_k, "int64")),
                                                                            (batch, 1))))
            bias = _add_bias(bb, bias, relax.op.reshape(_where_allowed(bb, valid, dtype), (batch, 1, 1, kv_len)))
        scale = float(attr.get("scale", 0.0)) or 1.0 / math.sqrt(head)
        y, _ = scaled_dot_product(bb, q, k, v, scale=scale, bias=bias, softcap=float(attr.get("softcap", 0.0)))
        return relax.Tuple([_from_heads(bb, y), k, v])


class SkipLayerNormalization(OnnxOpConverter):
    """``com.microsoft.SkipLayerNormalization``: ``LayerNorm(input + skip [+ bias])`` with optional beta;
    outputs ``(output, mean, inv_std_var, input_skip_bias_sum)``."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x, skip, gamma = inputs[0], inputs[1], inputs[2]
        beta, bias = (inputs[i] if len(inputs) > i else None for i in (3, 4))
        eps = float(attr.get("epsilon", 1e-12))
        dtype = _dtype(x)
        total = relax.op.add(x, skip)
        if bias is not None:
            total = relax.op.add(total, bias)
        total = bb.normalize(total)
        mean = bb.normalize(relax.op.mean(total, axis=-1, keepdims=True))
        centered = relax.op.subtract(total, mean)
        var = relax.op.mean(relax.op.multiply(centered, centered), axis=-1, keepdims=True)
        inv_std = bb.normalize(relax.op.rsqrt(relax.op.add(var, _const(eps, dtype))))
        out = relax.op.multiply(relax.op.multiply(centered, inv_std), gamma)
        if beta is not None:
            out = relax.op.add(out, beta)
        return relax.Tuple([bb.normalize(out), mean, inv_std, total])


CONVERTERS = {
    "Attention": Attention,
    "RotaryEmbedding": RotaryEmbedding,
    "com.microsoft.Attention": ContribAttention,
    "com.microsoft.MultiHeadAttention": MultiHeadAttention,
    "com.microsoft.GroupQueryAttention": GroupQueryAttention,
    "com.microsoft.RotaryEmbedding": ContribRotaryEmbedding,
    "com.microsoft.SkipLayerNormalization": SkipLayerNormalization,
}
