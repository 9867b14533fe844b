"""Lowering a Relax module to a VM executable for one TVM target."""

from __future__ import annotations

from ..errors import BuildError, first_line

__all__ = ["build_executable"]


def build_executable(mod, target: dict, *, opt_level: int = 3):
    """``tvm.compile`` the module for ``target`` (a TVM target dict); BuildError with the first line on failure."""
    import tvm

    try:
        tvm_target = tvm.target.Target(target)
    except Exception as err:  # TVM's target parser raises ValueError / TVMError
        raise BuildError(f"invalid TVM target {target}: {first_line(err)}") from err
    try:
        with tvm.transform.PassContext(opt_level=opt_level):
            return tvm.compile(mod, target=tvm_target)
    except Exception as err:
        raise BuildError(f"TVM could not build the model for {tvm_target}: {first_line(err)}", detail=str(err)) from err
