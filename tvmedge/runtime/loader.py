"""``Model``: load a verified artifact and run it. Imports only numpy, ``tvm.runtime`` and tvmedge.runtime.

On a board, set ``TVM_USE_RUNTIME_LIB=1`` so that ``import tvm`` loads ``libtvm_runtime.so`` only.
"""

from __future__ import annotations

import functools

import statistics
import time
import weakref
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from ..errors import ArtifactError, InputError, ToolchainError, first_line
from .manifest import Manifest
from .trust import DECRYPT_ENV, decrypt_library, decryption_key, secret_key_id, trusted_keys, verify_signature

__all__ = ["Model", "LatencyStats", "RunResult", "load", "check_inputs", "check_versions"]

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
    session : tvm.rpc.RPCSession, optional
        Run on a remote board through TVM's RPC instead: the libraries are verified here, uploaded and
        loaded there, and tensors live on the board.
    trust : str, Path or list, optional
        Public key(s) the artifact must be signed by (a ``.pem`` file or a folder of them; default
        ``$TVMEDGE_TRUSTED_KEYS``, unset = no signature required). See :mod:`tvmedge.runtime.trust`.
    allow_version_mismatch : bool
        Load an artifact built with another TVM / tvm-ffi than this runtime's (refused by default).
    decrypt : str or Path, optional
        Key file of an encrypted artifact (default ``$TVMEDGE_DECRYPTION_KEY``): its libraries are decrypted into
        memory (a memfd) and loaded from there, never written to disk in plaintext.
    weights : tvmedge.runtime.weights.Weights, optional
        For an artifact whose weights live outside its library (an LM artifact's prefill and decode: the manifest's
        ``weights``): tensors already loaded, shared with another model (what :class:`~.lm.LanguageModel` passes
        both graphs). Default: loaded here from the file the manifest names, beside the artifact folder.
    """

    def __init__(self, path, device: str = "cpu", verify: bool = True, session=None, trust=None,
                 allow_version_mismatch: bool = False, decrypt=None, weights=None):
        self.path = Path(path)
        self.manifest = Manifest.read(self.path)
        keys = trusted_keys(trust)
        self.signer = None
        if keys is not None:  # authenticity first: nothing of an unsigned or forged artifact is looked at further
            recorded = (self.manifest.provenance or {}).get("key_id")
            self.signer = verify_signature(self.path, self.manifest.digest, keys, recorded_key=recorded)
        if session is None:
            self.manifest.check_arch(self.path)
        if verify:
            self.manifest.verify(self.path)
        if device != "cpu":
            raise ArtifactError(f"device '{device}' is not supported by this runtime; use 'cpu'")
        try:  # loaded only now: the manifest is trusted before any native code runs
            import tvm
            import tvm_ffi
            from tvm.runtime.vm import VirtualMachine
        except Exception as err:  # a missing or broken runtime installation (e.g. a numpy too old for it)
            raise ToolchainError(f"cannot import TVM's runtime ({type(err).__name__}): {first_line(err)}") from err
        if not allow_version_mismatch:
            check_versions(self.manifest, self.path, tvm.__version__, getattr(tvm_ffi, "__version__", ""))
        secret = self._secret(decrypt, session)

        self._tvm = tvm
        self._tvm_ffi = tvm_ffi
        self._session = session
        self._device = tvm.cpu(0) if session is None else session.cpu(0)
        # Every artifact runs as a list of stages (a single-library artifact is one stage): the manifest's
        # typed plan says which tensors each stage's ``main`` takes and returns, by name.
        self._stages = []  # (stage, main function)
        self._libraries = []  # (library module, VM) per stage, kept alive with the model
        self._memfds: list = []  # decrypted libraries' memfds: open while the model lives (see _load_decrypted)
        weakref.finalize(self, _close_all, self._memfds)
        for stage in self.manifest.stages():
            path = self.path / stage.library
            try:
                # keep_module_alive=False: the library is unloaded when this Model (and its VM) are dropped, so
                # a service that unloads models gets their memory back (TVM's default keeps every library
                # loaded until exit; our artifacts register no global functions that would need that).
                if secret is not None and stage.library in self.manifest.encryption["files"]:
                    library = _load_decrypted(decrypt_library(path, stage.library, *secret), stage.library, tvm_ffi,
                                              self._memfds)
                elif session is None:
                    library = tvm_ffi.load_module(str(path), keep_module_alive=False)
                else:  # named by content on the board: two artifacts' model.so must not overwrite each other
                    remote = f"{self.manifest.files[stage.library]['sha256'][:16]}-{stage.library}"
                    session.upload(str(path), target=remote)
                    library = session.load_module(remote)
                vm = VirtualMachine(library, self._device)
            except ArtifactError:
                raise
            except Exception as err:  # TVM raises its own error types; report them as a bad artifact
                raise ArtifactError(f"cannot load {path}: {first_line(err)}") from err
            self._libraries.append((library, vm))
            self._stages.append((stage, vm["main"]))
        self._check_plan()
        self._params = self._weights(weights)  # appended to main's inputs on every call

    def _weights(self, weights) -> list:
        """The tensors ``main`` takes after the model's inputs (none when the library embeds its weights)."""
        record = self.manifest.weights
        if not record:
            return []
        if self.stage_count != 1:
            raise ArtifactError(f"{self.path}: weights outside the libraries are only supported for one library")
        if weights is None:
            from .weights import Weights

            weights = Weights(self.path.parent / record["file"], record["names"])
        return weights.select(record["names"], self.path, self.tensor)

    def _secret(self, decrypt, session) -> Optional[tuple]:
        """``(key, where from)`` for an encrypted artifact (ArtifactError when it is missing or another key);
        None for a plain one."""
        encryption = self.manifest.encryption
        if not encryption:
            return None
        secret = decryption_key(decrypt)
        if secret is None:
            raise ArtifactError(f"{self.path} is encrypted (key {encryption['key_id']}); pass its key with --decrypt "
                                f"KEYFILE or {DECRYPT_ENV}")
        if secret_key_id(secret[0]) != encryption["key_id"]:
            raise ArtifactError(f"{self.path} is encrypted with key {encryption['key_id']}, {secret[1]} is key "
                                f"{secret_key_id(secret[0])}: wrong key")
        if session is not None:
            raise ArtifactError(f"{self.path} is encrypted: it is decrypted on the board only (run it there with "
                                "--decrypt), never sent over RPC in plaintext")
        return secret

    def _check_plan(self) -> None:
        """Every tensor a stage reads is a model input or an earlier stage's output; outputs are produced."""
        known = {spec.name for spec in self.manifest.inputs}
        for stage, _ in self._stages:
            missing = [n for n in stage.input_names if n not in known]
            if missing:
                raise ArtifactError(f"{self.path}: stage {stage.index} reads '{missing[0]}', which no earlier stage produces")
            known.update(stage.output_names)
        outputs = self.manifest.output_names()
        if len(outputs) != len(self.manifest.outputs) or any(n not in known for n in outputs):
            raise ArtifactError(f"{self.path}: the plan's outputs {outputs} do not match the model's outputs")

    @property
    def stage_count(self) -> int:
        """Number of libraries run one after another (1 for a single-library artifact)."""
        return len(self._stages)

    def stage_vms(self) -> list:
        """The Relax ``VirtualMachine`` of every stage, in order (for instrumenting: :mod:`.profile`)."""
        return [vm for _, vm in self._libraries]

    def run_stage(self, index: int, tensors: dict, known: Optional[dict] = None) -> dict:
        """Run stage ``index`` on ``tensors`` (name -> TVM tensor) and return the tensors it produces (name -> TVM
        tensor). For pipelined execution of a partitioned artifact (a thread per stage).

        ``known``: outputs the caller already holds (output name -> tensor), not fetched: the inputs a graph
        updates in place (``build.updated_in_place``) are its outputs too, and TVM's RPC cannot hand back a
        remote tensor that came in as an argument."""
        stage, main = self._stages[index]
        result = main(*[tensors[n] for n in stage.input_names], *self._params)
        if known and self._session is not None and type(result).__name__ == "RPCObjectRef":
            item = self._session.get_function("ffi.ArrayGetItem")
            return {name: known[name] if name in known else _flatten_tensors(item(result, i), self._session)[0]
                    for i, name in enumerate(stage.output_names)}
        values = _flatten_tensors(result, self._session)
        if len(values) != len(stage.outputs):
            raise ArtifactError(f"stage {index} returned {len(values)} tensors, the plan lists {len(stage.outputs)}")
        return dict(zip(stage.output_names, values))

    def tensor(self, array: np.ndarray):
        """One numpy array as a TVM tensor on this model's device (on the board, for an RPC session)."""
        return self._to_tensor(np.require(array, requirements="C"))

    def _to_tensor(self, array: np.ndarray):
        if self._session is None and array.size:  # (an empty array's data pointer is not aligned: no need)
            return self._tvm_ffi.from_dlpack(_aligned_copy(array), require_alignment=_ALIGNMENT)
        return self._tvm.runtime.tensor(array, self._device)

    def to_device(self, inputs: Optional[ArrayLike] = None) -> dict:
        """Checked inputs as TVM tensors by input name (what :meth:`run_stage` takes)."""
        return dict(zip((s.name for s in self.manifest.inputs), self._arrays(inputs)))

    def _main(self, *arrays) -> list:
        """The model: every stage in order on the input tensors -> the output tensors, in the model's order."""
        tensors = dict(zip((s.name for s in self.manifest.inputs), arrays))
        for index in range(len(self._stages)):
            tensors.update(self.run_stage(index, tensors))
        return [tensors[n] for n in self.manifest.output_names()]

    @property
    def inputs(self) -> list:
        return list(self.manifest.inputs)

    @property
    def outputs(self) -> list:
        return list(self.manifest.outputs)

    def _arrays(self, inputs: Optional[ArrayLike]) -> list:
        return [self._to_tensor(a) for a in check_inputs(self.manifest.inputs, inputs)]

    def run(self, inputs: Optional[ArrayLike] = None, **named) -> dict:
        """Run once; returns ``{output name: numpy array}`` in the manifest's order."""
        if inputs is None:
            inputs = named
        return self._named(_flatten(self._main(*self._arrays(inputs)), self._session is None))

    def _named(self, values: list) -> dict:
        specs = self.manifest.outputs
        if len(values) != len(specs):
            raise ArtifactError(f"model returned {len(values)} outputs, manifest lists {len(specs)}")
        return {spec.name: value for spec, value in zip(specs, values)}

    def timed_run(self, inputs: ArrayLike, repeat: int = 10) -> tuple:
        """Run once (timed alone: the first inference pays for lazy set-up), then ``repeat`` more.

        Returns ``(outputs of the first run, LatencyStats)``.
        """
        arrays = self._arrays(inputs)

        def once():
            start = time.perf_counter()
            values = _flatten(self._main(*arrays), self._session is None)  # copies out: the time covers the whole run
            return values, (time.perf_counter() - start) * 1e3

        values, first = once()
        times = [once()[1] for _ in range(max(0, repeat))]
        return self._named(values), LatencyStats.from_times(first, times)


