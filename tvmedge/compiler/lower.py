"""Lowering a Relax module to a VM executable for one resolved target."""

from __future__ import annotations

from ..errors import BuildError, first_line

__all__ = ["build_executable"]


def build_executable(mod, target, *, opt_level: int = 3, relax_pipeline="default"):
    """``tvm.compile`` the module for ``target`` (a :class:`~tvmedge.devices.target.CompileTarget`); BuildError with
    the first line on failure. ``relax_pipeline``: TVM's default, or one that also records what it lowered
    (:func:`tvmedge.compiler.layers.recording_pipeline`)."""
    import tvm

    try:
        with tvm.transform.PassContext(opt_level=opt_level):
            return tvm.compile(mod, target=target.tvm_target, relax_pipeline=relax_pipeline)
    except Exception as err:
        raise BuildError(f"TVM could not build the model for {target.tvm_target}: {first_line(err)}",
                         detail=str(err)) from err
