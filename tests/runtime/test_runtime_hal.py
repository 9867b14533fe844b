"""The hardware adapter: honest device reports and tensors on the best device, on the host and a board (issue 7 §2)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tvmedge.errors import HardwareError
from tvmedge.runtime.hal import DEVICE_TYPES, FPGA_NODES, NPU_NODES, HardwareAdapter


def test_auto_reports_every_device_and_allocates_on_cpu_here():
    hal = HardwareAdapter("auto")
    devices = hal.devices()
    assert {d["kind"] for d in devices} == {"cpu", "gpu", "npu", "fpga"}
    assert devices[0] == {**devices[0], "kind": "cpu", "present": True}
    # This machine has no GPU TVM can drive: auto falls back to the CPU instead of failing.
    if not any(d["present"] for d in devices if d["kind"] == "gpu"):
        assert (hal.kind, hal.backend) == ("cpu", "cpu")
    tensor = hal.allocate_tensor((1, 3, 32, 32), "float32")
    assert tuple(tensor.shape) == (1, 3, 32, 32) and str(tensor.dtype) == "float32" and str(tensor.device) == "cpu:0"
    tensor.copyfrom(np.ones((1, 3, 32, 32), "float32"))
    assert tensor.numpy().sum() == 3 * 32 * 32
    assert json.dumps(hal.summary())  # JSON-ready


def test_unknown_type_and_absent_devices_are_one_line_errors(tmp_path):
    with pytest.raises(HardwareError, match=r"^unknown device type 'tpu'; choose from: auto, cpu, gpu, npu, fpga$"):
        HardwareAdapter("tpu")
    for kind in ("npu", "fpga"):  # an empty root: no device node anywhere
        with pytest.raises(HardwareError) as err:
            HardwareAdapter(kind, root=tmp_path)
        assert str(err.value).startswith(f"no {kind.upper()} present: none of /") and "\n" not in str(err.value)
    assert set(DEVICE_TYPES) == {"auto", "cpu", "gpu", "npu", "fpga"}


def test_present_npu_is_reported_but_not_faked(tmp_path):
    # An rk3588 with the vendor kernel has /dev/rknpu: the HAL says so, and refuses to pretend TVM can allocate there.
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "rknpu").write_text("")
    npu = [d for d in HardwareAdapter("cpu", root=tmp_path).devices() if d["kind"] == "npu"][0]
    assert npu["present"] and not npu["tvm_device"] and npu["detail"].endswith("dev/rknpu")
    with pytest.raises(HardwareError, match="is present but TVM's runtime cannot allocate on it"):
        HardwareAdapter("npu", root=tmp_path)


def test_bad_shape_is_an_input_error():
    from tvmedge.errors import InputError

    with pytest.raises(InputError, match="negative dimension"):
        HardwareAdapter("cpu").allocate_tensor((2, -1))
    with pytest.raises(InputError, match="cannot allocate"):
        HardwareAdapter("cpu").allocate_tensor((2,), "notatype")


def test_board_side_command_on_host_loads_only_the_runtime():
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    result = subprocess.run([sys.executable, "-m", "tvmedge.runtime.hal", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chosen"] == {"kind": "cpu", "backend": "cpu"}
    bad = subprocess.run([sys.executable, "-m", "tvmedge.runtime.hal", "--device", "fpga"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and len(bad.stderr.strip().splitlines()) == 1


BOARD_SCRIPT = """
import json, platform
from tvmedge.runtime.hal import HardwareAdapter
hal = HardwareAdapter("auto")
t = hal.allocate_tensor((2, 3), "float32")
print(json.dumps({"arch": platform.machine(), "chosen": hal.backend, "shape": list(t.shape), "device": str(t.device),
                  "present": [d["backend"] for d in hal.devices() if d["present"]]}))
"""


@pytest.mark.emulated
def test_same_code_path_on_the_emulated_rk3588():
    # Issue 7 §2: the HAL must work with only the staged runtime side on an aarch64 board.
    from tvmedge.devices.board import load_board
    from tvmedge.emulator import setup_board

    proc = setup_board(load_board("rk3588")).run_python(["-P", "-c", BOARD_SCRIPT], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"arch": "aarch64", "chosen": "cpu", "shape": [2, 3], "device": "cpu:0", "present": ["cpu"]}


# --- the C++ twin for boards without Python (tvmedge/native/src/devices.h) --------------------------------


def _node_for(pattern: str) -> str:
    return pattern.replace("*", "0")


@pytest.mark.parametrize("pattern", [None, *NPU_NODES, *FPGA_NODES])
def test_cpp_probe_reports_what_hal_py_reports(tmp_path, pattern):
    """`tvmedge-run --devices` (what a Python-less RISC-V board runs) gives HardwareAdapter's summary, node for node."""
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    from tvmedge.native.builder import native_runtime

    if pattern:
        node = tmp_path / _node_for(pattern)
        node.parent.mkdir(parents=True, exist_ok=True)
        node.write_text("")
    loader = native_runtime("x86_64").loader
    proc = subprocess.run([str(loader), "--devices", "--root", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == HardwareAdapter("auto", root=tmp_path).summary()


@pytest.mark.emulated
def test_riscv64_board_reports_its_devices():
    """Issue 7's HAL check on the riscv64 board, through the C++ twin (the board has no Python)."""
    from tvmedge.devices.board import load_board
    from tvmedge.emulator import setup_board

    summary = setup_board(load_board("visionfive2")).devices()
    assert summary["arch"] == "riscv64" and summary["chosen"] == {"kind": "cpu", "backend": "cpu"}
    assert [d["backend"] for d in summary["devices"] if d["present"]] == ["cpu"]
