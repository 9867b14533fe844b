"""The GEMV schedule of LM graphs (issue 16): matrix-vector products ([..., 1, K] x [..., K, N], decode) and the
prefill's products with the same weights get a vectorised, parallel schedule without measuring; results equal
TVM's unscheduled loops; constant weights (only those) are repacked per column tile; anything else is left to
the usual schedules."""

import numpy as np
import pytest

import tvm
from tvm import relax

from tvmedge.tune.gemv import gemv_database, gemv_schedule, mark_constant_weights, vector_lanes
from tvmedge.tune.tasks import extract_tasks, prepare

TARGET = tvm.target.Target({"kind": "llvm", "num-cores": 2})


def _tasks(m: int, batch: tuple = (), constant: bool = False, transposed: bool = False):
    """Tasks of x [*batch, m, 64] @ w [*batch, 64, 96] + bias, then GELU-like tanh (a fused epilogue); ``constant``:
    w is a constant (a weight, marked layout-free as LM compiles mark them) rather than an input (a KV cache);
    ``transposed``: w is given as [96, 64] and multiplied transposed (K contiguous: not this schedule's layout)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([*batch, m, 64], "float32"))
    shape = [*batch, 96, 64] if transposed else [*batch, 64, 96]
    w = relax.const(np.random.default_rng(1).standard_normal(shape).astype("float32")) if constant else \
        relax.Var("w", relax.TensorType(shape, "float32"))
    b = relax.Var("b", relax.TensorType([96], "float32"))
    with bb.function("main", [x, b] if constant else [x, w, b]):
        with bb.dataflow():
            y = bb.emit(relax.op.matmul(x, relax.op.permute_dims(w) if transposed else w))
            out = bb.emit_output(relax.op.tanh(relax.op.add(y, b)))
        bb.emit_func_output(out)
    return extract_tasks(mark_constant_weights(prepare(bb.get(), TARGET)), TARGET)


def _run(mod, arrays):
    lib = tvm.tirx.build(mod, target=TARGET)
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    lib["main"](*tensors)
    return tensors[-1].numpy()


@pytest.mark.parametrize("m, batch", [(1, ()), (1, (3,)), (4, ()), (6, (2,))])  # decode and prefill products,
def test_gemv_schedule_computes_what_the_loops_compute(m, batch):                  # per-head ones too
    (task,) = [t for t in _tasks(m, batch) if "matmul" in t.name]
    sch = gemv_schedule(task.mod, TARGET)
    assert sch is not None
    text = sch.mod.script()
    assert "T.parallel" in text and "T.vectorized" in text and "T.unroll" in text
    rng = np.random.default_rng(0)
    func = task.mod["main"]
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    arrays = [rng.standard_normal([int(d) for d in info.shape]).astype(str(info.dtype))
              for info in ArgInfo.from_prim_func(func)]
    np.testing.assert_allclose(_run(sch.mod, arrays), _run(task.mod, [a.copy() for a in arrays]), rtol=1e-5,
                               atol=1e-6)


def test_constant_weights_and_only_those_are_repacked_per_column_tile():
    (weight,) = [t for t in _tasks(1, constant=True) if "matmul" in t.name]
    text = gemv_schedule(weight.mod, TARGET).mod.script()
    assert "meta_schedule.layout_rewrite_preproc" in text  # [k, n] -> [n / tile, k, tile], folded at compile time
    (cache,) = [t for t in _tasks(1) if "matmul" in t.name]  # an input (attention's KV cache): read as it lies
    assert "layout_rewrite_preproc" not in gemv_schedule(cache.mod, TARGET).mod.script()


def test_only_the_products_keep_the_constant_mark():
    # TVM's pass marks every kernel's constants; a mark changes a task's hash (records would stop matching) and
    # makes tuning rewrite layouts, so only the products this schedule repacks keep it
    bb = relax.BlockBuilder()
    index = relax.Var("index", relax.TensorType([1], "int64"))
    with bb.function("main", [index]):
        with bb.dataflow():
            x = bb.emit(relax.op.take(relax.const(np.ones((10, 64), "float32")), index, axis=0))  # a table lookup
            out = bb.emit_output(relax.op.matmul(x, relax.const(np.ones((64, 96), "float32"))))
        bb.emit_func_output(out)
    prepared = prepare(bb.get(), TARGET)
    everything = relax.transform.AttachAttrLayoutFreeBuffers()(prepared)
    marked = mark_constant_weights(prepared)

    def marks(mod):
        return sorted(gv.name_hint for gv, f in mod.functions.items()
                      if isinstance(f, tvm.tirx.PrimFunc) and "layout_free_buffers" in (f.attrs or {}))

    assert any("take" in n for n in marks(everything))  # TVM's pass marks the table too
    assert marks(marked) and all("matmul" in n for n in marks(marked))


def test_a_transposed_weight_is_read_through_and_other_reductions_are_left_alone():
    (transposed,) = [t for t in _tasks(1, transposed=True) if "matmul" in t.name]  # an input, transposed
    sch = gemv_schedule(transposed.mod, TARGET)  # the transpose inlined: the product reads the weight itself
    assert sch is not None and "layout_rewrite_preproc" not in sch.mod.script()  # not a plain [k, n] parameter
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([4, 64], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.sum(relax.op.multiply(x, x), axis=[1]))
        bb.emit_func_output(out)
    tasks = extract_tasks(prepare(bb.get(), TARGET), TARGET)  # one reduction, not a product of two operands
    assert tasks and all(gemv_schedule(t.mod, TARGET) is None for t in tasks)
    database, names = gemv_database(_tasks(1), TARGET)
    assert len(names) == 1 and "matmul" in names[0] and vector_lanes(TARGET) >= 1


def test_attention_over_the_cache_streams_whole_rows_per_job():
    # An input operand (the KV cache) is never repacked; with enough heads, each job takes whole rows of N
    # (one contiguous block) when the vector registers hold them: AVX-512 does for N = 96, SSE does not
    import re

    (task,) = [t for t in _tasks(1, (12,)) if "matmul" in t.name]
    wide = tvm.target.Target({"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 2})
    widths = {name: [int(w) for w in re.findall(r"T\.vectorized\((?:T\.int64\()?(\d+)", gemv_schedule(task.mod, t)
                                                 .mod.script())] for name, t in (("avx512", wide), ("sse", TARGET))}
    assert 96 in widths["avx512"] and 96 not in widths["sse"]
    rng = np.random.default_rng(0)
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    arrays = [rng.standard_normal([int(d) for d in info.shape]).astype(str(info.dtype))
              for info in ArgInfo.from_prim_func(task.mod["main"])]
    host = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(), "num-cores": 2})
    lib = tvm.tirx.build(gemv_schedule(task.mod, host).mod, target=host)
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    lib["main"](*tensors)
    np.testing.assert_allclose(tensors[-1].numpy(), _run(task.mod, [a.copy() for a in arrays]), rtol=1e-5, atol=1e-5)
