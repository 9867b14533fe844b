"""CostModel (tvmedge/partition/cost.py) and the learned correction's storage (tvmedge/partition/learn.py), issue 5.

The analytic numbers are checked against hand arithmetic; the learned model is checked for what it promises
(versioned per unit kind, used only where the policy says), not for its accuracy (that is measured by
``python -m tvmedge.partition.learn`` and recorded in the model's meta file).
"""

import json
import math

import numpy as np
import pytest

from tvmedge.devices.board import load_board
from tvmedge.errors import ConfigError
from tvmedge.partition import learn
from tvmedge.partition.cost import FEATURE_NAMES, CostModel, features, models_dir


def _units(board):
    return {u.name: u for u in load_board(board).compute_units}


def test_roofline_by_hand(tiny_ops):
    rk = _units("rk3588")
    conv = tiny_ops.op("conv2d_0")
    est = CostModel("none").roofline(conv, rk["a76"])
    compute = conv.flops / 153.6e3
    memory = conv.bytes_total / 33.8e3
    assert est.us == pytest.approx(max(compute, memory)) and est.precision == "fp32"
    assert est.bound == ("compute" if compute > memory else "memory")


def test_support_and_precision_rules(tiny_ops):
    rk = _units("rk3588")
    model = CostModel("none")
    softmax = tiny_ops.op("softmax_0")
    npu = model.roofline(softmax, rk["npu"])
    assert not npu.supported and math.isinf(npu.us) and "softmax is not in npu's ops" in npu.reason
    conv = model.roofline(tiny_ops.op("conv2d_0"), rk["npu"])  # fp32 model, NPU has fp16 and int8 only
    assert conv.supported and conv.precision == "fp16"
    licheepi_npu = _units("licheepi4a")["npu"]  # int8 only: an fp32 op cannot run there unquantized
    assert model.precision(tiny_ops.op("conv2d_0"), licheepi_npu) == (None, "npu has no fp32 rate (peaks: int8)")
    nothing = _units("rpi5")["videocore_vii"]  # ops: []
    assert "not in videocore_vii's ops (none)" in model.roofline(conv and tiny_ops.op("add_0"), nothing).reason


def test_correction_policies(tiny_ops, rk3588):
    assert models_dir().joinpath("cpu-v1.json").is_file(), "the shipped learned CPU model is missing"
    learned = CostModel("learned").table(tiny_ops, rk3588)
    analytic = CostModel("none").table(tiny_ops, rk3588)
    uniform = CostModel("uniform").table(tiny_ops, rk3588)
    assert learned.sources["a76"].startswith("learned:cpu-v") and learned.sources["npu"] == "analytic"
    assert set(analytic.sources.values()) == {"analytic"}
    assert uniform.sources["npu"].startswith("uniform:cpu-v")
    npu = learned.unit_index("npu")
    np.testing.assert_array_equal(learned.us[:, npu], analytic.us[:, npu])  # accelerators stay at peak
    a76 = learned.unit_index("a76")
    assert np.all(np.isfinite(learned.us[:, a76])) and not np.allclose(learned.us[:, a76], analytic.us[:, a76])
    # the one-op API and the batched table agree
    est = CostModel("learned").estimate(tiny_ops.op("conv2d_0"), rk3588.unit("a76"))
    assert est.us == pytest.approx(learned.us[0, a76], rel=1e-5) and est.source == learned.sources["a76"]


def test_unknown_correction_is_a_config_error():
    with pytest.raises(ConfigError, match="cost correction 'magic' is not valid; choose from: learned, none, uniform"):
        CostModel("magic")


def test_shipped_model_meta_records_held_out_error():
    meta = json.loads((models_dir() / "cpu-v1.meta.json").read_text())
    assert meta["unit_kind"] == "cpu" and meta["feature_names"] == list(FEATURE_NAMES)
    assert 0 < meta["held_out"]["median_ape"] < 1 and meta["samples"] > 100


def _records(tiny_ops, unit):
    """Synthetic measurements: every op of the tiny model at 3x its roofline."""
    records = []
    for k in range(4):  # four "models" so that leave-one-model-out has training data
        for op in tiny_ops.ops:
            rec = learn._record(f"m{k}", op, 1, None, unit)
            rec["measured_us"] = 3.0 * rec["roofline_us"]
            rec["signature"] += f"|model{k}"  # distinct shapes per model, so none is excluded as seen
            records.append(rec)
    return records


def test_train_save_and_load_versions(tmp_path, tiny_ops, rk3588):
    unit = learn.host_unit()
    records = _records(tiny_ops, unit)
    evaluation = learn.evaluate_held_out(records, unit)
    assert evaluation["median_ape"] < 0.05  # a constant factor is easy to learn
    first = learn.save_model(learn.train(records, unit), records, evaluation, tmp_path)
    second = learn.save_model(learn.train(records, unit), records, evaluation, tmp_path)
    assert (first.name, second.name) == ("cpu-v1.json", "cpu-v2.json")
    model = CostModel("learned", models=tmp_path)
    assert model.learned_model("cpu")[1]["name"] == "cpu-v2" and model.learned_model("gpu") is None
    est = model.estimate(tiny_ops.op("conv2d_0"), unit)
    assert est.factor == pytest.approx(3.0, rel=0.1)


def test_features_have_the_declared_length(tiny_ops):
    unit = learn.host_unit()
    assert all(len(features(op, unit)) == len(FEATURE_NAMES) for op in tiny_ops.ops)


@pytest.mark.slow
def test_measuring_ops_on_this_host(tiny_cnn):
    # The real measurement path (build one op alone with the no-search schedule, time it); ~30 s, mostly
    # MetaSchedule's first-use start-up. No timing is asserted, only that times come back.
    records = learn.measure_models([tiny_cnn], per_model=2, progress=lambda message: None)
    assert len(records) == 2 and all(r["measured_us"] > 0 for r in records)
