"""Board descriptions (``targets/*.yaml``) and :mod:`tvmedge.devices.board`: loading, TVM targets, bad input.

The basename is unique on purpose: ``tests/`` has no ``__init__.py`` files (rootdir-based discovery).
"""

import itertools
import json
import os
from pathlib import Path

import pytest
import yaml

from tvm.target import Target, codegen

from tvmedge.devices.board import list_boards, load_board, targets_dir
from tvmedge.errors import ConfigError
from tvmedge.runtime.manifest import machine_arch

REQUIRED_BOARDS = {"rk3588", "rpi5", "rpi4", "jetson-orin-nano", "x86-host", "visionfive2", "licheepi4a"}
BOARDS = list_boards()


def _config_error(spec) -> str:
    """Load ``spec``, expect ConfigError, and return its message (which must be one non-empty line)."""
    with pytest.raises(ConfigError) as info:
        load_board(str(spec))
    message = str(info.value)
    assert message.strip(), "empty error message"
    assert "\n" not in message, f"message is not one line: {message!r}"
    return message


def _write_board(tmp_path: Path, data: dict, name: str = "custom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _board_data(name: str) -> dict:
    return yaml.safe_load((targets_dir() / f"{name}.yaml").read_text())


def _llvm_targets(board):
    """Every llvm target of a board (its own and its units'), with ``host`` resolved as the compiler does."""
    found = [("board", board.tvm_target())]
    for unit in board.compute_units:
        if unit.target and unit.target.get("kind") == "llvm":
            # A CPU unit that repeats the board target (mcpu: host on x86-host) is compiled as the board target.
            target = board.tvm_target() if unit.target == board.target else dict(unit.target)
            found.append((unit.name, target))
    return found


# --- the shipped boards --------------------------------------------------------------------------------


def test_required_boards_exist():
    missing = REQUIRED_BOARDS - set(BOARDS)
    assert not missing, f"missing board YAMLs in {targets_dir()}: {sorted(missing)}"


@pytest.mark.parametrize("name", BOARDS)
def test_board_yaml_is_consistent(name):
    board = load_board(name)
    assert board.name == name, "the name key must match the file name"
    assert board.source.endswith(f"{name}.yaml")
    assert board.description
    assert board.compute_units, "a board needs at least one compute unit"
    # The board's own target is that of one of its CPU units (the main cluster).
    assert board.target in [u.target for u in board.compute_units if u.kind == "cpu"]
    # Every pair of units can exchange data (shared DRAM), so every pair is linked.
    linked = {frozenset((link.src, link.dst)) for link in board.links}
    for pair in itertools.combinations([u.name for u in board.compute_units], 2):
        assert frozenset(pair) in linked, f"{name}: no link between {pair[0]} and {pair[1]}"
    for unit in board.compute_units:
        assert unit.mem_bandwidth_gbps > 0
        assert all(v > 0 for v in unit.peak_gops.values()), f"{name}.{unit.name}: non-positive peak"
    # The triple and the cross compiler agree with arch.
    assert board.triple.split("-")[0] == board.arch
    if board.cross_compiler is not None:
        assert board.cross_compiler == f"{board.arch}-linux-gnu-g++"
    else:
        assert board.arch == "x86_64"


@pytest.mark.parametrize("name", BOARDS)
def test_llvm_targets_are_valid_for_llvm(name):
    board = load_board(name)
    for where, target in _llvm_targets(board):
        tvm_target = Target(target)
        assert tvm_target.kind.name == "llvm"
        # Target() accepts an unknown mcpu / mattr with a log line only: ask LLVM itself.
        triple = target.get("mtriple") or board.triple
        mcpu = target.get("mcpu")
        if mcpu:
            assert codegen.llvm_is_valid_cpu(mcpu, triple), f"{name}.{where}: LLVM does not know mcpu {mcpu}"
        enabled = codegen.llvm_get_cpu_features(tvm_target)
        for feature in target.get("mattr", []):
            assert feature.lstrip("+") in enabled, f"{name}.{where}: LLVM ignored mattr {feature}"
        if "num-cores" in target:
            assert int(tvm_target.attrs["num-cores"]) >= 1


@pytest.mark.parametrize("name", BOARDS)
def test_non_llvm_unit_targets_construct(name):
    board = load_board(name)
    for unit in board.compute_units:
        if unit.target and unit.target.get("kind") != "llvm":
            assert Target(unit.target).kind.name == unit.target["kind"]


def test_rvv_board_targets_rvv_and_emulates_it():
    board = load_board("bananapi-f3")
    assert board.arch == "riscv64" and {"+v", "+zvl256b"} <= set(board.target["mattr"])
    assert board.target["mabi"] == "lp64d" and board.target["num-cores"] == 8
    assert board.emulation.qemu_cpu == "rv64,v=true,vlen=256,vext_spec=v1.0"
    assert load_board("visionfive2").emulation.qemu_cpu is None  # qemu's default CPU: RV64GC, no V


def test_riscv_boards_use_the_verified_target():
    expected = {
        "kind": "llvm",
        "mtriple": "riscv64-unknown-linux-gnu",
        "mcpu": "generic-rv64",
        "mattr": ["+64bit", "+m", "+a", "+f", "+d", "+c"],
        "mabi": "lp64d",
        "num-cores": 4,  # MetaSchedule needs it (tuning through a tracker, the no-search schedule)
    }
    for name in ("visionfive2", "licheepi4a"):
        board = load_board(name)
        assert board.arch == "riscv64"
        assert board.target == expected
        assert board.cross_compiler == "riscv64-linux-gnu-g++"


def test_units_without_code_generator():
    # Vendor NPU: reachable only through the vendor toolchain, so no TVM target.
    npu = next(u for u in load_board("licheepi4a").compute_units if u.kind == "npu")
    assert npu.target is None and npu.supports("conv2d")
    # VideoCore GPUs: no OpenCL/CUDA and no Vulkan codegen here, so nothing may be placed on them.
    for name in ("rpi5", "rpi4"):
        gpu = next(u for u in load_board(name).compute_units if u.kind == "gpu")
        assert gpu.target is None and not gpu.supports("conv2d")
    # Orin Nano: no DLA, CUDA GPU.
    orin = load_board("jetson-orin-nano")
    assert not [u for u in orin.compute_units if u.kind == "npu"]
    assert next(u for u in orin.compute_units if u.kind == "gpu").target == {"kind": "cuda", "arch": "sm_87"}


def test_x86_host_resolves_the_host_cpu():
    board = load_board("x86-host")
    assert board.arch == "x86_64" and board.cross_compiler is None
    assert board.target["mcpu"] == "host" and board.target["num-cores"] == "host"
    resolved = board.tvm_target()
    assert resolved["mcpu"] == codegen.llvm_get_system_cpu()
    assert resolved["num-cores"] == (os.cpu_count() or 1)
    assert board.target["mcpu"] == "host", "tvm_target() must not modify the board"
    tvm_target = Target(resolved)
    assert str(tvm_target.attrs["mcpu"]) == codegen.llvm_get_system_cpu()
    if machine_arch() == "x86_64":
        assert board.is_native


def test_board_from_a_path_and_from_targets_env(tmp_path, monkeypatch):
    data = _board_data("rpi5")
    path = _write_board(tmp_path, data, "my-pi.yaml")
    assert load_board(str(path)).name == "rpi5"  # the name key wins over the file name
    del data["name"]
    _write_board(tmp_path, data, "my-pi.yaml")
    monkeypatch.setenv("TVMEDGE_TARGETS", str(tmp_path))  # add a board by adding a file
    assert list_boards() == ["my-pi"]
    board = load_board("my-pi")
    assert board.name == "my-pi"  # defaults to the file name
    assert board.target == data["target"]


# --- raw TVM target JSON -------------------------------------------------------------------------------


def _cross_for(arch):
    return None if arch == machine_arch() else f"{arch}-linux-gnu-g++"


@pytest.mark.parametrize(
    "target, arch",
    [
        ({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76", "mattr": ["+neon"], "num-cores": 4},
         "aarch64"),
        ({"kind": "llvm", "mtriple": "riscv64-unknown-linux-gnu", "mcpu": "generic-rv64",
          "mattr": ["+64bit", "+m", "+a", "+f", "+d", "+c"], "mabi": "lp64d"}, "riscv64"),
        ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "skylake-avx512", "num-cores": 2}, "x86_64"),
        ({"kind": "llvm"}, machine_arch()),
    ],
)
def test_raw_target_json(target, arch):
    board = load_board("  " + json.dumps(target) + "\n")
    assert board.arch == arch
    # a native target without num-cores takes this machine's (issue 19, finding 12)
    expected = dict(target, **{"num-cores": "host"}) if "num-cores" not in target and arch == machine_arch() else target
    assert board.target == expected
    assert board.cross_compiler == _cross_for(arch)
    assert board.source == "--target JSON"
    assert Target(board.tvm_target()).kind.name == "llvm"


