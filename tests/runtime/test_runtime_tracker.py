"""Several emulated boards behind TVM's RPC tracker serve requests in parallel: how a rack of boards scales out,
with TVM's own tracker and RPC server (no new protocol), and `tvmedge board list` showing what the tracker knows.
"""

import json
import re
import socket
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from tvmedge import api
from tvmedge.cli.main import cli
from tvmedge.emulator.rack import emulated_rack, free_ports
from tvmedge.errors import ConfigError, TvmedgeError
from tvmedge.runtime import remote
from tvmedge.runtime.remote import tracker_summary

KEY = "rk3588"


def _wait_until(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except TvmedgeError:  # the tracker is still starting
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def _queue(summary: dict) -> dict:
    return next((row for row in summary["keys"] if row["key"] == KEY), {"servers": 0, "free": 0, "pending": 0})


def _all_free(tracker: str):
    summary = tracker_summary(tracker)
    return summary if _queue(summary) == {"key": KEY, "servers": 2, "free": 2, "pending": 0} else None


def _connections(log) -> int:
    """Sessions a board's RPC server accepted so far (TVM's server logs one line per connection)."""
    return log.read_text().count("connected from")


@pytest.fixture(scope="module")
def two_boards():
    """TVM's tracker on loopback and two emulated rk3588 boards registered with it under key rk3588 (a rack).

    Yields ``(tracker "HOST:PORT", {"127.0.0.1:PORT": board log})``.
    """
    with emulated_rack([KEY, KEY]) as rack:
        def address(log):  # the server moves to a later port if its port was taken meanwhile
            return "127.0.0.1:" + re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text()).group(1)

        yield rack.tracker, {address(board.log): board.log for board in rack.boards}


@pytest.mark.emulated
def test_board_list_shows_both_boards(two_boards):
    tracker, boards = two_boards
    summary = _wait_until(lambda: _all_free(tracker), "both boards to be free")
    assert summary["servers"] == [{"address": address, "key": KEY} for address in sorted(boards)]

    result = CliRunner().invoke(cli, ["board", "list", "--tracker", tracker, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"tracker": tracker, "servers": summary["servers"],
                                         "keys": [{"key": KEY, "servers": 2, "free": 2, "pending": 0}]}

    result = CliRunner().invoke(cli, ["board", "list", "--tracker", tracker])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["key", "servers", "free", "pending"] in lines and [KEY, "2", "2", "0"] in lines
    assert ["server", "key"] in lines and all([address, KEY] in lines for address in boards)


@pytest.mark.emulated
def test_two_boards_serve_two_runs_at_the_same_time(two_boards, arm_artifact, x86_artifact, tiny_input, monkeypatch):
    tracker, boards = two_boards
    _wait_until(lambda: _all_free(tracker), "both boards to be free")
    before = {address: _connections(log) for address, log in boards.items()}

    # Each run holds its session open at a barrier until the other run has its own session too. One board
    # serves one session at a time (TVM's server forks per session and waits for it), so if a single board
    # served the runs one after the other, the second request would wait at the tracker for the first
    # session to end, which waits at the barrier for the second: the barrier times out and both runs fail.
    while_both_open = []
    barrier = threading.Barrier(2, action=lambda: while_both_open.append(tracker_summary(tracker)), timeout=60)
    real_connect = remote.connect

    def connect_and_wait(**kwargs):
        session, where = real_connect(**kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            del session  # end this session now (not at its timeout), so that a run waiting for this board fails too
            raise AssertionError("the two runs never had a session open at the same time") from None
        return session, where

    monkeypatch.setattr(remote, "connect", connect_and_wait)  # api.run imports it at call time
    results, errors = [], []

    def run():
        try:
            results.append(api.run(arm_artifact, {"input": tiny_input}, tracker=tracker, key=KEY, repeat=1))
        except BaseException as err:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a run never finished"
    if errors:
        raise errors[0]

    # while both sessions were open the tracker had both boards handed out: none free, none waiting
    assert _queue(while_both_open[0]) == {"key": KEY, "servers": 2, "free": 0, "pending": 0}
    # and each board's server accepted exactly one of the two sessions
    assert {address: _connections(log) - before[address] for address, log in boards.items()} == \
        {address: 1 for address in boards}
    host = api.run(x86_artifact, {"input": tiny_input}).outputs
    for result in results:
        assert result.where == f"tracker {tracker} key {KEY}"
        np.testing.assert_allclose(result.outputs["probabilities"], host["probabilities"], rtol=1e-4, atol=1e-5)
    _wait_until(lambda: _all_free(tracker), "both boards to be free again after their sessions")


def test_board_list_errors_are_one_line():
    (port,) = free_ports(1)
    result = CliRunner().invoke(cli, ["board", "list", "--tracker", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot reach tracker 127.0.0.1:{port}: [Errno 111] Connection refused"]
    assert result.stdout == ""

    result = CliRunner().invoke(cli, ["board", "list", "--tracker", "nohost"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["Error: --tracker 'nohost' must look like HOST:PORT"]

    result = CliRunner().invoke(cli, ["board", "list"])
    assert result.exit_code == 2 and "Missing option '--tracker'" in result.stderr


def test_a_peer_that_is_not_a_tracker_is_a_one_line_error_not_a_hang():
    with socket.socket() as listener:  # accepts, never answers TVM's tracker handshake
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TvmedgeError, match=rf"^cannot reach tracker 127.0.0.1:{port}: no answer \(timed out\)$"):
            tracker_summary(f"127.0.0.1:{port}", timeout=1)
    with pytest.raises(ConfigError):
        tracker_summary("127.0.0.1:port")


def test_rack_refuses_a_taken_tracker_port_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["board", "rack", "rk3588", "--port", str(port)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: cannot start TVM's tracker on 127.0.0.1:{port}: Address already in use")


def test_rack_needs_boards_that_can_be_emulated():
    with pytest.raises(ConfigError, match="runs natively on this host"):
        with emulated_rack(["x86-host"]):
            pass
