"""The register-tile convolution schedule (issue 13): float NCHW convolutions without a record get it instead of a
predicted schedule; it computes what TVM's loops compute, repacks the weights once at compile time, and leaves
every other kind of convolution to the usual schedules."""

import numpy as np
import pytest

import tvm
from tvm import relax
from tvm.s_tir.meta_schedule.arg_info import ArgInfo

from tvmedge.devices.target import CompileTarget
from tvmedge.tune.auto import TuningOptions, auto_schedule
from tvmedge.tune.conv import _tile, conv_database, conv_schedule, register_file
from tvmedge.tune.tasks import extract_tasks, prepare

AVX2 = tvm.target.Target({"kind": "llvm", "mcpu": "znver3", "num-cores": 2})


def _module(channels=16, size=9, out_channels=32, kernel=3, pad=1, stride=1, groups=1, dtype="float32",
            residual=False):
    """conv2d (constant weights) + bias + ReLU, optionally + a residual input: the fused layer of a CNN."""
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, channels, size, size], dtype))
    out_size = (size + 2 * pad - kernel) // stride + 1
    params = [x]
    if residual:
        params.append(relax.Var("r", relax.TensorType([1, out_channels, out_size, out_size], "float32")))
    weight = rng.standard_normal((out_channels, channels // groups, kernel, kernel)).astype(dtype)
    bias = rng.standard_normal((1, out_channels, 1, 1)).astype("float32")
    with bb.function("main", params):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, relax.const(weight), strides=stride, padding=pad, groups=groups,
                                           out_dtype="float32"))
            y = relax.op.add(y, relax.const(bias))
            if residual:
                y = relax.op.add(y, params[1])
            out = bb.emit_output(relax.op.nn.relu(y))
        bb.emit_func_output(out)
    return bb.get()


def _conv_task(mod, target=AVX2):
    (task,) = [t for t in extract_tasks(prepare(mod, target), target) if "conv2d" in t.name]
    return task


def _run(mod, arrays):
    lib = tvm.tirx.build(mod, target=AVX2)
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    lib["main"](*tensors)
    return tensors[-1].numpy()


@pytest.mark.parametrize("shape", [
    dict(),  # 3x3, padded: the padded window is computed per tile
    dict(kernel=1, pad=0, size=13, out_channels=24),  # 1x1, a prime width: one row of 13 accumulators
    dict(kernel=3, pad=1, stride=2, size=12),  # strided
    dict(kernel=7, pad=3, stride=2, channels=3, size=20, out_channels=16),  # a stem
    dict(residual=True),  # a residual add fused into the write-back
    dict(groups=3, channels=48, out_channels=96, size=10),  # grouped: 32 output channels per group
])
def test_conv_schedule_computes_what_the_loops_compute(shape):
    task = _conv_task(_module(**shape))
    sch = conv_schedule(task.mod, AVX2)
    assert sch is not None
    text = sch.mod.script()
    assert "T.parallel" in text and "T.vectorized" in text and "T.unroll" in text
    assert "meta_schedule.layout_rewrite_preproc" in text  # the weights are repacked, not read strided
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal([int(d) for d in info.shape]).astype(str(info.dtype))
              for info in ArgInfo.from_prim_func(task.mod["main"])]
    np.testing.assert_allclose(_run(sch.mod, arrays), _run(task.mod, [a.copy() for a in arrays]), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("shape", [
    dict(groups=16, out_channels=16),  # depthwise
    dict(groups=4, out_channels=16),  # grouped, 4 output channels per group: a vector would straddle groups
    dict(out_channels=12),  # output channels not a multiple of the 8 lanes
])
def test_other_convolutions_keep_the_usual_schedules(shape):
    assert conv_schedule(_conv_task(_module(**shape)).mod, AVX2) is None


def test_non_convolutions_and_integer_convolutions_are_left_alone():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([4, 64], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.matmul(x, relax.const(np.ones((64, 32), "float32"))))
        bb.emit_func_output(out)
    tasks = extract_tasks(prepare(bb.get(), AVX2), AVX2)
    assert tasks and conv_database(tasks, AVX2)[1] == []
    integer = _module(dtype="int8")
    integer = extract_tasks(prepare(integer, AVX2), AVX2)
    assert all(conv_schedule(t.mod, AVX2) is None for t in integer)


def test_register_files_of_the_boards():
    """Lanes and registers from the target's features (LLVM calls an AVX2 CPU's vector width 512 bits)."""
    assert register_file(AVX2) == (8, 16)
    assert register_file(tvm.target.Target({"kind": "llvm", "mcpu": "skylake-avx512"})) == (16, 32)
    assert register_file(CompileTarget.resolve("rk3588").tvm_target) == (4, 32)
    assert register_file(CompileTarget.resolve("bananapi-f3").tvm_target) == (8, 32)  # RVV, VLEN 256
    assert register_file(CompileTarget.resolve("visionfive2").tvm_target) is None  # no vector unit: predicted


def test_tile_fills_the_register_file_without_partial_tiles():
    assert _tile(13, 13, 1000, 8, 16) == (1, 13, 1)  # 13 accumulators + a weight vector + a broadcast
    assert _tile(56, 56, 64, 8, 16) == (1, 14, 1)
    rows, cols, vectors = _tile(7, 7, 512, 4, 32)
    assert 7 % rows == 0 and 7 % cols == 0 and rows * cols * vectors <= 32 - vectors - 1
    assert _tile(8, 8, 12, 8, 16) is None  # no whole vector of channels


def test_search_none_gives_convolutions_the_schedule_and_folds_the_repack():
    """Through auto_schedule, as compile does: the manifest says ``conv``, the built module calls the prepacked
    kernel with weights repacked at compile time (no repack function left), and the outputs are TVM's naive
    build's."""
    target = CompileTarget.resolve("x86-host")
    mod = _module(channels=16, size=14, out_channels=32, residual=True)
    scheduled, provenance = auto_schedule(mod, target, TuningOptions(search="none", use_records=False))
    assert provenance["conv"] == 1 and provenance["trials"] == 0
    assert [name for name, source in provenance["sources"].items() if source == "conv"] == \
        [name for name in provenance["sources"] if "conv2d" in name]
    names = [gv.name_hint for gv in scheduled.functions]
    assert any(n.endswith("_prepacked") for n in names) and not any("weight_prepack" in n for n in names)
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((1, 16, 14, 14)).astype("float32"),
              rng.standard_normal((1, 32, 14, 14)).astype("float32")]

    def run(module):
        vm = relax.VirtualMachine(tvm.compile(module, target=target.tvm_target), tvm.cpu())
        return vm["main"](*[tvm.runtime.tensor(a) for a in inputs]).numpy()

    np.testing.assert_allclose(run(scheduled), run(mod), rtol=1e-4, atol=1e-4)
    off, provenance = auto_schedule(mod, target, TuningOptions(search="none", use_records=False, conv=False))
    assert "conv" not in provenance and not any(gv.name_hint.endswith("_prepacked") for gv in off.functions)