# --- bad input: ConfigError with a clear one-line message -----------------------------------------------


def test_unknown_board_lists_choices():
    message = _config_error("rk3599")
    assert "rk3599" in message
    for name in BOARDS:
        assert name in message, f"choice {name} missing from: {message}"


def test_missing_board_file(tmp_path):
    message = _config_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in message and "does not exist" in message


def test_malformed_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\narch: aarch64\ntarget: {kind: llvm, mcpu: cortex-a76\ncompute_units: []\n")
    message = _config_error(path)
    assert "broken.yaml" in message and "not valid YAML" in message and "line" in message


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- rk3588\n- rpi5\n")
    assert "mapping" in _config_error(path)


def test_unknown_key(tmp_path):
    data = _board_data("rpi5")
    data["compute_units"][0]["flops"] = 100
    message = _config_error(_write_board(tmp_path, data))
    assert "compute_units.0.flops" in message and "not permitted" in message

    data = _board_data("rpi5")
    data["colour"] = "red"
    assert "colour" in _config_error(_write_board(tmp_path, data))


def test_wrong_type(tmp_path):
    data = _board_data("rpi5")
    data["compute_units"][0]["cores"] = "four"
    message = _config_error(_write_board(tmp_path, data))
    assert "compute_units.0.cores" in message and "integer" in message


def test_unknown_arch(tmp_path):
    data = _board_data("rpi5")
    data["arch"] = "armv7l"
    assert "arch" in _config_error(_write_board(tmp_path, data))


def test_link_to_missing_unit(tmp_path):
    data = _board_data("rpi5")
    data["links"].append({"src": "a76", "dst": "npu9", "bandwidth_gbps": 1.0})
    message = _config_error(_write_board(tmp_path, data))
    assert "npu9" in message and "a76" in message  # names the bad end and the units that exist


def test_duplicate_unit_names(tmp_path):
    data = _board_data("rpi5")
    data["compute_units"].append(dict(data["compute_units"][0]))
    assert "unique" in _config_error(_write_board(tmp_path, data))


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"kind": llvm}', "JSON"),                      # not JSON
        ('{"kind": "llvm", "mcpu": }', "JSON"),          # truncated
        ('{"mcpu": "cortex-a76"}', "kind"),              # no kind
    ],
)
def test_invalid_target_json(text, expected):
    assert expected in _config_error(text)


