"""The runnable scenarios in examples/scenarios keep working (they are documentation that executes)."""

import importlib.util
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "scenarios" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.emulated
def test_three_architectures_agree_on_the_digits(capsys):
    if shutil.which("qemu-aarch64") is None or shutil.which("qemu-riscv64") is None:
        pytest.skip("qemu-user not installed")
    scenario = _load("three_architectures")
    report = scenario.evaluate(limit=40, progress=lambda message: None)
    assert report["ok"] and report["same_accuracy_everywhere"]
    assert [row["arch"] for row in report["rows"]] == ["x86_64", "aarch64", "riscv64", "riscv64"]
    assert all(row["images"] == 40 and row["predictions_differing_from_ort"] == 0 for row in report["rows"])
    assert report["rows"][1]["where"].startswith("tracker ") and report["rows"][2]["where"].endswith("visionfive2")