@dataclass(frozen=True)
class LatencyStats:
    """Latency of a run in ms: the first inference (it pays for lazy set-up) alone, then ``repeat`` more.

    The same object whoever ran the model: :meth:`Model.timed_run`, ``python -m tvmedge.runtime --json`` and
    ``tvmedge-run --json`` on a board (their ``"stats"``, read back with :meth:`from_json`). What a board-side
    loader adds (``load_s``, ``loader``, ``times_ms``) is kept in ``extra``.
    """

    first_ms: float
    repeat: int = 0
    mean_ms: Optional[float] = None
    median_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    min_ms: Optional[float] = None
    max_ms: Optional[float] = None
    std_ms: Optional[float] = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_times(cls, first_ms: float, times: list) -> "LatencyStats":
        if not times:
            return cls(first_ms, 0)
        ordered = sorted(times)
        return cls(first_ms, len(times), mean_ms=statistics.fmean(times), median_ms=statistics.median(times),
                   p90_ms=ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], min_ms=ordered[0],
                   max_ms=ordered[-1], std_ms=statistics.pstdev(times))

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        data = {k: v for k, v in data.items() if v is not None}
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LatencyStats":
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


@dataclass
class RunResult:
    """One run of an artifact: outputs by name, latency, where it ran. ``emulated`` runs (qemu) time the
    emulator, not the board. ``comparison`` (with a reference model) has one row per output: ``name``,
    ``max_abs_diff``, ``match``."""

    outputs: dict
    stats: LatencyStats
    where: str
    emulated: bool = False
    comparison: Optional[list] = None
    reference: Optional[str] = None
    written: Optional[str] = None  # where the outputs were saved

    @property
    def matches_reference(self) -> Optional[bool]:
        """True when every output matches the reference's; None without a reference."""
        return None if self.comparison is None else all(row["match"] for row in self.comparison)


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
        if value.shape != tuple(spec.shape) or value.dtype != _numpy_dtype(spec.dtype):
            raise InputError(
                f"input '{spec.name}': expected shape {tuple(spec.shape)} {spec.dtype}, "
                f"got {tuple(value.shape)} {value.dtype}"
            )
        arrays.append(np.require(value, requirements="C"))  # keeps 0-d scalars 0-d (ascontiguousarray would not)
    return arrays