# --- declared metrics (issue 7 §3): typed keys, numbers with a source ------------------------------------


def test_shipped_declared_metrics_cite_a_source():
    from tvmedge.devices.metrics import METRICS

    keys = {m.key for m in METRICS}
    declared = 0
    for name in BOARDS:
        board = load_board(name)
        assert set(board.metrics) <= keys
        for key, figure in board.metrics.items():
            declared += 1
            assert figure.value > 0 and figure.source.strip(), f"{name}: metrics.{key} has no source"
        if "memory_capacity" in board.metrics and board.memory_gb is not None:
            assert board.metrics["memory_capacity"].value == board.memory_gb
    assert declared >= 15  # the vendor boards declare peaks, bandwidth and capacity
    assert load_board("rk3588").metrics["peak_int8_gops"].value == 6000


def test_metric_as_bare_number_or_with_source(tmp_path):
    data = _board_data("rpi5")
    data["metrics"] = {"peak_gflops_fp32": 100, "memory_bandwidth": {"value": 17.1, "source": "[3] data sheet"}}
    board = load_board(str(_write_board(tmp_path, data)))
    assert board.metrics["peak_gflops_fp32"].value == 100 and board.metrics["peak_gflops_fp32"].source == ""
    assert board.metrics["memory_bandwidth"].source == "[3] data sheet"


def test_unknown_metric_key(tmp_path):
    data = _board_data("rpi5")
    data["metrics"] = {"peak_tflops": 1}
    message = _config_error(_write_board(tmp_path, data))
    assert "key 'metrics'" in message and "unknown metric 'peak_tflops'" in message
    assert "peak_gflops_fp32" in message  # lists the valid names


@pytest.mark.parametrize(
    "figure, expected",
    [
        ("fast", "metrics.peak_gflops_fp32"),                           # not a number
        ({"value": -1}, "metrics.peak_gflops_fp32.value"),              # negative
        ({"value": 1, "url": "x"}, "metrics.peak_gflops_fp32.url"),     # unknown field
        ({"source": "[1]"}, "metrics.peak_gflops_fp32.value"),          # no value
    ],
)
def test_bad_metric_value(tmp_path, figure, expected):
    data = _board_data("rpi5")
    data["metrics"] = {"peak_gflops_fp32": figure}
    assert f"key '{expected}'" in _config_error(_write_board(tmp_path, data))


def test_declared_capacity_must_match_memory_gb(tmp_path):
    data = _board_data("rpi5")
    data["metrics"]["memory_capacity"] = {"value": 16, "source": "x"}
    assert "differs from memory_gb" in _config_error(_write_board(tmp_path, data))


def test_declared_board_matrix_labels():
    from tvmedge.bench.matrix import METRICS, declared_board

    rows = declared_board("rpi4")
    assert [r["metric"] for r in rows] == [m.key for m in METRICS]
    status = {r["metric"]: r["status"] for r in rows}
    assert status["peak_gflops_fp32"] == "declared" and status["peak_int8_gops"] == "unavailable"
    assert all(r["value"] is None for r in rows if r["status"] == "unavailable")
    assert {r["status"] for r in declared_board("x86-host")} == {"unavailable"}


@pytest.mark.parametrize("spec", ["rk3588", "emu:", "emu", "qemu:rk3588", ""])
def test_emulated_board_names_have_one_parser(spec):
    # `emu:NAME` was parsed in five places with five messages (issue 12); one parser now, its message says what.
    from tvmedge.devices.board import emulated_board_name

    with pytest.raises(ConfigError, match=rf"^--board '{spec}' must look like emu:NAME \(e.g. emu:rk3588\); x$"):
        emulated_board_name(spec, hint="; x")
    assert emulated_board_name("emu:rk3588") == "rk3588"
