"""Emulated boards: run artifacts for another architecture on this machine with qemu-user.

Nothing here needs a real board. Two kinds of emulated board, chosen by the board's architecture:

* aarch64 (:mod:`.python_board`): the board's Debian Python with TVM's aarch64 wheels minus the compiler, running
  ``python -m tvmedge.runtime`` — the same loader as on the host — and TVM's RPC server for remote tuning.
* riscv64 (:mod:`.cpp_board`): no TVM wheel exists, so TVM's runtime is cross-built from the wheel's own
  sources and artifacts run with tvmedge's C++ loader, ``tvmedge-run``, which reads the same manifest.

Both are built once per machine and cached (``$TVMEDGE_CACHE``, default ``~/.cache/tvmedge``). Emulated timings
mean nothing for the real board: a run on one is marked so (``RunResult.emulated``).

The two kinds are named by what runs the artifact: :class:`PythonEmulatedBoard` (the board's Python) and
:class:`CppEmulatedBoard` (the C++ loader); :data:`EmulatedBoard` is either.

>>> from tvmedge.devices.board import load_board
>>> from tvmedge.emulator import setup_board
>>> emu = setup_board(load_board("rk3588"), progress=print)   # ~1 min the first time, then instant
>>> outputs, stats = emu.run_artifact("out/", {"input": x})   # stats: LatencyStats  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable, Optional, Union

from ..cache import cache_dir
from ..devices.board import Board
from ..errors import ConfigError
from .cpp_board import CPP_ARCHS, CppEmulatedBoard, load_cpp_board, setup_cpp_board
from .python_board import LAYOUT_VERSION, PythonEmulatedBoard, board_root, load_python_board, setup_python_board

__all__ = ["PythonEmulatedBoard", "CppEmulatedBoard", "EmulatedBoard", "setup_board", "load_emulated_board",
           "board_root", "cache_dir", "LAYOUT_VERSION", "serve_until_stopped"]

EmulatedBoard = Union[PythonEmulatedBoard, CppEmulatedBoard]


def _check(board: Board) -> None:
    if board.arch == "x86_64":
        raise ConfigError(f"board {board.name} is x86_64: it runs natively on this host, no emulated board needed")


def setup_board(board: Board, *, progress=None, force: bool = False) -> EmulatedBoard:
    """Build (once per machine and architecture) and return the emulated board for ``board``.

    Raises
    ------
    ConfigError
        The board needs no emulation (x86_64) or its architecture has no recipe.
    ToolchainError
        qemu or a compiler is missing, or a set-up step failed (one line naming the step).
    """
    _check(board)
    if board.arch in CPP_ARCHS:
        return setup_cpp_board(board, progress=progress, force=force)
    return setup_python_board(board, progress=progress, force=force)


def load_emulated_board(board: Board) -> Optional[EmulatedBoard]:
    """The board's emulated board if it is set up and current, else None (never builds anything)."""
    _check(board)
    if board.arch in CPP_ARCHS:
        return load_cpp_board(board)
    return load_python_board(board)


def serve_until_stopped(emulated: EmulatedBoard, *, host: str = "127.0.0.1", port: int = 9090,
                        tracker: Optional[str] = None, key: str = "",
                        on_start: Optional[Callable[[str], None]] = None) -> int:
    """Run TVM's RPC server on ``emulated`` until it exits (its exit code is returned) or Ctrl-C (the server is
    stopped, 0 is returned). Point ``host`` at loopback: the server runs whatever modules its clients upload."""
    process = emulated.serve_rpc(host=host, port=port, tracker=tracker, key=key)
    if on_start:
        on_start(f"RPC server for emulated {emulated.board.name} starting on {host}:{port} (Ctrl-C stops it)")
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
        return 0
