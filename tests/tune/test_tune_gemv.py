"""The GEMV schedule of decode steps (issue 16): matrix-vector products ([..., 1, K] x [..., K, N]) get a
vectorised, parallel schedule without measuring; results equal TVM's unscheduled loops, and anything that is not
a matrix-vector product is left to the usual schedules."""

import numpy as np
import pytest

import tvm
from tvm import relax

from tvmedge.tune.gemv import gemv_database, gemv_schedule, vector_lanes
from tvmedge.tune.tasks import extract_tasks, prepare

TARGET = tvm.target.Target({"kind": "llvm", "num-cores": 2})


def _tasks(m: int, batch: tuple = ()):
    """Tasks of x [*batch, m, 64] @ w [*batch, 64, 96] + bias, then GELU-like tanh (a fused epilogue)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([*batch, m, 64], "float32"))
    w = relax.Var("w", relax.TensorType([*batch, 64, 96], "float32"))
    b = relax.Var("b", relax.TensorType([96], "float32"))
    with bb.function("main", [x, w, b]):
        with bb.dataflow():
            y = bb.emit(relax.op.matmul(x, w))
            out = bb.emit_output(relax.op.tanh(relax.op.add(y, b)))
        bb.emit_func_output(out)
    return extract_tasks(prepare(bb.get(), TARGET), TARGET)


def _run(mod, arrays):
    lib = tvm.tirx.build(mod, target=TARGET)
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    lib["main"](*tensors)
    return tensors[-1].numpy()


@pytest.mark.parametrize("batch", [(), (3,)])  # a projection; attention's per-head products
def test_gemv_schedule_computes_what_the_loops_compute(batch):
    (task,) = [t for t in _tasks(1, batch) if "matmul" in t.name]
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


def test_only_matrix_vector_products_get_it():
    matmuls = [t for t in _tasks(4) if "matmul" in t.name]  # M = 4: a matmul, the usual schedules' job
    assert matmuls and all(gemv_schedule(t.mod, TARGET) is None for t in matmuls)
    database, names = gemv_database(_tasks(1), TARGET)
    assert len(names) == 1 and "matmul" in names[0] and vector_lanes(TARGET) >= 1
