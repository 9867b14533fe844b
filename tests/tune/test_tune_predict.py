"""The zero-measurement scheduler (issue 13): schedules predicted by the shipped cost model, nothing measured."""

import numpy as np
import pytest

from tvmedge import api
from tvmedge.errors import TuningError
from tvmedge.peer import onnxruntime_outputs
from tvmedge.tune.auto import TuningOptions


@pytest.fixture
def no_measuring(monkeypatch):
    """Every way MetaSchedule or tvmedge could measure a candidate raises: building, running, timing."""
    from tvm.s_tir.meta_schedule import builder, runner

    import tvmedge.tune.measure as measure

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to measure")

    monkeypatch.setattr(measure, "measurer_for", refuse)
    monkeypatch.setattr(measure, "local_runner", refuse)
    monkeypatch.setattr(measure, "in_process_builder", refuse)
    for cls in (runner.LocalRunner, runner.RPCRunner, builder.LocalBuilder):
        monkeypatch.setattr(cls, "__init__", refuse)
    monkeypatch.setattr(runner.LocalRunner, "run", refuse)
    import tvm.runtime

    monkeypatch.setattr(tvm.runtime.Module, "time_evaluator", refuse)


def test_search_none_schedules_every_task_and_measures_nothing(tmp_path, tiny_cnn, tiny_input, no_measuring):
    """Convolutions get the written schedule (tvmedge.tune.conv), every other task a predicted one."""
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "x86", tuning=TuningOptions(search="none"))
    tuning = artifact.manifest.tuning
    assert tuning["trials"] == 0 and tuning["measured_on"] is None
    assert tuning["predicted"] + tuning["conv"] == tuning["tasks"] > 0 and tuning["fallback"] == 0
    assert tuning["conv"] > 0 and tuning["predicted"] > 0
    assert tuning["cost_model"].startswith("schedule-v")
    assert set(tuning["sources"].values()) == {"predicted", "conv"}
    assert set(tuning["untuned_tasks"]) == {name for name, s in tuning["sources"].items() if s == "predicted"}
    outputs = api.load(artifact.path).run({"input": tiny_input})
    expected = onnxruntime_outputs(tiny_cnn, {"input": tiny_input})
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("board", ["rk3588", "bananapi-f3"])
def test_cross_compile_default_predicts_and_measures_nothing(tmp_path, tiny_cnn, board, no_measuring):
    artifact = api.compile(tiny_cnn, board, out=tmp_path / board)  # default search: quick, but no board attached
    tuning = artifact.manifest.tuning
    assert tuning["search"] == "quick" and tuning["trials"] == 0
    assert tuning["predicted"] + tuning["conv"] == tuning["tasks"] and "nothing was measured" in tuning["note"]


def test_predicted_schedule_is_not_the_fallback(tiny_cnn):
    """The heaviest task's predicted schedule is tiled (the fallback never splits loops), so prediction did
    something the no-search schedule does not."""
    from tvmedge.devices.target import CompileTarget
    from tvmedge.frontend.onnx import import_model
    from tvmedge.tune.costmodel import load_schedule_model
    from tvmedge.tune.fallback import fallback_database
    from tvmedge.tune.predict import predict_schedules
    from tvmedge.tune.tasks import extract_tasks, prepare
    from tvmedge.tune.tuner import _importance

    target = CompileTarget.resolve("x86-host").tvm_target
    tasks = extract_tasks(prepare(import_model(tiny_cnn).mod, target), target)
    heaviest = max(tasks, key=_importance)
    prediction = predict_schedules([heaviest], target, load_schedule_model())
    predicted = prediction.candidates[heaviest.name][0].trace
    fallback = fallback_database([heaviest], target).get_all_tuning_records()[0].trace
    kinds = lambda trace: [inst.kind.name for inst in trace.insts]  # noqa: E731
    assert "SamplePerfectTile" in kinds(predicted) and "Split" in kinds(predicted)
    assert "SamplePerfectTile" not in kinds(fallback)


def test_records_win_over_predictions(tmp_path, tiny_cnn):
    from tvmedge.tune.database import RECORDS
    from tvmedge.tune.tuner import Budget

    records = tmp_path / "logs"
    api.tune(tiny_cnn, "x86-host", log_dir=records, budget=Budget(per_task=1))
    lines = (records / RECORDS).read_text().splitlines()
    (records / RECORDS).write_text(lines[0] + "\n")  # keep one task's record
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "o",
                           tuning=TuningOptions(search="none", records=str(records)))
    tuning = artifact.manifest.tuning
    assert tuning["tuned"] == 1 and tuning["predicted"] + tuning["conv"] == tuning["tasks"] - 1, tuning
    assert list(tuning["sources"].values()).count("record") == 1


