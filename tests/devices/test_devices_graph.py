"""DeviceGraph (tvmedge/devices/graph.py) and ``tvmedge devices show`` (issue 5, item 1).

The partitioner places ops on this graph, so a bad board (a link to a unit that does not exist, a negative
bandwidth, units nobody can reach) must fail at load time with one clear line, not as a strange plan.
"""

import json

import networkx as nx
import pytest
import yaml
from click.testing import CliRunner

from tvmedge.cli.main import cli
from tvmedge.devices.board import list_boards
from tvmedge.devices.graph import DeviceGraph, device_graph
from tvmedge.errors import ConfigError

CPU = {"name": "cpu", "kind": "cpu", "peak_gops": {"fp32": 10}, "mem_bandwidth_gbps": 10, "ops": "all",
       "target": {"kind": "llvm"}}


def _board(tmp_path, units, links, name="toy"):
    data = {"name": name, "arch": "x86_64", "target": {"kind": "llvm"}, "compute_units": units, "links": links}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _unit(name, kind="gpu", **extra):
    return {"name": name, "kind": kind, "peak_gops": {"fp32": 100}, "mem_bandwidth_gbps": 10,
            "ops": ["conv2d"], **extra}


def _error(spec) -> str:
    with pytest.raises(ConfigError) as info:
        device_graph(spec)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_rk3588_graph_is_networkx_with_units_and_links():
    g = DeviceGraph.from_board("rk3588")
    assert isinstance(g, nx.Graph)
    assert set(g.nodes) == {"a76", "a55", "mali_g610", "npu"} and g.number_of_edges() == 6
    assert g.host == "a76"
    assert g.nodes["npu"]["codegen"] is False and g.nodes["mali_g610"]["codegen"] is True
    assert g.edges["a76", "mali_g610"]["bandwidth_gbps"] == 16.9
    # 1 MB over a 16.9 GB/s link with 50 us latency and 100 us sync
    assert g.transfer_us(1_000_000, "a76", "mali_g610") == pytest.approx(150 + 1e6 / 16.9e3)
    assert g.transfer_us(123, "npu", "npu") == 0.0


@pytest.mark.parametrize("board", list_boards())
def test_every_shipped_board_builds_a_connected_graph(board):
    g = device_graph(board)
    assert g.number_of_nodes() >= 1 and (g.number_of_nodes() == 1 or nx.is_connected(g))
    assert g.nodes[g.host]["kind"] == "cpu"


def test_transfer_without_a_direct_link_goes_through_the_middle_unit(tmp_path):
    spec = _board(tmp_path, [CPU, _unit("a"), _unit("b")],
                  [{"src": "cpu", "dst": "a", "bandwidth_gbps": 1, "latency_us": 1},
                   {"src": "a", "dst": "b", "bandwidth_gbps": 2, "latency_us": 2}])
    g = device_graph(spec)
    assert g.transfer_us(1000, "cpu", "b") == pytest.approx((1 + 1000 / 1e3) + (2 + 1000 / 2e3))


def test_disconnected_units_are_a_clear_error(tmp_path):
    spec = _board(tmp_path, [CPU, _unit("gpu"), _unit("npu", kind="npu")],
                  [{"src": "cpu", "dst": "gpu", "bandwidth_gbps": 1}])
    assert _error(spec) == ("board toy: unit(s) npu have no link to the other units; add a 'links' entry "
                            "(src, dst, bandwidth_gbps) connecting them")


def test_link_to_a_missing_unit_is_a_clear_error(tmp_path):
    spec = _board(tmp_path, [CPU], [{"src": "cpu", "dst": "gpu", "bandwidth_gbps": 1}])
    assert "link endpoint 'gpu' is not a compute unit (cpu)" in _error(spec)


def test_negative_bandwidth_is_a_clear_error(tmp_path):
    spec = _board(tmp_path, [CPU, _unit("gpu")], [{"src": "cpu", "dst": "gpu", "bandwidth_gbps": -3}])
    assert "key 'links.0.bandwidth_gbps': Input should be greater than 0" in _error(spec)


def test_board_without_units_or_without_cpu(tmp_path):
    assert "describes no compute units" in _error(_board(tmp_path, [], [], name="empty"))
    assert "has no CPU unit" in _error(_board(tmp_path, [_unit("gpu")], [], name="nocpu"))


def test_devices_show_cli_json_text_and_plot(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["devices", "show", "rk3588", "--json", "--plot", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [u["name"] for u in data["units"]] == ["a76", "a55", "mali_g610", "npu"]
    assert {u["name"]: u["codegen"] for u in data["units"]}["npu"] == "vendor toolchain required"
    assert len(data["links"]) == 6 and (tmp_path / "g.png").stat().st_size > 10_000
    text = runner.invoke(cli, ["devices", "show", "rk3588"]).stdout
    assert "Cortex-A76" in text and "a76 <-> mali_g610" in text and "vendor toolchain required" in text


def test_devices_show_cli_error_is_one_line(tmp_path):
    spec = _board(tmp_path, [CPU, _unit("gpu")], [])
    result = CliRunner().invoke(cli, ["devices", "show", spec])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: board toy: unit(s) gpu have no link to the other units; add a 'links' "
                                     "entry (src, dst, bandwidth_gbps) connecting them")
