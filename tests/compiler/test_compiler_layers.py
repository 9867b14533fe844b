"""The compile-time layer map and memory report (issue 17): every kernel call of an artifact tied to the ONNX
tensors it computes, FLOPs per kernel, and weights / planned activations / workspace in the manifest."""

import json

import numpy as np

from tvmedge import api
from tvmedge.tune.auto import TuningOptions

# Neither reads nor writes tuning records: MetaSchedule matches a record to a structurally equal kernel of
# another model, whose blocks can be named after other Relax variables (lv14_red vs lv1_red), and replaying
# the record then fails; these tests are about the layer map, not schedules.
NO_RECORDS = TuningOptions(search="none", use_records=False)
from tvmedge.frontend.onnx import load_onnx
from tvmedge.runtime.layers import LayerMap


def test_fused_kernels_are_tied_to_the_onnx_tensors_they_compute(tmp_path, tiny_cnn):
    artifact = api.compile(tiny_cnn, "x86-host", tuning=NO_RECORDS, out=tmp_path / "a")
    calls = LayerMap.read(artifact.path).stage(0).calls
    assert [c.layers for c in calls] == [("b1", "r1"), ("d1", "r2"), ("p1", "r3"), ("g1",), ("f1",), ("logits",),
                                         ("probabilities",)]
    # the kernel symbol the runtime times: a convolution whose weights were repacked at compile time
    # (tvmedge.tune.conv) is TVM's "<fused function>_prepacked"
    assert calls[0].kernel == "fused_conv2d_add_relu_prepacked"
    # conv1: 16 output channels x 16x16 pixels x 3x3x3 taps, 2 FLOPs each, plus bias and ReLU per output
    assert calls[0].flops >= 2 * 16 * 16 * 16 * 27
    assert "layers.json" in artifact.manifest.files  # hashed with the libraries


def test_memory_report_counts_weights_and_the_static_plan(tmp_path, tiny_cnn):
    artifact = api.compile(tiny_cnn, "x86-host", tuning=NO_RECORDS, out=tmp_path / "a")
    memory = json.loads((artifact.path / "manifest.json").read_text())["build"]["memory"]
    folded = load_onnx(tiny_cnn).proto
    weights = sum(int(np.prod(t.dims)) * 4 for t in folded.graph.initializer if int(np.prod(t.dims)) > 1)
    assert memory["weight_bytes"] >= weights  # every weight tensor (plus small constants)
    # activations: at least the largest intermediate tensor (1x32x16x16 float32), at most all of them unshared
    assert 32 * 16 * 16 * 4 <= memory["activation_bytes"] <= (3 * 16 + 2 * 32) * 16 * 16 * 4 + 4096
    assert memory["workspace_bytes"] >= 0 and "StaticPlanBlockMemory" in memory["method"]
    assert artifact.summary()["memory"] == memory


def test_repeated_blocks_and_interleaved_helpers_map_to_their_own_layers():
    # squeezenet's fire modules: fire2 and fire3 call the same fused functions, and the importer emits the two
    # expand convolutions' helpers interleaved (an argument is emitted at its first use); each call site must
    # still get its own ONNX tensors
    import os

    import onnx
    import tvm

    from tvmedge.compiler.layers import kernel_calls
    from tvmedge.frontend.onnx import import_model
    from tvmedge.tune.tasks import prepare

    model = os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light/light_squeezenet.onnx")
    imported = import_model(model)
    target = tvm.target.Target("llvm")
    calls, note = kernel_calls(imported.mod, prepare(imported.mod, target), imported.layer_of_var, target,
                               imported.binding_signatures)
    assert note is None
    layers = [tuple(c["layers"]) for c in calls]
    assert layers[3:9] == [("r5", "r6"), ("r7", "r8"), ("r9",), ("r10", "r11"), ("r12", "r13"), ("r14", "r15")]
    assert calls[3]["kernel"] == calls[7]["kernel"]  # one fused function, two call sites


def test_integer_kernels_are_marked_and_their_operations_counted(tmp_path):
    # a tensorized int8 kernel's TIR holds the dot-product intrinsic, which TVM's counter cannot read: its operations
    # are counted on the function before scheduling, and profile compares it with the board's int8 peak
    import onnx
    from quantized_models import ort_quantize, samples, small_cnn

    from tvmedge.analysis.profile import profile_artifact
    from tvmedge.runtime.inputs import random_inputs

    onnx.save(small_cnn(), tmp_path / "f.onnx")
    qdq = ort_quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", "qdq", "uint8", samples(8))
    artifact = api.compile(qdq, "x86-host", out=tmp_path / "out", tuning=TuningOptions(search="none",
                                                                                        use_records=False))
    (stage,) = LayerMap.read(artifact.path).stages
    integer = [c for c in stage.calls if c.integer]
    assert len(integer) >= 6 and all(c.flops for c in integer)  # every conv (depthwise too), Gemm, MatMul
    assert not any(c.integer for c in stage.calls if "conv" not in c.kernel and "matmul" not in c.kernel
                   and "sum" not in c.kernel)
    feed = random_inputs(api.load(artifact.path).inputs, seed=0)
    report = profile_artifact(artifact.path, feed, repeat=2)
    rows = [r for r in report.rows if r["integer"]]
    assert rows and all(r["peak_gflops"] == 160 for r in rows)  # x86-host.yaml: peak_gops int8 160
