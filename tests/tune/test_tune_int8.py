"""The int8 dot-product schedule (issue 15) and the pooling schedule: integer convolutions and matrix products get
VNNI (x86) / SDOT (ARM) instructions without measuring, compute exactly what TVM's loops compute, and layers
the schedule cannot take keep their usual schedules."""

from pathlib import Path

import numpy as np
import pytest

import tvm
from tvm import relax

from tvmedge.compiler.int8 import arrange_for_dot_product
from tvmedge.devices.target import CompileTarget
from tvmedge.tune.int8 import dot_product_unit, int8_schedule, integer_unit
from tvmedge.tune.pool import pool_schedule
from tvmedge.tune.tasks import extract_tasks, prepare

VNNI = tvm.target.Target({"kind": "llvm", "mcpu": "cascadelake", "num-cores": 2})
AVX2 = tvm.target.Target({"kind": "llvm", "mcpu": "haswell", "num-cores": 2})  # runs on any AVX2 host
SSE2 = tvm.target.Target({"kind": "llvm", "mcpu": "x86-64", "num-cores": 2})  # no dot product: the plain path
AVX_VNNI = tvm.target.Target({"kind": "llvm", "mcpu": "alderlake", "num-cores": 2})  # VNNI on 256 bits, no AVX-512
HOST_HAS_VNNI = "avx512_vnni" in Path("/proc/cpuinfo").read_text()
HOST_HAS_AVX_VNNI = " avx_vnni" in Path("/proc/cpuinfo").read_text()


def _target(board):
    return CompileTarget.resolve(board).tvm_target


def test_each_cpu_gets_its_dot_product_instruction_or_none():
    assert dot_product_unit(VNNI)[1:] == (16, "uint8")
    assert dot_product_unit(AVX_VNNI)[1:] == (8, "uint8")  # x86 mini PCs' N100
    assert dot_product_unit(_target("rk3588"))[1:] == (4, "int8")  # cortex-a76 +dotprod
    assert dot_product_unit(AVX2)[1:] == (8, "uint8")  # vpmaddwd on int16 pairs
    # no dot-product instruction: the plain vector path, int32 lanes of the vector registers
    assert dot_product_unit(SSE2) is None and integer_unit(SSE2) == (None, 4, None)
    assert dot_product_unit(_target("rpi4")) is None and integer_unit(_target("rpi4")) == (None, 4, None)
    assert integer_unit(_target("bananapi-f3")) == (None, 8, None)  # RVV, VLEN 256
    assert integer_unit(_target("licheepi4a")) is None  # no vector unit LLVM can use: predicted schedules


def _int8_conv(channels=16, size=9, out_channels=32, kernel=3, pad=1, stride=1, groups=1, activation="uint8"):
    """conv2d(u8 x s8 -> i32) + an int32 bias: the reduction of a quantized layer."""
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, channels, size, size], activation))
    weight = rng.integers(-128, 128, (out_channels, channels // groups, kernel, kernel)).astype("int8")
    bias = rng.integers(-1000, 1000, (1, out_channels, 1, 1)).astype("int32")
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, relax.const(weight), strides=stride, padding=pad, groups=groups,
                                           out_dtype="int32"))
            out = bb.emit_output(relax.op.add(y, relax.const(bias)))
        bb.emit_func_output(out)
    return bb.get()


def _int8_matmul(rows=1, depth=64, columns=48, activation="uint8"):
    rng = np.random.default_rng(1)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([rows, depth], activation))
    weight = rng.integers(-128, 128, (depth, columns)).astype("int8")
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.matmul(x, relax.const(weight), out_dtype="int32"))
        bb.emit_func_output(out)
    return bb.get()


def _tasks(mod, target):
    return extract_tasks(prepare(arrange_for_dot_product(mod, target), target), target)


def _the_task(mod, target, kind):
    (task,) = [t for t in _tasks(mod, target) if kind in t.name]
    return task


def _outputs(mod, arrays, target):
    lib = tvm.tirx.build(mod, target=target)
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    lib["main"](*tensors)
    return tensors[-1].numpy()


def _arguments(func, seed=0):
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    rng = np.random.default_rng(seed)
    arrays = []
    for info in ArgInfo.from_prim_func(func):
        shape, dtype = [int(d) for d in info.shape], str(info.dtype)
        if dtype in ("uint8", "int8"):
            low, high = (0, 256) if dtype == "uint8" else (-128, 128)
            arrays.append(rng.integers(low, high, shape).astype(dtype))
        else:
            arrays.append(rng.integers(-1000, 1000, shape).astype(dtype) if "int" in dtype
                          else rng.standard_normal(shape).astype(dtype))
    return arrays


