"""Tuning on a board through TVM's RPC tracker: the emulated rk3588 serves TVM's RPC server (issue 4 §5).

Emulated timings mean nothing for the real board; what this proves is the flow: tracker, board-side server
(runtime library only), cross-built candidates uploaded and timed remotely, records stored and applied.
"""

import socket
import subprocess
import time

import numpy as np
import pytest

from tvmedge import api
from tvmedge.devices.board import load_board
from tvmedge.devices.emulator import setup_board
from tvmedge.tune.auto import TuningOptions
from tvmedge.tune.tuner import Budget

pytestmark = pytest.mark.emulated


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tracker_with_board():
    from tvm.rpc.tracker import Tracker

    # TVM's Tracker object (not `python -m tvm.exec.rpc_tracker`, whose worker process outlives a kill)
    first = _free_port()
    tracker = Tracker(host="127.0.0.1", port=first, port_end=first + 100, silent=True)
    port = tracker.port
    server = setup_board(load_board("rk3588")).serve_rpc(port=_free_port(), tracker=f"127.0.0.1:{port}",
                                                          key="rk3588-emu", stdout=subprocess.DEVNULL)
    try:
        from tvm import rpc

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                summary = rpc.connect_tracker("127.0.0.1", port).summary()
                if any(q.get("free", 0) for k, q in summary.get("queue_info", {}).items() if k == "rk3588-emu"):
                    break
            except Exception:  # the tracker is still starting
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the emulated board never registered with the tracker")
        yield f"127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()
        tracker.terminate()


def test_tune_on_the_emulated_board_then_compile_with_the_records(tracker_with_board, tiny_cnn, tmp_path, x86_artifact):
    logs = tmp_path / "aarch64-records"
    report = api.tune(tiny_cnn, "rk3588", budget=Budget(per_task=1), log_dir=logs, tracker=tracker_with_board,
                      key="rk3588-emu")
    assert report.trials == len(report.tasks) and all(t.best_us for t in report.tasks)
    artifact = api.compile(tiny_cnn, "rk3588", out=tmp_path / "arm",
                           tuning=TuningOptions(search="none", records=str(logs)))
    assert artifact.manifest.tuning["tuned"] == artifact.manifest.tuning["tasks"]
    x = np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32)
    board_out, stats = api.run(artifact.path, {"input": x}, board="emu:rk3588")
    host_out, _ = api.run(x86_artifact, {"input": x})
    assert stats["emulated"]
    np.testing.assert_allclose(board_out["probabilities"], host_out["probabilities"], rtol=1e-4, atol=1e-5)
