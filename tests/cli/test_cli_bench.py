"""`tvmedge bench --host` through the CLI (issue 7 §3)."""

import json

from click.testing import CliRunner

from tvmedge.cli.main import cli


def test_bench_host_json(x86_artifact, tmp_path):
    result = CliRunner().invoke(cli, ["bench", "--host", "--artifact", str(x86_artifact), "--budget", "0.05",
                                      "--storage-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["metrics"]
    assert len(rows) == 12 and {r["status"] for r in rows} <= {"measured", "declared", "unavailable"}


def test_bench_needs_host():
    result = CliRunner().invoke(cli, ["bench"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: pass --host (measure this machine) or --board NAME (its declared figures "
                                     "from targets/); boards are not reachable from here")


def test_bench_board_declared():
    result = CliRunner().invoke(cli, ["bench", "--board", "rk3588", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["metric"]: r for r in json.loads(result.stdout)["metrics"]}
    assert len(rows) == 12 and rows["peak_int8_gops"]["status"] == "declared"
    assert rows["peak_int8_gops"]["value"] == 6000 and "RK3588" in rows["peak_int8_gops"]["method"]
    assert rows["throughput"]["status"] == "unavailable"
