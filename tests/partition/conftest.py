"""Fixtures for the partitioner tests: a fake two-unit board, and op graphs imported once per session."""

from pathlib import Path

import onnx
import pytest
import yaml

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def write_board(folder: Path, name: str = "toy2", acc_ops=("conv2d", "relu", "add", "pool"), cpu_ops="all",
                acc_target=None, acc_peaks=None) -> str:
    """A CPU and an accelerator on one link; the accelerator runs a few op kinds, fp16 only by default."""
    data = {
        "name": name, "arch": "x86_64", "target": {"kind": "llvm"},
        "compute_units": [
            {"name": "cpu", "kind": "cpu", "peak_gops": {"fp32": 20}, "mem_bandwidth_gbps": 10, "ops": cpu_ops,
             "target": {"kind": "llvm"}},
            {"name": "acc", "kind": "npu", "peak_gops": acc_peaks or {"fp16": 2000}, "mem_bandwidth_gbps": 20,
             "ops": list(acc_ops), "target": acc_target},
        ],
        "links": [{"src": "cpu", "dst": "acc", "bandwidth_gbps": 5, "latency_us": 20, "sync_us": 30}],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.fixture
def make_board(tmp_path):
    """``make_board(**changes)`` writes a toy two-unit board YAML into ``tmp_path`` and returns its path."""
    return lambda **changes: write_board(tmp_path, **changes)


@pytest.fixture(scope="session")
def tiny_ops(tiny_cnn):
    from tvmedge.frontend.onnx import import_model
    from tvmedge.partition.opgraph import extract_ops

    return extract_ops(import_model(tiny_cnn).mod, "tiny_cnn")


@pytest.fixture(scope="session")
def squeezenet_ops():
    """A branchy (fire modules: two parallel convolutions and a concat) model of 93 ops."""
    from tvmedge.frontend.onnx import import_model
    from tvmedge.partition.opgraph import extract_ops

    return extract_ops(import_model(LIGHT / "light_squeezenet.onnx").mod, "light_squeezenet")


@pytest.fixture(scope="session")
def rk3588():
    from tvmedge.devices.graph import DeviceGraph

    return DeviceGraph.from_board("rk3588")
