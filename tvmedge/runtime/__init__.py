"""The minimal board-side runtime: a verified artifact in, numpy arrays out.

Imports only the stdlib, numpy, ``tvm.runtime`` and ``tvmedge.runtime`` / ``tvmedge.errors`` — never TVM's
compiler. On a board run with ``TVM_USE_RUNTIME_LIB=1`` so ``import tvm`` loads ``libtvm_runtime.so`` alone.

>>> import numpy as np, tvmedge.runtime as rt
>>> model = rt.load("out/")                       # checks manifest + sha256 before loading the .so
>>> [s.describe() for s in model.inputs]
['input (1, 3, 32, 32) float32']
>>> outputs = model.run({"input": np.zeros((1, 3, 32, 32), "float32")})
>>> {name: value.shape for name, value in outputs.items()}
{'probabilities': (1, 10)}

From a shell (no click needed on the board)::

    python -m tvmedge.runtime out/ --inputs in.npz --output out.npz --repeat 10 --json
"""

from .execution import size_default_pool
from .loader import LatencyStats, Model, RunResult, load
from .lm import GenerationResult, LanguageModel, SamplingOptions, load_lm
from .manifest import Manifest, TensorSpec

__all__ = ["Model", "load", "Manifest", "TensorSpec", "LatencyStats", "RunResult", "LanguageModel", "load_lm",
           "SamplingOptions", "GenerationResult"]

size_default_pool()
