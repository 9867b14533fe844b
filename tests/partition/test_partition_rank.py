"""``tvmedge targets rank`` and :func:`tvmedge.partition.rank.rank_boards` (issue 7 §3)."""

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tvmedge.cli.main import cli
from tvmedge.devices.board import list_boards, targets_dir
from tvmedge.partition.rank import rank_boards
from tvmedge.errors import ConfigError


@pytest.fixture(scope="module")
def latency(tiny_cnn):
    return rank_boards(tiny_cnn, objective="latency")


def test_ranks_every_board_by_predicted_latency(latency):
    ranked = latency["ranked"]
    names = [r["board"] for r in ranked] + [r["board"] for r in latency["not_ranked"]]
    assert sorted(names) == list_boards()
    assert not latency["not_ranked"]  # every shipped board has units and a capacity
    times = [r["latency_ms"] for r in ranked]
    assert times == sorted(times) and all(t > 0 for t in times)
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    for row in ranked:
        assert row["memory"]["fits"] and row["reasons"] and row["units"]
        assert any("memory" in reason for reason in row["reasons"])
    assert all("slower than " + ranked[0]["board"] in r["reasons"][0] for r in ranked[1:])


def test_ranks_by_throughput(tiny_cnn):
    result = rank_boards(tiny_cnn, objective="throughput", boards=["rk3588", "rpi4", "visionfive2"])
    rates = [r["throughput_ips"] for r in result["ranked"]]
    assert rates == sorted(rates, reverse=True) and len(rates) == 3
    assert all(r["plan"] == "balance" for r in result["ranked"])


def _variant(tmp_path: Path, base: str, name: str, edit) -> str:
    data = yaml.safe_load((targets_dir() / f"{base}.yaml").read_text())
    data["name"] = name
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_boards_that_cannot_be_predicted_say_why(tiny_cnn, tmp_path):
    def tiny_memory(d):
        d["memory_gb"] = None
        d["metrics"]["memory_capacity"] = {"value": 1e-5, "source": "test"}

    def no_memory(d):
        d["memory_gb"] = None
        d["metrics"].pop("memory_capacity")

    def no_units(d):
        d["compute_units"], d["links"] = [], []

    boards = ["rpi4", _variant(tmp_path, "rpi4", "tiny-mem", tiny_memory),
              _variant(tmp_path, "rpi4", "no-mem", no_memory), _variant(tmp_path, "rpi4", "no-units", no_units),
              str(tmp_path / "missing.yaml")]
    result = rank_boards(tiny_cnn, boards=boards)
    assert [r["board"] for r in result["ranked"]] == ["rpi4"]
    why = {r["board"]: r["why"] for r in result["not_ranked"]}
    assert "more than the 1e-05 GB" in why["tiny-mem"]
    assert "no memory capacity declared" in why["no-mem"]
    assert "no prediction" in why["no-units"] and "compute units" in why["no-units"]
    assert "does not exist" in why[str(tmp_path / "missing.yaml")]


def test_bad_objective(tiny_cnn):
    with pytest.raises(ConfigError, match="objective 'speed'"):
        rank_boards(tiny_cnn, objective="speed")


def test_cli_rank(tiny_cnn):
    result = CliRunner().invoke(cli, ["targets", "rank", str(tiny_cnn), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["ranked"]) == len(list_boards()) and data["objective"] == "latency"
    text = CliRunner().invoke(cli, ["targets", "rank", str(tiny_cnn), "--input-shape", "input=1,3,32,32"])
    assert text.exit_code == 0, text.output
    assert "ranked by predicted latency" in text.stdout and "jetson-orin-nano" in text.stdout


def test_the_fit_uses_relax_static_memory_plan(latency, tiny_cnn):
    # issue 17: the memory a board must hold is what TVM plans (weights + planned activations + workspace), the
    # figures the compiler writes into the manifest, not only a lower bound
    from tvmedge.frontend.onnx import import_model
    from tvmedge.partition.opgraph import extract_ops
    from tvmedge.partition.rank import model_memory_bytes

    memory = latency["memory"]
    assert memory["activation_bytes"] > 0 and memory["weight_bytes"] > 0 and memory["storages"] >= 1
    assert memory["bytes"] == memory["weight_bytes"] + memory["activation_bytes"] + memory["workspace_bytes"]
    assert memory["bytes"] >= model_memory_bytes(extract_ops(import_model(tiny_cnn).mod, "tiny"))
    assert all("Relax static plan" in next(r for r in row["reasons"] if r.startswith("memory"))
               for row in latency["ranked"])
