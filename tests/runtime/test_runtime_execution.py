"""Threads and cores (issue 17): ``--threads``/``--cores`` resolved from the board YAML's CPU clusters (copied
into the manifest) and applied to TVM's thread pool; refusals are one line."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tvmedge.cli.main import cli
from tvmedge.devices.board import cpu_clusters, load_board
from tvmedge.errors import ConfigError, TvmedgeError
from tvmedge.runtime.execution import Execution, parse_cores

RK3588 = {"a76": {"cpus": [4, 5, 6, 7], "role": "big"}, "a55": {"cpus": [0, 1, 2, 3], "role": "little"}}


def test_rk3588_clusters_come_from_its_yaml():
    assert cpu_clusters(load_board("rk3588")) == RK3588
    assert cpu_clusters(load_board("x86-host")) is None  # one unit, no cpus: list


@pytest.mark.parametrize("spec, cpus", [("big", (4, 5, 6, 7)), ("LITTLE", (0, 1, 2, 3)), ("a76", (4, 5, 6, 7)),
                                        ("0-3", (0, 1, 2, 3)), ("0,2,5-6", (0, 2, 5, 6)), ("3", (3,))])
def test_cores_by_role_cluster_or_numbers(spec, cpus):
    assert parse_cores(spec, RK3588) == cpus


def test_bad_cores_and_thread_counts_are_one_line():
    with pytest.raises(ConfigError, match=r"^--cores 'huge' is not valid; choose a76 \(big\), a55 \(little\) or CPU "
                                          r"numbers like 0-3 or 0,2$"):
        parse_cores("huge", RK3588)
    with pytest.raises(ConfigError, match="the board declares no CPU clusters"):
        parse_cores("big", None)
    with pytest.raises(ConfigError, match=r"^--threads 5 is more than the 4 core\(s\) of --cores big"):
        Execution.parse(5, "big", RK3588)


def test_apply_pins_the_thread_and_sizes_tvms_pool():
    # a fresh process: TVM sizes a thread's pool when it is first used
    cpus = sorted(os.sched_getaffinity(0))
    n = min(2, len(cpus))
    code = ("import os, json; from tvmedge.runtime.execution import Execution\n"
            f"e = Execution.parse({n}, '{','.join(map(str, cpus[:n]))}'); e.apply()\n"
            "print(json.dumps([e.pool_threads(), sorted(os.sched_getaffinity(0)), e.describe()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    threads, affinity, text = json.loads(out)
    assert threads == n and affinity == cpus[:n] and text.startswith(f"{n} thread")


def test_cli_run_with_threads_and_cores(x86_artifact):
    result = CliRunner().invoke(cli, ["run", str(x86_artifact), "--threads", "1", "--cores", "0", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    assert "execution: 1 thread on cores 0" in result.output
    assert os.sched_getaffinity(0) == set(range(os.cpu_count())) or len(os.sched_getaffinity(0)) > 1  # caller untouched


def test_cli_run_refuses_clusters_the_board_does_not_declare(x86_artifact):
    result = CliRunner().invoke(cli, ["run", str(x86_artifact), "--cores", "big"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: --cores 'big' is not valid; choose CPU numbers like 0-3 or 0,2 (the "
                                     "board declares no CPU clusters: a unit's cpus: list in its YAML)")


def test_the_manifest_carries_the_clusters(arm_artifact):
    assert json.loads((arm_artifact / "manifest.json").read_text())["build"]["cpu_clusters"] == RK3588


@pytest.mark.emulated
def test_threads_and_cores_on_the_emulated_board(arm_artifact):
    from tvmedge import api

    result = api.run(arm_artifact, board="emu:rk3588", threads=1, cores="0", repeat=0)
    assert result.stats.extra["execution"]["describe"] == "1 thread on cores 0"
    # the emulated board is this host's CPUs under qemu: rk3588's big cluster (cpu4-7) is not there
    if max(os.sched_getaffinity(0)) < 4:
        with pytest.raises(TvmedgeError, match=r"^cores 4-7 are not available here"):
            api.run(arm_artifact, board="emu:rk3588", cores="big", repeat=0)


@pytest.mark.parametrize("env, expected", [({}, "physical"), ({"TVM_NUM_THREADS": "1"}, 1), ({"OMP_NUM_THREADS": "1"}, 1)])
def test_the_default_pool_has_a_thread_per_physical_core_unless_the_user_sized_it(env, expected):
    # TVM alone takes half the logical CPUs on x86 (assumed hyper-threads): on this 2-vCPU host, 1 thread
    import platform

    from tvmedge.runtime.execution import available_cpus, physical_cores

    clean = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    code = "import tvmedge.runtime, tvm; print(tvm.get_global_func('runtime.NumThreads')())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**clean, **env})
    if expected == "physical":
        if platform.machine() != "x86_64":
            pytest.skip("TVM's own default is right off x86")
        expected = physical_cores(available_cpus())
    assert int(out.stdout) == expected


def test_physical_cores_count_hyper_thread_siblings_once(monkeypatch):
    import builtins
    import io

    siblings = {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if str(path).startswith("/sys/devices/system/cpu/cpu"):
            return io.StringIO(siblings[int(str(path).split("/cpu")[-1].split("/")[0])] + "\n")
        return real_open(path, *args, **kwargs)

    from tvmedge.runtime.execution import physical_cores

    monkeypatch.setattr(builtins, "open", fake_open)
    assert physical_cores([0, 1, 2, 3]) == 2 and physical_cores([0, 2]) == 1 and physical_cores([0, 1]) == 2
