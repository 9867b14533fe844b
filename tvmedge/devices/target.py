"""``CompileTarget``: a board resolved for compiling, once per compile, and handed down the pipeline.

Resolving means: the board's TVM target with ``mcpu: host`` / ``num-cores: host`` replaced by this machine's
values (the dict the manifest records and tuning records are keyed by), that dict parsed into a
``tvm.target.Target`` (what scheduling, lowering and the tuner take), and the cross compiler found on this
machine. Scheduling, lowering, linking and partitioned stages take the ``CompileTarget`` and never resolve
or parse the target again.

>>> from tvmedge.devices.target import CompileTarget
>>> target = CompileTarget.resolve("rk3588")
>>> target.spec["mcpu"], target.cross_compiler
('cortex-a76', '/usr/bin/aarch64-linux-gnu-g++')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from ..errors import BuildError, ConfigError, first_line
from .board import Board, load_board

__all__ = ["CompileTarget"]


@dataclass(frozen=True)
class CompileTarget:
    """What one compile builds for: the board, its resolved TVM target (dict and ``tvm.target.Target``) and the
    cross compiler's path (None on a native board)."""

    board: Board
    spec: dict  # the resolved TVM target as a dict (``mcpu: host`` replaced by this machine's CPU)
    tvm_target: Any  # tvm.target.Target(spec)
    cross_compiler: Optional[str] = None

    @classmethod
    def resolve(cls, board: Union[str, Board]) -> "CompileTarget":
        """Resolve ``board`` (a Board, or a name / YAML path / TVM target JSON) once.

        Raises
        ------
        ToolchainError
            The board's cross compiler is missing (naming the Debian package to install).
        BuildError
            TVM cannot parse the board's target.
        """
        board = board if isinstance(board, Board) else load_board(board)
        if board.target.get("kind", "llvm") == "llvm" and "num-cores" not in board.target:
            # MetaSchedule's schedules stop with an internal error without it
            raise ConfigError(f"board {board.name}'s target has no num-cores; add the board's core count "
                              f"(e.g. \"num-cores\": 4, or \"host\" for this machine's)")
        cross_compiler = board.check_toolchain()  # before anything slow: a missing compiler fails first
        return cls._with_spec(board, board.tvm_target(), cross_compiler)

    @classmethod
    def _with_spec(cls, board: Board, spec: dict, cross_compiler: Optional[str]) -> "CompileTarget":
        import tvm

        try:
            tvm_target = tvm.target.Target(spec)
        except Exception as err:  # TVM's target parser raises ValueError / TVMError
            raise BuildError(f"invalid TVM target {spec}: {first_line(err)}") from err
        return cls(board, spec, tvm_target, cross_compiler)

    def for_unit(self, target: dict) -> "CompileTarget":
        """The same board and toolchain with another compute unit's TVM target (a partitioned stage's); this
        target itself when the unit's target is the board's."""
        if dict(target) == dict(self.board.target):
            return self
        from .board import resolve_target

        return self._with_spec(self.board, resolve_target(dict(target)), self.cross_compiler)

    @property
    def name(self) -> str:
        return self.board.name

    @property
    def arch(self) -> str:
        return self.board.arch

    @property
    def triple(self) -> str:
        """The LLVM triple the libraries are built for (the board's)."""
        return self.board.triple

    @property
    def is_native(self) -> bool:
        """True when this machine runs the code directly (and can measure it)."""
        return self.board.is_native

    def describe(self) -> str:
        return f"{self.board.name} ({self.board.triple})"