def test_vector_lanes_follow_the_board():
    from tvmedge.devices.target import CompileTarget
    from tvmedge.tune.predict import vector_lanes

    lanes = {b: vector_lanes(CompileTarget.resolve(b).tvm_target) for b in ("rk3588", "visionfive2", "bananapi-f3")}
    assert lanes == {"rk3588": 4, "visionfive2": 1, "bananapi-f3": 8}


def test_shipped_model_meta_matches_the_file():
    from tvmedge.tune.costmodel import load_schedule_model, model_files

    files = model_files()
    assert files, "a schedule cost model ships with the package"
    model = load_schedule_model()
    assert model.path == files[-1] and model.meta.members == len(model.boosters) >= 1
    assert model.meta.workloads > 0 and model.meta.candidates > model.meta.workloads
    assert model.meta.trained_on and model.meta.held_out.get("workloads", 0) > 0


def test_corrupt_model_file_is_one_line(tmp_path):
    from tvmedge.tune.costmodel import ScheduleModel

    path = tmp_path / "schedule-v9.npz"
    path.write_bytes(b"not a zip")
    path.with_suffix(".meta.json").write_text('{"version": 9, "members": 1}')
    with pytest.raises(TuningError, match=r"schedule cost model .*schedule-v9.npz cannot be read"):
        ScheduleModel.load(path)


def test_quick_search_measures_the_predicted_candidates(tmp_path, tiny_cnn):
    """Where it can measure, compile measures the cost model's top picks (not random samples) — for convolutions
    the written schedule first — and keeps the fastest as a record: every task ends up with a measured record."""
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "o",
                           tuning=TuningOptions(search="2", log_root=str(tmp_path / "logs")))
    tuning = artifact.manifest.tuning
    assert tuning["measured_on"] == "host" and 0 < tuning["trials"] <= 2 * tuning["tasks"]
    assert tuning["tuned"] == tuning["tasks"] and tuning["predicted"] == tuning["conv"] == 0, tuning


def test_a_compile_uses_what_it_measured_when_the_records_folder_already_existed(tmp_path, tiny_cnn):
    """The records a compile measures count for that compile even when its records folder was opened before it
    measured (a second compile; each used to apply only the records of earlier runs)."""
    import onnx
    from onnx import TensorProto, helper

    other = tmp_path / "relu.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), other)
    logs = str(tmp_path / "logs")
    first = api.compile(other, "x86-host", out=tmp_path / "a", tuning=TuningOptions(search="1", log_root=logs))
    assert first.manifest.tuning["tuned"] == first.manifest.tuning["tasks"] == 1
    second = api.compile(tiny_cnn, "x86-host", out=tmp_path / "b", tuning=TuningOptions(search="1", log_root=logs))
    tuning = second.manifest.tuning
    assert tuning["trials"] > 0 and tuning["tuned"] == tuning["tasks"], tuning


@pytest.mark.emulated
@pytest.mark.parametrize("board", ["rk3588", "bananapi-f3"])
def test_predicted_schedules_give_the_hosts_outputs_on_the_emulated_board(tmp_path, tiny_cnn, tiny_input, board):
    """The default cross compile (schedules predicted, nothing measured) runs on the emulated board and gives
    the outputs of the host's build of the same model, within float rounding of a different vector unit."""
    host = api.compile(tiny_cnn, "x86-host", out=tmp_path / "host", tuning=TuningOptions(search="none"))
    cross = api.compile(tiny_cnn, board, out=tmp_path / board)
    tuning = cross.manifest.tuning
    assert tuning["predicted"] + tuning["conv"] == tuning["tasks"] and tuning["conv"] > 0
    on_board = api.run(cross.path, {"input": tiny_input}, board=f"emu:{board}", repeat=1)
    expected = api.run(host.path, {"input": tiny_input}).outputs["probabilities"]
    assert on_board.emulated is True
    np.testing.assert_allclose(on_board.outputs["probabilities"], expected, rtol=1e-5, atol=1e-6)


def test_the_quick_searchs_minutes_cover_its_prediction():
    """A model with many tasks predicts longer; the quick search then measures less, so its wall time stays."""
    from tvmedge.tune.auto import measuring_budget
    from tvmedge.tune.tuner import QUICK_MIN_MEASURE, QUICK_MINUTES, Budget

    quick = Budget.parse_search("quick")
    assert measuring_budget("quick", quick, 0.0).minutes == QUICK_MINUTES
    assert measuring_budget("quick", quick, 60.0).minutes == pytest.approx(QUICK_MINUTES - 1.0)
    assert measuring_budget("quick", quick, 600.0).minutes == QUICK_MIN_MEASURE
    assert measuring_budget("4", Budget.parse_search("4"), 600.0) == Budget.parse_search("4")
