"""com.microsoft.MatMulNBits import (issue 16): packed 4-bit weights stay packed, one kernel decodes them in
registers; outputs equal ONNX Runtime running the same file (ours and ONNX Runtime's quantizer's)."""

import re

import numpy as np
import pytest
import tvm
from tvm import relax

from nbits_models import matmul_model, nbits_node_model, ort_run, save
from tvmedge.errors import ModelError
from tvmedge.frontend.converters.nbits import KERNEL_NAME
from tvmedge.frontend.onnx import import_model
from tvmedge.quant import parse_config, quantize

TARGET = tvm.target.Target({"kind": "llvm", "num-cores": 2})


def _config(**options):
    block = {"type": "weight_only", "bit_width": 4, "weight_scale": "absmax", **options}
    return parse_config({"quantization": block})


def _build(path, store=None):
    from tvmedge.compiler.layers import recording_pipeline

    imported = import_model(path)
    pipeline = recording_pipeline(store) if store is not None else "default"
    with tvm.transform.PassContext(opt_level=3):
        ex = tvm.compile(imported.mod, target=TARGET, relax_pipeline=pipeline)
    return imported, relax.VirtualMachine(ex, tvm.cpu())


def _run(vm, x):
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def _close(got, want):
    # same weights, same float32 arithmetic, another summation order
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("group, symmetric, scale_dtype, k, m", [
    (32, True, "float32", 256, 1),
    (64, False, "float32", 192, 3),
    (128, True, "float16", 256, 4),
    (32, False, "float16", 200, 5),  # K not a multiple of the group: padded, as ONNX Runtime pads
])
def test_our_matmul_nbits_files_run_like_onnx_runtime(tmp_path, group, symmetric, scale_dtype, k, m):
    n = 48
    result = quantize(matmul_model(k, n, m), _config(group_size=group, symmetric=symmetric, scale_dtype=scale_dtype))
    path = result.save(tmp_path / "q.onnx")
    assert [node.op_type for node in result.model.graph.node if node.op_type == "MatMulNBits"] == ["MatMulNBits"]
    x = np.random.default_rng(1).standard_normal((1, m, k)).astype(np.float32)
    _, vm = _build(path)
    _close(_run(vm, x), ort_run(path, {"x": x}))


@pytest.mark.parametrize("symmetric", [True, False])
def test_onnx_runtime_written_matmul_nbits_models_import(tmp_path, symmetric):
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(matmul_model(128, 64, 2, rank3=False), block_size=32, is_symmetric=symmetric)
    quantizer.process()
    model = quantizer.model.model if hasattr(quantizer.model, "model") else quantizer.model
    path = save(model, tmp_path / "ort.onnx")
    assert any(node.op_type == "MatMulNBits" for node in model.graph.node)
    x = np.random.default_rng(2).standard_normal((2, 128)).astype(np.float32)
    _, vm = _build(path)
    _close(_run(vm, x), ort_run(path, {"x": x}))


def test_weights_stay_packed_and_no_float_copy_of_them_exists(tmp_path):
    k = n = 512
    path = quantize(matmul_model(k, n, 1), _config(group_size=32)).save(tmp_path / "q.onnx")
    store = {}
    imported, vm = _build(path, store)
    lowered = store["mod"]
    # the module's constants: the packed codes (K * N / 2 bytes) and the scales, nothing of K * N floats
    constants = []
    relax.analysis.post_order_visit(lowered["main"], lambda e: constants.append(e.value.numpy())
                                    if isinstance(e, tvm.ir.Constant) and hasattr(e.value, "numpy") else None)
    sizes = sorted((c.dtype.name, c.nbytes) for c in constants)
    assert ("uint8", k * n // 2) in sizes
    assert sum(nbytes for _, nbytes in sizes) <= k * n // 2 + k * n // 32 * 4 + 64
    # the kernel decodes in registers: its only buffers are a few vectors, and no PrimFunc allocates K * N floats
    kernels = [gv.name_hint for gv, f in lowered.functions.items() if isinstance(f, tvm.tirx.PrimFunc)]
    assert any(name.startswith(KERNEL_NAME) for name in kernels)
    for gv, func in lowered.functions.items():
        if isinstance(func, tvm.tirx.PrimFunc):
            text = func.script()
            for shape in re.findall(r"(?:alloc_buffer|decl_buffer|allocate)\(\(([\d, ]+)\)", text):
                elements = int(np.prod([int(d) for d in shape.split(",") if d.strip()]))
                assert elements < k * n // 16, f"{gv.name_hint} allocates {elements} elements"
    assert imported.quantized_weights == {"matmul_nbits": 1, "int4_packed_bytes": k * n // 2}
    x = np.random.default_rng(3).standard_normal((1, 1, k)).astype(np.float32)
    _close(_run(vm, x), ort_run(path, {"x": x}))


@pytest.mark.parametrize("case, message", [
    (dict(bits=8), "bits=8 is not supported"),
    (dict(k_attr=96), "input A's last dim is 64 but K=96"),
    (dict(g_idx=True), "g_idx"),
])
def test_unsupported_matmul_nbits_nodes_are_one_line_errors(tmp_path, case, message):
    path = save(nbits_node_model(64, 16, 32, **case), tmp_path / "bad.onnx")
    with pytest.raises(ModelError) as err:
        import_model(path)
    assert message in str(err.value) and "\n" not in str(err.value) and "MatMulNBits 'fc'" in str(err.value)


def test_packed_weights_of_another_k_are_a_one_line_error(tmp_path):
    model = nbits_node_model(64, 16, 32, k_attr=96)  # B holds 2 blocks, K=96 needs 3
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 96
    with pytest.raises(ModelError, match=r"B has shape \[16, 2, 16\], expected \[16, 3, 16\] for K=96"):
        import_model(save(model, tmp_path / "bad.onnx"))


@pytest.mark.parametrize("m, n", [(1, 768), (1, 48), (4, 3072)])
def test_the_kernel_runs_a_few_long_parallel_tasks_not_one_per_tile(m, n):
    # Each parallel task's local buffers come from TVMBackendAllocWorkspace: one task per 16-column tile made
    # those calls cost more than reading the tile (a decode step streamed its weights at ~12 GB/s, not ~30)
    from tvmedge.frontend.converters.nbits import MAX_CHUNKS, matmul_nbits_kernel

    kernel = matmul_nbits_kernel(m, 256, n, 32, 16, "float32", False)
    parallel = [int(extent) for extent in re.findall(r"T\.parallel\((\d+)\)", kernel.script())]
    assert len(parallel) == 1 and parallel[0] <= MAX_CHUNKS
    assert (n // 16) * (m // min(m, 4)) % parallel[0] == 0  # every task the same number of tiles
