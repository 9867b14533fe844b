"""``tvmedge partition`` through the real entry point (issue 5, item 3): JSON, text, --explain, --plot, errors."""

import json

from click.testing import CliRunner

from tvmedge.cli.main import cli


def _run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_partition_json_latency_with_explain_and_plot(tmp_path, tiny_cnn):
    out = _run("partition", tiny_cnn, "--target", "rk3588", "--json", "--explain", "--plot", tmp_path / "p.png")
    data = json.loads(out.stdout)
    assert data["algorithm"] == "mincut" and data["objective"] == "latency"
    assert set(data["assignment"]) == {row["op"] for row in data["explain"]}
    plans = {row["plan"]: row for row in data["comparison"]}
    assert {"single-unit", "host-only", "fixed-rule", "greedy", "dp", "mincut", "pipeline",
            "balance"} <= set(plans)
    assert plans["mincut"]["chosen"] and plans["mincut"]["latency_ms"] <= plans["greedy"]["latency_ms"]
    assert data["cost_sources"]["a76"].startswith("learned:cpu-v") and data["cost_sources"]["npu"] == "analytic"
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_partition_text_throughput(tiny_cnn):
    text = _run("partition", tiny_cnn, "--target", "rk3588", "--objective", "throughput", "--costs", "none").stdout
    assert "balance plan for throughput (costs: none" in text
    assert "plans compared" in text and "balance *" in text


def test_partition_explain_text(tiny_cnn):
    text = _run("partition", tiny_cnn, "--target", "rk3588", "--explain").stdout
    assert "per-op costs (us; - = cannot run) and why:" in text and "softmax_0" in text


def test_partition_errors_are_one_line(tmp_path, tiny_cnn, make_board):
    result = _run("partition", tiny_cnn, "--target", "rk3599", code=1)
    assert result.stderr.startswith("Error: unknown board 'rk3599'; choose from:")
    board = make_board(cpu_ops=["conv2d", "add", "relu"])
    result = _run("partition", tiny_cnn, "--target", board, code=1)
    assert result.stderr.startswith("Error: op clip_0 (call_tir:maximum, float32) can run on no unit of board toy2")
    assert len(result.stderr.strip().splitlines()) == 1
    result = _run("partition", tmp_path / "missing.onnx", "--target", "rk3588", code=1)
    assert result.stderr.strip() == f"Error: model file {tmp_path / 'missing.onnx'} does not exist"
