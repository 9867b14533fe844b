"""tvmedge.frontend.converters.attention against ONNX Runtime (issue 14).

ONNX Attention failed in TVM's importer on 'num_heads' (93 of onnx's node cases), and the contrib ops that
exported transformers use were refused by tvmedge. Each test builds one node (or a small block) with
random data and compares every output with ONNX Runtime's.
"""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ort_check import assert_close, make_model, run_both

pytest.importorskip("onnxruntime")

F, I64, I32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
MS = "com.microsoft"
rng = np.random.default_rng(0)


def arr(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def check(nodes, feeds, outputs, tmp_path, *, opset=23, inits=(), domains=(MS,), atol=1e-5):
    types = {np.dtype("float32"): F, np.dtype("int64"): I64, np.dtype("int32"): I32, np.dtype("bool"): TensorProto.BOOL}
    inputs = [(k, types[v.dtype], list(v.shape)) for k, v in feeds.items()]
    model = make_model(nodes, inputs, outputs, inits, opset=opset, domains=domains, infer_outputs=True,
                       feeds=feeds)
    ours, theirs = run_both(model, feeds, tmp_path)
    return assert_close(ours, theirs, atol=atol, rtol=1e-4)


# ------------------------------------------------------------------------------------------ ONNX Attention


@pytest.mark.parametrize("name, attrs, with_mask, with_past", [
    ("gqa_causal_past", dict(is_causal=1), False, True),
    ("bool_mask_3d", dict(q_num_heads=4, kv_num_heads=2), "bool", False),
    ("float_mask_softcap_scale", dict(softcap=3.0, scale=0.2), "float", False),
])
def test_onnx_attention(name, attrs, with_mask, with_past, tmp_path):
    three_d = "q_num_heads" in attrs
    q = arr(2, 3, 32) if three_d else arr(2, 4, 3, 8)
    k = arr(2, 5, 16) if three_d else arr(2, 2, 5, 8)
    feeds = {"Q": q, "K": k, "V": arr(*k.shape)}
    names = ["Q", "K", "V", "", "", ""]
    kv = 5 + (4 if with_past else 0)
    if with_mask == "bool":
        feeds["mask"] = rng.random((3, kv)) > 0.3
        names[3] = "mask"
    elif with_mask == "float":
        feeds["mask"] = arr(2, 1, 3, kv)
        names[3] = "mask"
    outputs = ["Y"]
    if with_past:
        feeds["past_key"], feeds["past_value"] = arr(2, 2, 4, 8), arr(2, 2, 4, 8)
        names[4:6] = ["past_key", "past_value"]
        outputs += ["present_key", "present_value"]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("Attention", names, outputs, **attrs)
    check([node], feeds, outputs, tmp_path, domains=())


def test_onnx_rotary_embedding_interleaved(tmp_path):
    feeds = {"x": arr(2, 4, 3, 8), "cos": arr(16, 4), "sin": arr(16, 4),
             "pos": rng.integers(0, 16, (2, 3)).astype(np.int64)}
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], interleaved=1)
    check([node], feeds, ["y"], tmp_path, domains=())


# ------------------------------------------------------------------------------------------- contrib ops


@pytest.mark.parametrize("mask_kind", ["none", "key_counts", "raw_2d", "unidirectional_past"])
def test_contrib_attention(mask_kind, tmp_path):
    feeds = {"x": arr(2, 4, 16), "w": arr(16, 48, scale=0.3)}
    inits = [numpy_helper.from_array(arr(48), "b")]
    names, attrs, outputs = ["x", "w", "b"], dict(num_heads=2), ["y"]
    if mask_kind == "key_counts":
        feeds["mask"] = np.array([4, 2], np.int32)
        names.append("mask")
    elif mask_kind == "raw_2d":
        feeds["mask"] = np.array([[1, 1, 0, 1], [1, 0, 0, 1]], np.int32)
        names.append("mask")
    elif mask_kind == "unidirectional_past":
        feeds["past"] = arr(2, 2, 2, 3, 8)
        names += ["", "past"]
        attrs["unidirectional"] = 1
        outputs.append("present")
    node = helper.make_node("Attention", names, outputs, domain=MS, **attrs)
    check([node], feeds, outputs, tmp_path, inits=inits)


def test_multi_head_attention_with_padding_bias_and_past(tmp_path):
    feeds = {"q": arr(2, 3, 16), "k": arr(2, 5, 16), "v": arr(2, 5, 16),
             "pad": np.array([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]], np.int32),
             "bias": arr(2, 2, 3, 8), "past_k": arr(2, 2, 3, 8), "past_v": arr(2, 2, 3, 8)}
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v", "", "pad", "bias", "past_k", "past_v"],
                            ["y", "present_k", "present_v"], domain=MS, num_heads=2)
    check([node], feeds, ["y", "present_k", "present_v"], tmp_path)


@pytest.mark.parametrize("past, rotary", [(False, False), (True, False), (False, True)])
def test_group_query_attention(past, rotary, tmp_path):
    # ONNX Runtime's limits: one row when a multi-token step has a past; rotary heads of 16n.
    batch, seq, heads, kv_heads, head = (1 if past else 2), 3, 4, 2, (16 if rotary else 8)
    p = 4 if past else 0
    feeds = {"q": arr(batch, seq, heads * head), "k": arr(batch, seq, kv_heads * head),
             "v": arr(batch, seq, kv_heads * head)}
    names = ["q", "k", "v", "", ""]
    if past:
        feeds["past_k"], feeds["past_v"] = arr(batch, kv_heads, p, head), arr(batch, kv_heads, p, head)
        names[3:5] = ["past_k", "past_v"]
    feeds["seqlens_k"] = np.full((batch,), p + seq - 1, np.int32)
    feeds["total"] = np.array(p + seq, np.int32)
    names += ["seqlens_k", "total"]
    attrs = dict(num_heads=heads, kv_num_heads=kv_heads)
    if rotary:
        feeds["cos"], feeds["sin"] = arr(16, head // 2), arr(16, head // 2)
        names += ["cos", "sin"]
        attrs["do_rotary"] = 1
    node = helper.make_node("GroupQueryAttention", names, ["y", "present_k", "present_v"], domain=MS, **attrs)
    check([node], feeds, ["y", "present_k", "present_v"], tmp_path)


@pytest.mark.parametrize("interleaved, scalar_position", [(0, False), (1, True)])
def test_contrib_rotary_embedding(interleaved, scalar_position, tmp_path):
    pos = np.array([3], np.int64) if scalar_position else rng.integers(0, 12, (2, 5)).astype(np.int64)
    feeds = {"x": arr(2, 5, 16), "pos": pos, "cos": arr(16, 4), "sin": arr(16, 4)}
    node = helper.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain=MS,
                            interleaved=interleaved, num_heads=2)
    check([node], feeds, ["y"], tmp_path)


def test_skip_layer_normalization_all_outputs(tmp_path):
    feeds = {"x": arr(2, 3, 16), "skip": arr(2, 3, 16)}
    inits = [numpy_helper.from_array(arr(16), n) for n in ("gamma", "beta", "bias")]
    node = helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"],
                            ["y", "mean", "inv_std", "sum"], domain=MS, epsilon=1e-5)
    check([node], feeds, ["y", "mean", "inv_std", "sum"], tmp_path, inits=inits)