CONVS = [
    dict(),  # 3x3, padded: the padding is done by the input's repack
    dict(kernel=1, pad=0, size=13, out_channels=48),  # 1x1 on a prime width
    dict(kernel=3, pad=1, stride=2, size=12),  # strided
    dict(kernel=3, pad=1, stride=2, channels=3, size=20, out_channels=16),  # an image: 3 channels padded to 4
    dict(kernel=1, pad=0, size=5, channels=32, out_channels=40),  # 40 output channels computed as 48
]


@pytest.mark.parametrize("shape", CONVS)
def test_the_integer_convolution_schedule_computes_what_tvm_computes_with_vnni(shape):
    task = _the_task(_int8_conv(**shape), VNNI, "conv2d")
    sch = int8_schedule(task.mod, VNNI)
    assert sch is not None
    assert "vpdpbusd" in tvm.tirx.build(sch.mod, target=VNNI).inspect_source("asm")
    if not HOST_HAS_VNNI:
        pytest.skip("this CPU has no AVX-512 VNNI: the VNNI build is checked, not run")
    arrays = _arguments(task.mod["main"])
    expected = _outputs(task.mod, [a.copy() for a in arrays], VNNI)
    assert np.array_equal(_outputs(sch.mod, arrays, VNNI), expected)


@pytest.mark.parametrize("shape", CONVS[:2])
def test_avx_vnni_gets_the_256_bit_dot_product(shape):
    task = _the_task(_int8_conv(**shape), AVX_VNNI, "conv2d")
    sch = int8_schedule(task.mod, AVX_VNNI)
    asm = tvm.tirx.build(sch.mod, target=AVX_VNNI).inspect_source("asm")
    assert "vpdpbusd" in asm and "zmm" not in asm
    if not HOST_HAS_AVX_VNNI:
        pytest.skip("this CPU has no AVX-VNNI: the build is checked, not run")
    arrays = _arguments(task.mod["main"])
    expected = _outputs(task.mod, [a.copy() for a in arrays], AVX_VNNI)
    assert np.array_equal(_outputs(sch.mod, arrays, AVX_VNNI), expected)


@pytest.mark.parametrize("rows,depth,columns", [(1, 64, 48), (4, 128, 64), (1, 20, 10)])
def test_the_integer_matrix_product_schedule_computes_what_tvm_computes_with_vnni(rows, depth, columns):
    task = _the_task(_int8_matmul(rows, depth, columns), VNNI, "matmul")
    sch = int8_schedule(task.mod, VNNI)
    assert sch is not None  # 20 x 10 too: padded to 20 -> 20 (a multiple of 4) and 10 -> 16 columns
    if not HOST_HAS_VNNI:
        pytest.skip("this CPU has no AVX-512 VNNI")
    arrays = _arguments(task.mod["main"], seed=rows)
    expected = _outputs(task.mod, [a.copy() for a in arrays], VNNI)
    assert np.array_equal(_outputs(sch.mod, arrays, VNNI), expected)


def test_the_arm_build_uses_sdot_on_signed_activations():
    target = _target("rk3588")
    task = _the_task(_int8_conv(), target, "conv2d")  # u8 activations: moved to s8 for SDOT first
    sch = int8_schedule(task.mod, target)
    assert sch is not None
    assert "llvm.aarch64.neon.sdot" in sch.mod.script()
    assert "\tsdot\t" in tvm.tirx.build(sch.mod, target=target).inspect_source("asm")


@pytest.mark.parametrize("mod,target", [
    (_int8_conv(groups=16, channels=16, out_channels=16), VNNI),  # depthwise: no 4-element reduction
    (_int8_conv(groups=16, channels=16, out_channels=16), SSE2),
    (_int8_conv(), _target("licheepi4a")),  # no vector unit
])
def test_layers_the_schedule_cannot_take_keep_their_usual_schedule(mod, target):
    task = _the_task(mod, target, "conv2d")
    assert int8_schedule(task.mod, target) is None


@pytest.mark.parametrize("shape", CONVS)
def test_without_a_dot_product_the_plain_vector_path_computes_what_tvm_computes(shape):
    task = _the_task(_int8_conv(**shape), SSE2, "conv2d")
    sch = int8_schedule(task.mod, SSE2)
    assert sch is not None and "call_llvm_pure_intrin" not in sch.mod.script()
    arrays = _arguments(task.mod["main"])
    expected = _outputs(task.mod, [a.copy() for a in arrays], SSE2)
    assert np.array_equal(_outputs(sch.mod, arrays, SSE2), expected)


