"""Tuning end to end on small models: records, resume, reuse across models, applied at compile (issue 4)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tvmedge import api
from tvmedge.tune.auto import TuningOptions
from tvmedge.tune.database import RECORDS, TuningDatabase
from tvmedge.tune.tuner import Budget


@pytest.fixture(scope="module")
def tuned_logs(tmp_path_factory, tiny_cnn):
    """tiny_cnn tuned with 2 candidates per task into a private database."""
    folder = tmp_path_factory.mktemp("logs") / "db"
    report = api.tune(tiny_cnn, "x86-host", budget=Budget(per_task=2), log_dir=folder)
    return folder, report


def test_every_task_gets_records(tuned_logs):
    folder, report = tuned_logs
    assert report.trials == 2 * len(report.tasks) and not report.interrupted
    assert all(t.best_us is not None and t.best_us > 0 for t in report.tasks)
    assert TuningDatabase(folder).summary()["tuned_workloads"] == len(report.tasks)


def test_a_second_run_repeats_no_finished_work(tuned_logs, tiny_cnn):
    folder, first = tuned_logs
    again = api.tune(tiny_cnn, "x86-host", budget=Budget(per_task=2), log_dir=folder)
    assert again.trials == 0
    assert all(t.records_before >= 2 for t in again.tasks)


def test_a_second_model_reuses_the_workloads_it_shares(tuned_logs, tiny_cnn, tmp_path):
    # Same convolutions, a different classifier head (5 classes): only the new tasks are tuned.
    folder, first = tuned_logs
    model = onnx.load(tiny_cnn)
    inits = {init.name: init for init in model.graph.initializer}
    rng = np.random.default_rng(3)
    inits["fc.w"].CopyFrom(numpy_helper.from_array(rng.standard_normal((5, 32)).astype(np.float32), "fc.w"))
    inits["fc.b"].CopyFrom(numpy_helper.from_array(np.zeros(5, np.float32), "fc.b"))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5
    path = tmp_path / "five_classes.onnx"
    onnx.save(model, path)
    report = api.tune(path, "x86-host", budget=Budget(per_task=2), log_dir=folder)
    shared = {t.name for t in first.tasks} & {t.name for t in report.tasks if t.records_before}
    assert {"fused_conv2d_add_relu", "fused_conv2d1_maximum_minimum", "fused_conv2d2_add1_relu1"} <= shared
    new = [t for t in report.tasks if not t.records_before]
    assert new and report.trials == 2 * len(new)  # only the head's tasks ran


def test_compile_applies_the_records_and_says_so(tuned_logs, tiny_cnn, tmp_path):
    folder, report = tuned_logs
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "a",
                           tuning=TuningOptions(search="none", records=str(folder)))
    tuning = artifact.manifest.tuning
    assert tuning["tuned"] == tuning["tasks"] == len(report.tasks) and tuning["fallback"] == 0
    assert tuning["records"] == folder.name and tuning["trials"] == 0
    x = np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32)
    naive = api.compile(tiny_cnn, "x86-host", out=tmp_path / "n", tuning=TuningOptions(search="naive"))
    np.testing.assert_allclose(api.load(artifact.path).run(x)["probabilities"],
                               api.load(naive.path).run(x)["probabilities"], rtol=1e-5, atol=1e-6)


def _conv_model(path):
    """One 3x3 convolution big enough for schedules to matter (naive loops vs tiled, parallel code)."""
    from onnx import TensorProto, helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 56, 56])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_tuned_build_is_faster_than_naive_in_the_same_run(tmp_path):
    # Same process, same inputs; the margin is wide (measured ~10x) so load on the machine cannot flip it.
    model = _conv_model(tmp_path / "conv.onnx")
    tuned = api.compile(model, "x86-host", out=tmp_path / "t", tuning=TuningOptions(search="4", log_root=str(tmp_path / "logs")))
    naive = api.compile(model, "x86-host", out=tmp_path / "n", tuning=TuningOptions(search="naive"))
    assert tuned.manifest.tuning["trials"] == 4
    x = np.random.default_rng(0).random((1, 64, 56, 56)).astype(np.float32)
    best = {}
    for name, artifact in (("tuned", tuned), ("naive", naive)):
        _, stats = api.load(artifact.path).timed_run(x, repeat=5)
        best[name] = stats.min_ms
    assert best["tuned"] * 2 < best["naive"], best


def test_killed_run_resumes_without_losing_records(tmp_path, tiny_cnn):
    folder = tmp_path / "db"
    command = [sys.executable, "-m", "tvmedge.cli.main", "tune", str(tiny_cnn), "--target", "x86-host",
               "--per-task", "3", "--log-dir", str(folder), "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    records = folder / RECORDS
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if records.exists() and len(records.read_text().splitlines()) >= 6:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(records.read_text().splitlines())
    assert kept >= 6
    report = api.tune(tiny_cnn, "x86-host", budget=Budget(per_task=3), log_dir=folder)
    assert sum(t.records_before for t in report.tasks) >= 6  # nothing measured before the kill was lost
    assert report.trials == 3 * len(report.tasks) - sum(min(3, t.records_before) for t in report.tasks)
    assert all(t.best_us is not None for t in report.tasks)


def test_a_failing_task_does_not_stop_the_others(monkeypatch, tmp_path):
    # A MetaSchedule ScheduleError on one task must leave it on the fallback schedule, not abort the run.
    from tvmedge.tune import tuner
    from tvmedge.tune.tasks import Task

    class FakeDatabase:
        path = tmp_path
        best_secs: dict = {}

        def count(self, mod):
            return 0

        def best(self, mod, target):
            return self.best_secs.get(mod)

    database = FakeDatabase()

    def fake_measure(task, db, trials, **_):
        if task.name == "bad":
            raise RuntimeError("ScheduleError: cannot tile this block\n(details)")
        db.best_secs[task.mod] = 1e-6

    monkeypatch.setattr(tuner, "_measure", fake_measure)
    tasks = [Task(name, name, 1, None) for name in ("first", "bad", "last")]
    report = tuner.tune_tasks(tasks, database, budget=Budget(per_task=2), builder=None, runner=None)
    by_name = {t.name: t for t in report.tasks}
    assert by_name["first"].best_us == by_name["last"].best_us == 1.0
    assert by_name["bad"].best_us is None and by_name["bad"].error == "ScheduleError: cannot tile this block"
