"""tvmedge: a compiler-style scheduler for edge AI, built on Apache TVM.

The package root stays light on purpose: ``import tvmedge.runtime`` on a board must not pull in TVM's
compiler, so nothing here imports ``tvm``. The library API lives in :mod:`tvmedge.api`; the board-side
loader in :mod:`tvmedge.runtime`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
