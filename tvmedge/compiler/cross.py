"""Writing the executable as a shared library, natively or with the board's cross compiler."""

from __future__ import annotations

from pathlib import Path

from ..errors import BuildError, first_line

__all__ = ["export_library"]


def export_library(executable, path: Path, target) -> Path:
    """Link ``executable`` into ``path`` (a ``.so``) for ``target`` (a
    :class:`~tvmedge.devices.target.CompileTarget`, whose cross compiler was found when it was resolved)."""
    import tvm

    kwargs = {}
    if target.cross_compiler:
        kwargs["fcompile"] = tvm.support.cc.cross_compiler(target.cross_compiler)
    try:
        executable.export_library(str(path), **kwargs)
    except Exception as err:  # the linker's stderr arrives inside a RuntimeError
        raise BuildError(f"linking {path.name} for {target.arch} failed: {first_line(err)}", detail=str(err)) from err
    return path
