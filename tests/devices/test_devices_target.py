"""``CompileTarget`` (issue 12): a board resolved once per compile, and what partitioned stages reuse of it."""

import pytest

from tvmedge.devices.board import load_board
from tvmedge.devices.target import CompileTarget
from tvmedge.errors import BuildError


def test_resolve_gives_the_dict_the_tvm_target_and_the_cross_compiler():
    target = CompileTarget.resolve("rk3588")
    assert target.spec["mcpu"] == "cortex-a76" and str(target.tvm_target.kind) == "llvm"
    assert target.cross_compiler.endswith("aarch64-linux-gnu-g++") and not target.is_native
    assert (target.name, target.arch, target.triple) == ("rk3588", "aarch64", "aarch64-linux-gnu")


def test_host_values_are_resolved_once_into_the_dict():
    target = CompileTarget.resolve("x86-host")
    assert target.spec["mcpu"] != "host" and target.spec == load_board("x86-host").tvm_target()
    assert target.cross_compiler is None and target.is_native


def test_a_unit_with_the_boards_own_target_reuses_it():
    target = CompileTarget.resolve("rk3588")
    a76, a55 = (unit.target for unit in target.board.compute_units[:2])
    assert target.for_unit(a76) is target
    little = target.for_unit(a55)
    assert little.spec["mcpu"] == "cortex-a55" and little.cross_compiler == target.cross_compiler


def test_a_target_tvm_cannot_parse_is_a_build_error():
    with pytest.raises(BuildError, match="invalid TVM target"):
        CompileTarget.resolve('{"kind": "no-such-kind"}')
