"""`tvmedge thermal run` through the real entry point (issue 7 §4): real loop on a fake tree, simulation, errors."""

import json

from click.testing import CliRunner

from tvmedge.cli.main import cli
from tvmedge.thermal.sysfs import CPUFREQ_DIR, Sysfs


def run(*args):
    return CliRunner().invoke(cli, ["thermal", "run", *[str(a) for a in args]])


def test_machine_without_sysfs_files_says_so(tmp_path):
    result = run("--sysfs-root", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: no thermal zones under {tmp_path}/sys/class/thermal: this machine exposes no "
                                     "temperature sensor to govern (try --simulate 600, or --sysfs-root for a board's tree)")


def test_hot_board_is_throttled_then_the_cap_is_restored(tmp_path):
    Sysfs.create_fake(tmp_path, temp_c=52.0, frequencies_khz=(408000, 1200000, 2400000))
    cap = tmp_path / CPUFREQ_DIR / "policy0" / "scaling_max_freq"
    result = run("--sysfs-root", tmp_path, "--limit", 45, "--period", 0.1, "--duration", 0.35, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["max_c"] == 52.0 and summary["cap_changes"] >= 1 and summary["last_cap_khz"] < 2400000
    assert summary["restored_cap_khz"] == 2400000 and cap.read_text() == "2400000\n"  # never left capped


def test_dry_run_writes_nothing(tmp_path):
    Sysfs.create_fake(tmp_path, temp_c=52.0, frequencies_khz=(408000, 1200000, 2400000))
    cap = tmp_path / CPUFREQ_DIR / "policy0" / "scaling_max_freq"
    cap.write_text("1200000\n")
    result = run("--sysfs-root", tmp_path, "--governor", "step", "--period", 0.1, "--duration", 0.25, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "degC  cap" in result.stdout and result.stdout.strip().endswith("dry run: nothing written")
    assert cap.read_text() == "1200000\n"


def test_simulate_compares_governors():
    rows = json.loads(run("--simulate", 300, "--json").stdout)
    names = [r["governor"] for r in rows]
    assert names[0] == "pid" and "step (trip at limit)" in names and "none" in names
    assert rows[0]["peak_c"] < 45.0
    text = run("--simulate", 60).stdout
    assert text.splitlines()[0].split() == ["governor", "peak", "degC", "s", "above", "limit", "throughput", "loss", "vs",
                                            "ideal", "cap", "changes", "ripple", "degC"]