@pytest.mark.parametrize("shape", CONVS)
def test_avx2_multiplies_int16_pairs_exactly(shape):
    # vpmaddwd: u8 x s8 products widened to int16 pairs summed in int32 (vpmaddubsw would saturate at 32767)
    task = _the_task(_int8_conv(**shape), AVX2, "conv2d")
    sch = int8_schedule(task.mod, AVX2)
    assert "vpmaddwd" in tvm.tirx.build(sch.mod, target=AVX2).inspect_source("asm")
    arrays = _arguments(task.mod["main"])
    arrays[0][:] = 255  # the extremes: every pair of products 255 x -128 twice, beyond int16
    arrays[1][:] = -128 if arrays[1].dtype == np.int8 else arrays[1]
    expected = _outputs(task.mod, [a.copy() for a in arrays], AVX2)
    assert np.array_equal(_outputs(sch.mod, arrays, AVX2), expected)


@pytest.mark.parametrize("rows,depth,columns", [(1, 64, 48), (1, 20, 10)])
def test_the_plain_and_avx2_matrix_products_compute_what_tvm_computes(rows, depth, columns):
    for target in (SSE2, AVX2):
        task = _the_task(_int8_matmul(rows, depth, columns), target, "matmul")
        sch = int8_schedule(task.mod, target)
        arrays = _arguments(task.mod["main"], seed=rows)
        expected = _outputs(task.mod, [a.copy() for a in arrays], target)
        assert np.array_equal(_outputs(sch.mod, arrays, target), expected)


def test_the_riscv_build_multiplies_and_accumulates_widening():
    target = _target("bananapi-f3")
    task = _the_task(_int8_conv(), target, "conv2d")
    asm = tvm.tirx.build(int8_schedule(task.mod, target).mod, target=target).inspect_source("asm")
    assert "vwmacc" in asm  # vwmaccsu.vv: int16 products of u8 x s8 accumulated into int32 lanes


def test_a_float_convolution_is_not_an_integer_layer():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 16, 9, 9], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            weight = relax.const(np.ones((32, 16, 3, 3), "float32"))
            out = bb.emit_output(relax.op.nn.conv2d(x, weight, padding=1, out_dtype="float32"))
        bb.emit_func_output(out)
    task = _the_task(bb.get(), VNNI, "conv2d")
    assert int8_schedule(task.mod, VNNI) is None


def test_compile_gives_the_integer_layers_the_dot_product_schedule(tmp_path):
    import onnx
    from quantized_models import ort_quantize, samples, small_cnn

    from tvmedge.frontend.onnx import import_model
    from tvmedge.tune.auto import TuningOptions, auto_schedule

    onnx.save(small_cnn(), tmp_path / "f.onnx")
    qdq = ort_quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", "qdq", "uint8", samples(8))
    board = CompileTarget.resolve("x86-host")
    if dot_product_unit(board.tvm_target) is None:
        pytest.skip("this host's CPU has no AVX-512 VNNI")
    mod = arrange_for_dot_product(import_model(str(qdq)).mod, board.tvm_target)
    _, provenance = auto_schedule(mod, board, TuningOptions(search="none", use_records=False))
    # c1 (3 channels, padded to 4), pw, the two 1x1 branches, fc, mm (10 columns computed as 16); not dw
    assert provenance["int8"] == 6, provenance["sources"]
    assert provenance["untuned_tasks"] == sorted(n for n, s in provenance["sources"].items()
                                                 if s in ("predicted", "fallback"))


def _pool(kind="max", size=12, kernel=3, stride=2, pad=1, dtype="float32"):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 8, size, size], dtype))
    op = relax.op.nn.max_pool2d if kind == "max" else relax.op.nn.avg_pool2d
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(op(x, pool_size=kernel, strides=stride, padding=pad))
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize("kind,dtype,pad", [("max", "float32", 1), ("max", "uint8", 0), ("avg", "float32", 1)])
def test_the_pooling_schedule_computes_what_tvm_computes(kind, dtype, pad):
    (task,) = _tasks(_pool(kind, dtype=dtype, pad=pad), AVX2)
    sch = pool_schedule(task.mod, AVX2)
    assert sch is not None
    arrays = _arguments(task.mod["main"], seed=3)
    expected = _outputs(task.mod, [a.copy() for a in arrays], AVX2)
    np.testing.assert_allclose(_outputs(sch.mod, arrays, AVX2), expected, rtol=1e-6)