def test_tuning_measures_the_convolution_schedule_first(tmp_path, tiny_cnn):
    """``tvmedge tune`` starts convolutions from the schedule compile would give them: it is built without the
    weight repack (done once at compile time) and measured, so a record must beat it to be kept."""
    from tvmedge import api
    from tvmedge.tune.database import TuningDatabase
    from tvmedge.tune.tuner import Budget

    report = api.tune(tiny_cnn, "x86-host", log_dir=tmp_path / "logs", budget=Budget(per_task=1))
    assert not any(t.error for t in report.tasks)
    records = TuningDatabase(tmp_path / "logs", create=False).ms_database.get_all_tuning_records()
    written = [r for r in records if "meta_schedule.layout_rewrite_preproc" in str(r.trace)]
    assert written, "no convolution was measured with its written schedule"
    assert all(0 < float(r.run_secs[0]) < 1.0 for r in written)  # measured, not the 1e9 placeholder


def test_a_record_of_this_cpu_is_applied_over_the_written_schedule(tmp_path):
    """When a convolution was given the written schedule and then measured (``--search N``), its record is what
    is built, not the written schedule that was offered first."""
    from tvmedge.tune.apply import schedule_module
    from tvmedge.tune.database import RecordSet, TuningDatabase
    from tvmedge.tune.measure import in_process_builder, local_runner
    from tvmedge.tune.tuner import Budget, tune_tasks

    target = CompileTarget.resolve("x86-host").tvm_target
    prepared = prepare(_module(), target)
    tasks = extract_tasks(prepared, target)
    written = ("conv", *conv_database(tasks, target))
    assert len(written[2]) == 1
    database = TuningDatabase(tmp_path / "logs", create=True)
    conv = [t for t in tasks if t.name in written[2]]
    tune_tasks(conv, database, budget=Budget(per_task=1), builder=in_process_builder(), runner=local_runner())
    assert "layout_rewrite_preproc" not in str(database.ms_database.get_all_tuning_records()[0].trace)
    scheduled, provenance = schedule_module(prepared, tasks, target, RecordSet([database]), written=[written])
    assert provenance["sources"][conv[0].name] == "record" and provenance["conv"] == 0
    assert "layout_rewrite_preproc" not in scheduled.script()  # the record's schedule, not the written one
    # without the record the written schedule is built
    scheduled, provenance = schedule_module(prepared, tasks, target, RecordSet([]), written=[written])
    assert provenance["conv"] == 1 and any(gv.name_hint.endswith("_prepacked") for gv in scheduled.functions)
