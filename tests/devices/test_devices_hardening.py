"""Board files against hostile input (issue 19, findings 6 and 12).

6. a 1.3 KB YAML alias bomb in a board's free-form ``target:`` passed validation; compile then climbed to 7 GB,
   ``targets show`` hung and pydantic-core panicked. Files are bounded, aliases measured before anything is built
   from them, and ``target:`` is typed;
12. the README's raw target JSON without ``num-cores`` stopped a native compile with exit 70 (MetaSchedule's
    internal error); a native JSON target now takes this machine's core count, a cross one is asked for its own.
"""

import time

import pytest
from click.testing import CliRunner

from tvmedge.cli.main import cli
from tvmedge.devices.board import load_board
from tvmedge.errors import ConfigError
from tvmedge.yamlfile import read_yaml


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        prev = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([prev] * 10)}]")
    return "\n".join(lines)


def test_alias_bomb_in_a_board_target_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("name: bomb\narch: x86_64\ntarget:\n  kind: llvm\n  num-cores: 1\n  junk:\n"
                    + "\n".join("    " + line for line in _bomb().splitlines()) + "\n")
    assert path.stat().st_size < 2000  # 10**9 nodes once expanded
    start = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than 100000 YAML nodes through its aliases"):
        load_board(str(path))
    assert time.monotonic() - start < 2
    result = CliRunner().invoke(cli, ["targets", "show", str(path)])
    assert result.exit_code == 1 and "expands to more than" in result.output


def test_recursive_alias_and_oversized_or_special_files(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [*a]\n")
    with pytest.raises(ConfigError, match="expands to more than"):
        read_yaml(path, "board file")
    big = tmp_path / "big.yaml"
    big.write_text("x: " + "a" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="is larger than 1024 KiB"):
        read_yaml(big, "board file")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_yaml("/dev/zero", "board file")


def test_target_is_typed(tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text("name: nested\narch: x86_64\ntarget: {kind: llvm, num-cores: 1, mattr: [[a, [b]]]}\n")
    with pytest.raises(ConfigError, match="key 'target.mattr"):
        load_board(str(path))


def test_shipped_boards_still_load():
    for name in ("rk3588", "x86-host", "bananapi-f3", "jetson-orin-nano"):
        assert load_board(name).target["kind"] == "llvm"


def test_native_target_json_without_num_cores_takes_this_machines(tmp_path):
    board = load_board('{"kind": "llvm", "mcpu": "znver3"}')
    assert board.target["num-cores"] == "host" and isinstance(board.tvm_target()["num-cores"], int)


def test_cross_target_json_without_num_cores_is_one_line_at_compile(tiny_cnn, tmp_path):
    result = CliRunner().invoke(cli, ["compile", str(tiny_cnn), "--target", '{"kind": "llvm", "mtriple": "aarch64-linux-gnu"}',
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "custom-aarch64's target has no num-cores; add the board's core count" in result.output


def test_readme_native_json_target_compiles(tiny_cnn, tmp_path):
    # the exit-70 case itself: MetaSchedule's "Target does not have attribute num-cores"
    result = CliRunner().invoke(cli, ["compile", str(tiny_cnn), "--target", '{"kind": "llvm"}', "--search", "none",
                                      "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
