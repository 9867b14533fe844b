"""The emulated board an analysis runs on."""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["emulated_board"]


def emulated_board(board: str, manifest, artifact):
    """The set-up emulated board ``emu:NAME``, checked against the artifact's architecture."""
    from ..devices.board import emulated_board_name, load_board
    from ..emulator import setup_board

    name = emulated_board_name(board)
    target = load_board(name)
    if target.arch != manifest.arch:
        raise ConfigError(f"artifact {artifact} is built for {manifest.arch}, board {name} is {target.arch}")
    return setup_board(target)
