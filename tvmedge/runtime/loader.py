"""``Model``: load a verified artifact and run it. Imports only numpy, ``tvm.runtime`` and tvmedge.runtime.

On a board, set ``TVM_USE_RUNTIME_LIB=1`` so that ``import tvm`` loads ``libtvm_runtime.so`` only.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from ..errors import ArtifactError, InputError
from .manifest import Manifest, TensorSpec

__all__ = ["Model", "load", "check_inputs"]

ArrayLike = Union[np.ndarray, Mapping[str, np.ndarray]]


class Model:
    """A compiled model ready to run.

    Parameters
    ----------
    path : str or Path
        Artifact directory (``manifest.json`` + library).
    device : str
        ``"cpu"`` (the only device the runtime drives so far).
    verify : bool
        Check the manifest's sha256 of every file before the library is loaded (default on).
    """

    def __init__(self, path, device: str = "cpu", verify: bool = True):
        self.path = Path(path)
        self.manifest = Manifest.read(self.path)
        self.manifest.check_arch(self.path)
        if verify:
            self.manifest.verify(self.path)
        if device != "cpu":
            raise ArtifactError(f"device '{device}' is not supported by this runtime; use 'cpu'")
        import tvm  # loaded only now: the manifest is trusted before any native code runs
        import tvm_ffi
        from tvm.runtime.vm import VirtualMachine

        self._tvm = tvm
        self._device = tvm.cpu(0)
        try:
            # keep_module_alive=False: the library is unloaded when this Model (and its VM) are dropped, so
            # a service that unloads models gets their memory back (TVM's default keeps every library
            # loaded until exit; our artifacts register no global functions that would need that).
            self._library = tvm_ffi.load_module(str(self.path / self.manifest.library), keep_module_alive=False)
            self._vm = VirtualMachine(self._library, self._device)
        except Exception as err:  # TVM raises its own error types; report them as a bad artifact
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ArtifactError(f"cannot load {self.path / self.manifest.library}: {first}") from err
        self._main = self._vm["main"]

    @property
    def inputs(self) -> list:
        return list(self.manifest.inputs)

    @property
    def outputs(self) -> list:
        return list(self.manifest.outputs)

    def _arrays(self, inputs: Optional[ArrayLike]) -> list:
        return [self._tvm.runtime.tensor(a, self._device) for a in check_inputs(self.manifest.inputs, inputs)]

    def run(self, inputs: Optional[ArrayLike] = None, **named) -> dict:
        """Run once; returns ``{output name: numpy array}`` in the manifest's order."""
        if inputs is None:
            inputs = named
        return self._named(_flatten(self._main(*self._arrays(inputs))))

    def _named(self, values: list) -> dict:
        specs = self.manifest.outputs
        if len(values) != len(specs):
            raise ArtifactError(f"model returned {len(values)} outputs, manifest lists {len(specs)}")
        return {spec.name: value for spec, value in zip(specs, values)}

    def timed_run(self, inputs: ArrayLike, repeat: int = 10) -> tuple:
        """Run once (timed alone: the first inference pays for lazy set-up), then ``repeat`` more.

        Returns ``(outputs of the first run, latency statistics in ms)``.
        """
        arrays = self._arrays(inputs)

        def once():
            start = time.perf_counter()
            values = _flatten(self._main(*arrays))  # .numpy() copies out, so the time covers the whole run
            return values, (time.perf_counter() - start) * 1e3

        values, first = once()
        times = [once()[1] for _ in range(max(0, repeat))]
        stats = {"first_ms": first, "repeat": len(times)}
        if times:
            ordered = sorted(times)
            stats.update(
                mean_ms=statistics.fmean(times),
                median_ms=statistics.median(times),
                p90_ms=ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
                min_ms=ordered[0],
                max_ms=ordered[-1],
                std_ms=statistics.pstdev(times),
            )
        return self._named(values), stats


def check_inputs(specs, inputs: Optional[ArrayLike]) -> list:
    """Validate inputs against the specs (names, shapes, dtypes); return contiguous arrays in spec order."""
    if isinstance(inputs, np.ndarray):
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise InputError(f"model has {len(specs)} inputs ({names}); pass a dict name -> array")
        inputs = {specs[0].name: inputs}
    if not isinstance(inputs, Mapping):
        raise InputError("inputs must be a numpy array or a dict name -> array")
    unknown = sorted(set(inputs) - {s.name for s in specs})
    if unknown:
        raise InputError(f"unknown input '{unknown[0]}'; the model's inputs are: {', '.join(s.name for s in specs)}")
    missing = [s for s in specs if s.name not in inputs]
    if missing:
        raise InputError(f"missing input '{missing[0].name}' (expected {missing[0].describe()})")
    arrays = []
    for spec in specs:
        value = np.asarray(inputs[spec.name])
        if tuple(value.shape) != tuple(spec.shape) or str(value.dtype) != spec.dtype:
            raise InputError(
                f"input '{spec.name}': expected shape {tuple(spec.shape)} {spec.dtype}, "
                f"got {tuple(value.shape)} {value.dtype}"
            )
        arrays.append(np.require(value, requirements="C"))  # keeps 0-d scalars 0-d (ascontiguousarray would not)
    return arrays


def _flatten(result) -> list:
    """VM results are a tensor or (nested) tuples of tensors; return numpy arrays in order."""
    if hasattr(result, "numpy"):
        return [result.numpy()]
    values = []
    for item in result:
        values.extend(_flatten(item))
    return values


def load(path, device: str = "cpu", verify: bool = True) -> Model:
    """Load an artifact directory; see :class:`Model`."""
    return Model(path, device=device, verify=verify)
