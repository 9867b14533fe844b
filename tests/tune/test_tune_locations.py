"""Where tuning records live (issue 13): user records in the cache, shipped records as package data."""

import subprocess
import sys
import zipfile
from pathlib import Path

from tvmedge import api
from tvmedge.tune.database import default_log_root, record_set, shipped_log_root
from tvmedge.tune.tuner import Budget

REPO = Path(__file__).resolve().parents[2]
SHIPPED_KEY = "x86_64-znver5-2c"  # the records committed in tuning_logs/


def test_user_records_go_to_the_cache_not_the_checkout(tmp_path, monkeypatch, tiny_cnn):
    monkeypatch.delenv("TVMEDGE_TUNING_LOGS", raising=False)
    monkeypatch.setenv("TVMEDGE_CACHE", str(tmp_path / "cache"))
    assert default_log_root() == tmp_path / "cache" / "tuning_logs"
    before = subprocess.run(["git", "status", "--porcelain", "--", "tuning_logs", "tvmedge"], cwd=REPO,
                            capture_output=True, text=True).stdout
    report = api.tune(tiny_cnn, "x86-host", budget=Budget(per_task=1))
    assert Path(report.database).parent == tmp_path / "cache" / "tuning_logs"
    assert (Path(report.database) / "database_tuning_record.json").stat().st_size > 0
    after = subprocess.run(["git", "status", "--porcelain", "--", "tuning_logs", "tvmedge"], cwd=REPO,
                           capture_output=True, text=True).stdout
    assert after == before, "tuning wrote into the source tree"


def test_shipped_records_are_found_after_the_users(monkeypatch, tmp_path):
    monkeypatch.delenv("TVMEDGE_TUNING_LOGS", raising=False)
    monkeypatch.setenv("TVMEDGE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "tuning_logs" / SHIPPED_KEY).mkdir(parents=True)
    found = record_set(SHIPPED_KEY)
    assert [d.label for d in found.databases] == [f"user:{SHIPPED_KEY}", f"shipped:{SHIPPED_KEY}"]
    assert found.databases[1].read_only and found.databases[1].summary()["records"] > 1000


def test_an_empty_tuning_logs_folder_means_no_records_at_all(monkeypatch, tmp_path):
    monkeypatch.setenv("TVMEDGE_TUNING_LOGS", str(tmp_path))
    assert shipped_log_root() is None
    assert not record_set(SHIPPED_KEY)
    assert api.tuning_logs() == []


def test_wheel_install_finds_records_boards_and_the_cost_model(tmp_path):
    """A non-editable install (a wheel) carries the shipped records, the board YAMLs and the cost model."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(REPO)], check=True, capture_output=True)
    wheel = next(wheels.glob("tvmedge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert f"tvmedge/tune/shipped_logs/{SHIPPED_KEY}/database_tuning_record.json" in names
    assert "tvmedge/devices/shipped_targets/rk3588.yaml" in names
    assert any(n.startswith("tvmedge/tune/models/schedule-v") and n.endswith(".npz") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import os, tvmedge\n"
        "assert tvmedge.__file__.startswith(os.environ['SITE']), tvmedge.__file__\n"
        "from tvmedge.tune.database import record_set\n"
        "from tvmedge.tune.costmodel import load_schedule_model\n"
        "from tvmedge.devices.board import list_boards\n"
        f"print(record_set('{SHIPPED_KEY}').label, load_schedule_model().label, 'rk3588' in list_boards())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "SITE": str(site), "HOME": str(tmp_path),
           "TVMEDGE_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [f"shipped:{SHIPPED_KEY}", out.stdout.split()[1], "True"]
    assert out.stdout.split()[1].startswith("schedule-v")


def test_records_of_a_sibling_cpu_are_transferred_never_across_architectures(monkeypatch, tmp_path):
    from tvmedge.tune.database import transfer_source

    keys = ["x86_64-znver5-2c", "x86_64-skylake-avx512-8c", "aarch64-cortex-a76-neon-4c"]
    assert transfer_source("x86_64-znver4-2c", keys) == "x86_64-znver5-2c"  # same cores preferred
    assert transfer_source("x86_64-znver4-8c", keys) == "x86_64-skylake-avx512-8c"
    assert transfer_source("aarch64-cortex-a55-neon-4c", keys) == "aarch64-cortex-a76-neon-4c"
    assert transfer_source("aarch64-cortex-a53-4c", keys) is None  # no NEON in the key: features must match
    assert transfer_source("riscv64-generic-rv64-4c", keys) is None
    monkeypatch.delenv("TVMEDGE_TUNING_LOGS", raising=False)
    monkeypatch.setenv("TVMEDGE_CACHE", str(tmp_path))
    found = record_set("x86_64-somecpu-2c")
    assert [d.label for d in found.databases] == [f"transferred:{SHIPPED_KEY}"] and found.databases[0].transferred


def test_compile_on_another_cpu_uses_transferred_records(monkeypatch, tmp_path, tiny_cnn):
    """On a CPU with no records of its own, the shipped records of a sibling CPU are applied and the manifest
    says so per task (tiny_cnn's layers are all in the shipped records), except to the convolutions: the
    schedule written for them beats records measured on another CPU."""
    import tvmedge.tune.auto as auto
    from tvmedge.tune.auto import TuningOptions

    monkeypatch.delenv("TVMEDGE_TUNING_LOGS", raising=False)
    monkeypatch.setenv("TVMEDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(auto, "target_key", lambda spec: "x86_64-somecpu-2c")
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "o", tuning=TuningOptions(search="none"))
    tuning = artifact.manifest.tuning
    assert tuning["transferred"] + tuning["conv"] == tuning["tasks"] and tuning["conv"] > 0, tuning
    assert tuning["tuned"] == 0 and tuning["predicted"] == 0, tuning
    assert tuning["records"] == f"transferred:{SHIPPED_KEY}"
