"""Running an artifact on a board through TVM's RPC (`tvmedge run --rpc`), the emulated rk3588 serving it."""

import subprocess
import time

import numpy as np
import pytest
from click.testing import CliRunner

from tvmedge import api
from tvmedge.cli.main import cli
from tvmedge.devices.board import load_board
from tvmedge.emulator import setup_board
from tvmedge.emulator.rack import free_ports
from tvmedge.errors import ConfigError, TvmedgeError
from tvmedge.runtime.remote import connect


@pytest.mark.emulated
def test_run_on_the_emulated_board_over_rpc(arm_artifact, x86_artifact, tiny_input):
    port = free_ports(1)[0]
    server = setup_board(load_board("rk3588")).serve_rpc(port=port, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:  # the emulated server takes a few seconds to start
            try:
                result = api.run(arm_artifact, {"input": tiny_input}, rpc=f"127.0.0.1:{port}", repeat=1)
                break
            except TvmedgeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        host = api.run(x86_artifact, {"input": tiny_input}).outputs
        assert result.where == f"rpc 127.0.0.1:{port}" and not result.emulated
        np.testing.assert_allclose(result.outputs["probabilities"], host["probabilities"], rtol=1e-4, atol=1e-5)
        result = CliRunner().invoke(cli, ["run", str(arm_artifact), "--rpc", f"127.0.0.1:{port}", "--repeat", "0"])
        assert result.exit_code == 0, result.output
        assert f"on rpc 127.0.0.1:{port}" in result.stdout
    finally:
        server.kill()


def test_bad_addresses_are_one_line_errors():
    with pytest.raises(ConfigError, match="--rpc 'nohost' must look like HOST:PORT"):
        connect(rpc="nohost")
    with pytest.raises(ConfigError, match="--tracker needs --key"):
        connect(tracker="127.0.0.1:9190")
    with pytest.raises(TvmedgeError, match=r"cannot reach RPC server 127.0.0.1:\d+"):
        connect(rpc=f"127.0.0.1:{free_ports(1)[0]}", timeout=5)


@pytest.mark.parametrize("text", ["nohost", ":9090", "host:", "host:90x", "host"])
def test_host_port_has_one_parser(text):
    # HOST:PORT was parsed in three places, one of them without checks (issue 12): one parser for all.
    from tvmedge.runtime.remote import parse_address

    with pytest.raises(ConfigError, match=rf"^--tracker '{text}' must look like HOST:PORT$"):
        parse_address(text, "--tracker")
    assert parse_address("10.0.0.2:9190") == ("10.0.0.2", 9190)
