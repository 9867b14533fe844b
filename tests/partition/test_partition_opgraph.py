"""OpGraph extraction (tvmedge/partition/opgraph.py): ops, kinds, FLOPs and bytes from Relax shapes (issue 5)."""

import networkx as nx


def test_tiny_cnn_ops_kinds_and_flops(tiny_ops):
    kinds = [op.kind for op in tiny_ops.ops]
    assert kinds[:4] == ["conv2d", "add", "relu", "conv2d"]
    assert kinds.count("conv2d") == 3 and kinds[-1] == "softmax"
    conv = tiny_ops.op("conv2d_0")  # 3 -> 16 channels, 3x3, stride 2, 32x32 -> 16x16
    assert conv.flops == 2 * 16 * 16 * 16 * 3 * 3 * 3
    assert conv.bytes_in == 3 * 32 * 32 * 4 and conv.bytes_weights == 16 * 3 * 3 * 3 * 4
    assert conv.bytes_out == 16 * 16 * 16 * 4
    assert conv.attrs == {"kh": 3, "kw": 3, "stride": 2, "groups": 1, "cin": 3, "cout": 16}
    depthwise = tiny_ops.op("conv2d_1")
    assert depthwise.attrs["groups"] == 16 and depthwise.flops == 2 * 16 * 16 * 16 * 1 * 9
    # Clip imports as call_tir(maximum/minimum); the bias reshapes of constants are folded away
    assert {op.relax_op for op in tiny_ops.ops if op.kind == "clip"} == {"call_tir:maximum", "call_tir:minimum"}
    assert tiny_ops.op("pool_0").relax_op == "mean"  # GlobalAveragePool


def test_graph_is_a_dag_in_topological_order(tiny_ops, squeezenet_ops):
    for graph in (tiny_ops, squeezenet_ops):
        assert nx.is_directed_acyclic_graph(graph.dag)
        position = {op.name: i for i, op in enumerate(graph.ops)}
        assert all(position[a] < position[b] for a, b in graph.dag.edges)
        assert list(graph.inputs) and graph.outputs
    assert tiny_ops.inputs["input"][1] == ["conv2d_0"]
    # squeezenet's fire modules: one squeeze conv feeds two expand convs joined by a concat
    assert max(d for _, d in squeezenet_ops.dag.out_degree) >= 2
    assert any(op.kind == "concat" for op in squeezenet_ops.ops)


def test_onnx_sum_becomes_one_add(tmp_path):
    # ONNX Sum imports as broadcast_to (same shape) -> stack -> sum(axis 0); the board vocabulary calls it add
    import onnx
    from onnx import TensorProto, helper

    from tvmedge.frontend.onnx import import_model
    from tvmedge.partition.opgraph import extract_ops

    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"]),
             helper.make_node("Sum", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "sum", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "sum.onnx")
    ops = extract_ops(import_model(tmp_path / "sum.onnx").mod)
    assert [op.kind for op in ops.ops] == ["relu", "sigmoid", "concat", "add"]
    assert ops.outputs == [("add_0", 32)]
