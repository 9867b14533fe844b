"""Writing the executable as a shared library, natively or with the board's cross compiler."""

from __future__ import annotations

from pathlib import Path

from ..devices.board import Board
from ..errors import BuildError, first_line

__all__ = ["export_library"]


def export_library(executable, path: Path, board: Board) -> Path:
    """Link ``executable`` into ``path`` (a ``.so``) for the board's architecture."""
    import tvm

    compiler = board.check_toolchain()  # ToolchainError naming the Debian package when missing
    kwargs = {}
    if compiler:
        kwargs["fcompile"] = tvm.support.cc.cross_compiler(compiler)
    try:
        executable.export_library(str(path), **kwargs)
    except Exception as err:  # the linker's stderr arrives inside a RuntimeError
        raise BuildError(f"linking {path.name} for {board.arch} failed: {first_line(err)}", detail=str(err)) from err
    return path
