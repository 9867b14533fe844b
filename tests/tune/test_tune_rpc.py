"""Tuning on a board through TVM's RPC tracker (issue 4 §5, issue 8 §4): the emulated rk3588 serves TVM's RPC
server from its Python runtime, the emulated visionfive2 (riscv64, no Python) from tvmedge-rpc-server.

Emulated timings mean nothing for the real board; what this proves is the flow: tracker, board-side server
(runtime library only), cross-built candidates uploaded and timed remotely, records stored and applied.
"""

import numpy as np
import pytest

from tvmedge import api
from tvmedge.emulator.rack import emulated_rack
from tvmedge.tune.auto import TuningOptions
from tvmedge.tune.tuner import Budget

pytestmark = pytest.mark.emulated


@pytest.fixture(scope="module", params=["rk3588", "visionfive2"])
def tracker_with_board(request):
    """(tracker address, board name, key): one emulated board serving TVM's RPC behind TVM's tracker."""
    with emulated_rack([request.param]) as rack:
        yield rack.tracker, request.param, rack.boards[0].key


def test_tune_on_the_emulated_board_then_compile_with_the_records(tracker_with_board, tiny_cnn, tmp_path, x86_artifact):
    tracker, board, key = tracker_with_board
    logs = tmp_path / f"{board}-records"
    report = api.tune(tiny_cnn, board, budget=Budget(per_task=1), log_dir=logs, tracker=tracker, key=key)
    assert report.trials == len(report.tasks) and all(t.best_us for t in report.tasks)
    artifact = api.compile(tiny_cnn, board, out=tmp_path / board, tuning=TuningOptions(search="none", records=str(logs)))
    assert artifact.manifest.tuning["tuned"] == artifact.manifest.tuning["tasks"]
    x = np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32)
    host_out = api.run(x86_artifact, {"input": x}).outputs
    for where in (f"emu:{board}", None):  # on the emulated board, then through the tracker's RPC session
        result = api.run(artifact.path, {"input": x}, board=where, tracker=None if where else tracker,
                         key=None if where else key)
        np.testing.assert_allclose(result.outputs["probabilities"], host_out["probabilities"], rtol=1e-4, atol=1e-5)
    assert result.where == f"tracker {tracker} key {key}"
