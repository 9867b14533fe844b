"""`tvmedge tune`, `tvmedge logs list` and compile's tuning flags through the CLI (issue 4)."""

import json

from click.testing import CliRunner

from tvmedge.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_tune_json_plot_and_logs_list(tmp_path, tiny_cnn):
    logs = tmp_path / "logs" / "x86-tiny"
    result = invoke("tune", tiny_cnn, "--target", "x86-host", "--per-task", "1", "--log-dir", logs, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["trials"] == len(report["tasks"]) and report["tuned_tasks"] == len(report["tasks"])
    assert (logs / "tuning_curve.png").read_bytes()[:4] == b"\x89PNG"
    listed = json.loads(invoke("logs", "list", "--root", tmp_path / "logs", "--json").stdout)
    assert listed[0]["key"] == "x86-tiny" and listed[0]["tuned_workloads"] == len(report["tasks"])
    text = invoke("compile", tiny_cnn, "--target", "x86-host", "--tuning-records", logs, "--search", "none",
                  "-o", tmp_path / "out")
    assert text.exit_code == 0, text.output
    n = len(report["tasks"])
    assert f"schedules: {n} tasks: {n} from tuning records (x86-tiny), 0 predicted" in text.stdout


def test_tune_errors_are_one_line(tmp_path, tiny_cnn):
    result = invoke("tune", tiny_cnn, "--target", "rk3588", "--per-task", "1")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: board rk3588 is aarch64: its code cannot be measured on this host; "
                                     "pass --tracker HOST:PORT --key KEY for boards running TVM's RPC server")
    bad = invoke("compile", tiny_cnn, "--target", "x86-host", "--search", "fast", "-o", tmp_path / "o")
    assert bad.exit_code == 1 and bad.stderr.strip() == (
        "Error: --search 'fast' is not valid; choose none, quick, naive or a number of candidates per task")
    missing = invoke("compile", tiny_cnn, "--target", "x86-host", "--tuning-records", tmp_path / "none", "-o", tmp_path / "o")
    assert missing.exit_code == 1 and "tuning records folder" in missing.stderr and "does not exist" in missing.stderr
    usage = invoke("tune", tiny_cnn)
    assert usage.exit_code == 2 and "tune needs MODEL and --target" in usage.stderr


def test_cross_compile_predicts_schedules_and_says_why(tmp_path, tiny_cnn):
    result = invoke("compile", tiny_cnn, "--target", "rk3588", "-o", tmp_path / "arm", "--json")
    assert result.exit_code == 0, result.output
    tuning = json.loads(result.stdout)["tuning"]
    assert tuning["search"] == "quick" and tuning["measured_on"] is None and tuning["trials"] == 0
    assert tuning["predicted"] + tuning["conv"] == tuning["tasks"] and tuning["cost_model"].startswith("schedule-v")
    assert set(tuning["sources"].values()) == {"predicted", "conv"}
    assert "no board attached" in tuning["note"] and "nothing was measured" in tuning["note"]
