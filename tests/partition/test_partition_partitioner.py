"""Partitioners and plans (tvmedge/partition/partitioner.py, plan.py, report.py), issue 5 items 3-4.

Every plan must be valid (each op placed once, on a unit that can run it, in topological order), the
optimiser must never lose to the greedy baseline on predicted cost, impossible placements must raise
PartitionError, and units TVM cannot generate code for must be flagged in the plan.
"""

import pytest

from tvmedge.devices.graph import device_graph
from tvmedge.errors import PartitionError
from tvmedge.partition.cost import CostModel
from tvmedge.partition.partitioner import (ALGORITHMS, Balance, FixedRule, Greedy, MinCut, Partitioner,
                                           Pipeline, SingleUnit, TopoDP)
from tvmedge.partition.plan import VENDOR, evaluate
from tvmedge.partition.report import partition_ops


def _assert_valid(plan, ops, table):
    assert list(plan.assignment) == [op.name for op in ops.ops]  # every op once, topological order
    for i, op in enumerate(ops.ops):
        assert table.estimates[i][table.unit_index(plan.assignment[op.name])].supported, op.name
    assert sum(len(s.ops) for s in plan.stages) == len(ops.ops)
    for a, b in zip(plan.stages, plan.stages[1:]):
        assert a.unit != b.unit  # stages are maximal runs
    assert plan.latency_us == pytest.approx(plan.compute_us + plan.transfer_us)


@pytest.fixture(scope="module", params=["tiny", "squeezenet"])
def case(request, tiny_ops, squeezenet_ops, rk3588):
    ops = tiny_ops if request.param == "tiny" else squeezenet_ops
    return ops, rk3588, CostModel("learned").table(ops, rk3588)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_gives_a_valid_plan(case, name):
    ops, devices, table = case
    plan = ALGORITHMS[name]().partition(devices, ops, table)
    _assert_valid(plan, ops, table)
    assert plan.algorithm == name and plan.board == "rk3588"


def test_optimiser_beats_or_ties_greedy_and_every_baseline(case):
    ops, devices, table = case
    best = MinCut().partition(devices, ops, table).latency_us
    for baseline in (Greedy(), TopoDP(), SingleUnit(), FixedRule()):
        assert best <= baseline.partition(devices, ops, table).latency_us + 1e-6, baseline.name
    assert TopoDP().partition(devices, ops, table).latency_us <= Greedy().partition(devices, ops, table).latency_us


def test_pipeline_has_contiguous_stages_on_distinct_units_and_beats_single_unit_throughput(case):
    ops, devices, table = case
    plan = Pipeline().partition(devices, ops, table)
    units = [s.unit for s in plan.stages]
    assert len(units) == len(set(units))
    assert plan.throughput_ips >= SingleUnit().partition(devices, ops, table).throughput_ips - 1e-9
    assert plan.objective == "throughput"


def test_balance_never_loses_throughput_to_the_plans_it_starts_from(case):
    ops, devices, table = case
    balanced = Balance().partition(devices, ops, table)
    for other in (Pipeline(), MinCut(), Greedy(), SingleUnit()):
        assert balanced.bottleneck_us <= other.partition(devices, ops, table).bottleneck_us + 1e-6, other.name


def test_vendor_units_are_flagged(case):
    ops, devices, table = case
    plan = FixedRule().partition(devices, ops, table)  # activations go to the NPU (target: null)
    npu_stages = [s for s in plan.stages if s.unit == "npu"]
    assert npu_stages and all(s.codegen == VENDOR for s in npu_stages)
    assert any("npu: vendor toolchain required" in note for note in plan.notes)
    assert all(s.codegen == "tvm" for s in plan.stages if s.unit != "npu")


def test_toy_board_split_with_transfers(make_board, tiny_ops):
    # acc runs conv2d/relu/add/pool 100x faster than the cpu, but not softmax, clip, matmul or reshape
    devices = device_graph(make_board())
    report = partition_ops(tiny_ops, devices, objective="latency", cost_model=CostModel("none"))
    plan, table = report.plan, report.table
    _assert_valid(plan, tiny_ops, table)
    for op in tiny_ops.ops:
        if op.kind in ("softmax", "clip", "matmul", "reshape"):
            assert plan.assignment[op.name] == "cpu"
    # each transfer is priced by the link: 20 us latency + 30 us sync + bytes / 5 GB/s
    for t in plan.transfers:
        assert t.us == pytest.approx(50 + t.bytes / 5e3)
    assert report.comparison()[0]["plan"] == "single-unit"
    rows = report.explain()
    assert [r["op"] for r in rows] == [op.name for op in tiny_ops.ops]
    assert all(r["why"] for r in rows)
    softmax = next(r for r in rows if r["op"] == "softmax_0")
    assert softmax["costs_us"]["acc"] is None and softmax["why"] == "only cpu can run it"


def test_op_no_unit_can_run_raises_partition_error(make_board, tiny_ops):
    devices = device_graph(make_board(cpu_ops=["conv2d", "add", "relu"]))
    with pytest.raises(PartitionError) as info:
        partition_ops(tiny_ops, devices)
    message = str(info.value)
    assert "\n" not in message and message.startswith("op clip_0 (call_tir:maximum, float32) can run on no unit "
                                                      "of board toy2: op kind clip is not in cpu's ops")


def test_placing_an_op_where_it_cannot_run_is_rejected(make_board, tiny_ops):
    devices = device_graph(make_board())
    table = CostModel("none").table(tiny_ops, devices)
    with pytest.raises(PartitionError, match="op clip_0 cannot run on unit acc: op kind clip is not in acc.s ops"):
        evaluate(["acc"] * len(tiny_ops.ops), table, algorithm="bad")
    with pytest.raises(PartitionError, match="acc of board toy2 cannot run every op"):
        SingleUnit("acc").partition(devices, tiny_ops, table)


def test_single_unit_baseline_reports_why_when_no_unit_runs_everything(make_board, tiny_ops):
    # without a CPU that runs everything there is no single-unit plan; the report says so instead of failing
    path = make_board(cpu_ops=["conv2d", "add", "relu", "clip", "pool", "reshape", "matmul"],
                       acc_ops=("softmax", "add"), acc_peaks={"fp32": 100})
    report = partition_ops(tiny_ops, device_graph(path), cost_model=CostModel("none"))
    assert "single-unit" in report.failed and "cannot run every op" in report.failed["single-unit"]
    assert report.plan.assignment["softmax_0"] == "acc"


def test_partitioner_contract_is_an_abc_with_a_documented_contract():
    assert "every op of ``ops`` is placed exactly once" in Partitioner.__doc__
    with pytest.raises(TypeError):
        Partitioner()


def test_toy_partitioner_through_the_contract(make_board, tiny_ops):
    class AllOnHost(Partitioner):
        name = "all-on-host"

        def assign(self, table):
            return [table.unit_index(table.devices.host)] * len(table.ops.ops)

    devices = device_graph(make_board())
    plan = AllOnHost().partition(devices, tiny_ops, CostModel("none"))
    assert set(plan.assignment.values()) == {"cpu"} and plan.transfers == [] and len(plan.stages) == 1