@functools.lru_cache(maxsize=None)
def _numpy_dtype(name: str):
    """numpy's dtype for a manifest dtype name (compared as objects: ``str(array.dtype)`` costs microseconds per
    call, a tenth of a small model's run); the name itself when numpy has no such type (never equal to one)."""
    try:
        return np.dtype(name)
    except TypeError:
        return name


def _flatten(result, local: bool = True) -> list:
    """VM results are a tensor or (nested) tuples of tensors; return numpy arrays (copies) in order. ``local``:
    the tensors are in this process's memory (not over RPC), so they are read through DLPack."""
    if hasattr(result, "numpy"):
        return [np.from_dlpack(result).copy() if local else result.numpy()]
    values = []
    for item in result:
        values.extend(_flatten(item, local))
    return values


# The alignment TVM's runtime gives its own allocations (kAllocAlignment), which compiled kernels may assume.
_ALIGNMENT = 64


def _aligned_copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` starting on a 64-byte boundary, to hand to the VM through DLPack.

    Written out because ``tvm.runtime.tensor`` (empty + copyfrom) spends ~30-100 us per call in Python-side
    checks, more than a small model's whole run (tiny_cnn's kernels take ~30 us); this copy and DLPack's
    wrapping cost a few us. Likewise outputs are read with ``np.from_dlpack`` rather than ``Tensor.numpy()``.
    """
    buffer = np.empty(array.nbytes + _ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % _ALIGNMENT
    copy = buffer[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    np.copyto(copy, array)
    return copy


def _flatten_tensors(result, session=None) -> list:
    """Like :func:`_flatten`, but the tensors stay TVM tensors (handed to the next stage without a copy). Over
    RPC a tuple of results stays on the board as a remote array: its items are fetched as remote tensors."""
    if hasattr(result, "numpy"):
        return [result]
    if session is not None and type(result).__name__ == "RPCObjectRef":
        size, item = session.get_function("ffi.ArraySize"), session.get_function("ffi.ArrayGetItem")
        result = [item(result, i) for i in range(int(size(result)))]
    values = []
    for item in result:
        values.extend(_flatten_tensors(item, session))
    return values


def _load_decrypted(plaintext: bytes, name: str, tvm_ffi, keep_open: list):
    """Load a library from memory: written to an anonymous memfd (no file system holds it) and opened through
    /proc/self/fd. tvm_ffi.load_module picks the loader by file extension, which a memfd path lacks, so the
    ``.so`` loader it would pick is called directly.

    The memfd stays open (its number goes into ``keep_open``, closed with the model): dlopen knows a loaded
    library by its path, so a second library opened through a reused ``/proc/self/fd/N`` would silently be the
    first one again (an encrypted LM artifact's decode graph running its prefill library)."""
    import os

    fd = os.memfd_create(name, getattr(os, "MFD_CLOEXEC", 0))
    keep_open.append(fd)
    view = memoryview(plaintext)
    while view:
        view = view[os.write(fd, view):]
    return tvm_ffi.get_global_func("ffi.Module.load_from_file.so")(f"/proc/self/fd/{fd}", "so")


def _close_all(fds: list) -> None:
    import os

    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def check_versions(manifest: Manifest, where, tvm_version: str, ffi_version: str) -> None:
    """ArtifactError naming both versions when the artifact was built with another TVM or tvm-ffi than the
    runtime's (an artifact that records none, built before the pin, is not checked)."""
    built = {"TVM": manifest.tvm_version, "tvm-ffi": manifest.tvm_ffi_version}
    here = {"TVM": tvm_version, "tvm-ffi": ffi_version}
    for name in built:
        if built[name] and here[name] and built[name] != here[name]:
            raise ArtifactError(f"{where} was built with {name} {built[name]}, this runtime is {name} {here[name]}: "
                                "rebuild it with this version (or pass --allow-version-mismatch if you know it is compatible)")


def load(path, device: str = "cpu", verify: bool = True, session=None, trust=None,
         allow_version_mismatch: bool = False, decrypt=None, weights=None) -> Model:
    """Load an artifact directory; see :class:`Model`."""
    return Model(path, device=device, verify=verify, session=session, trust=trust,
                 allow_version_mismatch=allow_version_mismatch, decrypt=decrypt, weights=weights)
