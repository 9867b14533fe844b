"""Weights kept outside the libraries: ``weights.safetensors`` of an LM artifact, loaded once as TVM tensors and
handed to every library that computes with them. numpy and ``tvm.runtime`` only (the compiler writes the file:
:mod:`tvmedge.compiler.weights`).

The file is a standard safetensors file (an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, the bytes). Each tensor is named by the sha256 of its dtype, shape and
bytes (``w<64 hex digits>``), and the manifests list the names their library needs. So loading verifies every
tensor against its own name while it reads it: a changed byte, shape or dtype is refused, and a file from another
build lacks the names. The file is read once, front to back, one tensor at a time (no mapping of the whole file,
no second copy in memory): peak memory is the weights plus the largest tensor.

>>> from tvmedge.runtime.weights import load_weights
>>> weights = load_weights("out-lm/weights.safetensors")                   # doctest: +SKIP
>>> len(weights), weights.nbytes                                           # doctest: +SKIP
(70, 3325952)
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from ..errors import ArtifactError

__all__ = ["WEIGHTS_FILE", "SAFETENSORS_DTYPES", "Weights", "load_weights", "read_header"]

WEIGHTS_FILE = "weights.safetensors"
# safetensors dtype -> numpy dtype name (what tvmedge artifacts hold; bfloat16/fp8 weights are not produced)
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32",
                      "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8",
                      "BOOL": "bool"}
MAX_HEADER_BYTES = 64 << 20
_CHUNK = 16 << 20


class Weights:
    """An artifact's weights file and the tensors loaded from it (name -> TVM tensor). Loaded on first use
    (:meth:`load`, :meth:`select`), once: models that share a :class:`Weights` share its tensors.

    ``names``: the tensors to load (default all in the file)."""

    def __init__(self, path, names: Optional[Iterable[str]] = None):
        self.path = Path(path)
        self.names = None if names is None else list(dict.fromkeys(names))
        self.tensors: Optional[dict] = None
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.tensors or {})

    def load(self, make: Optional[Callable[[np.ndarray], object]] = None) -> "Weights":
        """Read the file (the first time) into tensors made by ``make`` (numpy array -> TVM tensor; default a
        tensor on this machine's CPU); see :func:`load_weights`."""
        if self.tensors is None:
            self.tensors, self.nbytes = _read(self.path, make, self.names)
        return self

    def select(self, names: Iterable[str], who, make: Optional[Callable[[np.ndarray], object]] = None) -> list:
        """The tensors ``names`` in order (loading the file first if needed); ArtifactError naming the first one
        the file lacks."""
        self.load(make)
        names = list(names)
        missing = [n for n in names if n not in self.tensors]
        if missing:
            raise ArtifactError(f"{self.path} lacks weight {missing[0][:17]}... that {who} needs ({len(missing)} "
                                "missing): it is another build's weights file; rebuild the artifact")
        return [self.tensors[n] for n in names]


def read_header(handle, path) -> tuple:
    """``(header dict without __metadata__, data start offset)`` of an open safetensors file, checked: every
    tensor a known dtype, a shape, and byte ranges that tile the data exactly."""
    raw = handle.read(8)
    if len(raw) != 8:
        raise ArtifactError(f"{path} is not a safetensors file (shorter than its header length)")
    (size,) = struct.unpack("<Q", raw)
    if size > MAX_HEADER_BYTES:
        raise ArtifactError(f"{path} is not a safetensors file tvmedge wrote (header of {size} bytes)")
    try:
        header = json.loads(handle.read(size).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path} has a corrupt safetensors header: {err}") from err
    if not isinstance(header, dict):
        raise ArtifactError(f"{path} has a corrupt safetensors header (not an object)")
    header.pop("__metadata__", None)
    end = 0
    for name, info in sorted(header.items(), key=lambda item: _offsets(item[1])[0] if isinstance(item[1], dict)
                             else -1):
        begin, stop = _offsets(info)
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = SAFETENSORS_DTYPES.get(info.get("dtype")) if isinstance(info, dict) else None
        if dtype is None or not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) \
                or begin != end or stop - begin != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
            raise ArtifactError(f"{path}: tensor '{str(name)[:80]}' has a malformed entry in the safetensors header")
        end = stop
    return header, 8 + size


def _offsets(info) -> tuple:
    offsets = info.get("data_offsets") if isinstance(info, dict) else None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets):
        return (-1, -1)
    return tuple(offsets)


def load_weights(path, make: Optional[Callable[[np.ndarray], object]] = None,
                 names: Optional[Iterable[str]] = None) -> Weights:
    """:class:`Weights` of ``path``, loaded now; see :func:`_read`."""
    return Weights(path, names).load(make)


def _read(path, make: Optional[Callable[[np.ndarray], object]], names: Optional[Iterable[str]]) -> tuple:
    """``(tensors, bytes)``: read ``path`` (safetensors) into tensors made by ``make`` (numpy array -> TVM tensor;
    default a tensor on this machine's CPU), each checked against its name (the sha256 of its dtype, shape and bytes) as it is read.
    ``names``: load only these (default all).

    Raises
    ------
    ArtifactError
        Missing or malformed file, or a tensor whose bytes do not match its name (tampered or corrupt).
    """
    path = Path(path)
    if make is None:
        import tvm

        make = tvm.runtime.tensor
    if path.is_symlink() or not path.is_file():
        raise ArtifactError(f"{path} is missing (or a symbolic link); the artifact's weights must be a regular file "
                            "beside its libraries")
    wanted = None if names is None else set(names)
    tensors, total = {}, 0
    with open(path, "rb") as handle:
        header, start = read_header(handle, path)
        if start + sum(_offsets(i)[1] - _offsets(i)[0] for i in header.values()) != path.stat().st_size:
            raise ArtifactError(f"{path} is not as long as its header says (truncated or appended to)")
        for name, info in sorted(header.items(), key=lambda item: _offsets(item[1])[0]):
            begin, stop = _offsets(info)
            if wanted is not None and name not in wanted:
                continue
            handle.seek(start + begin)
            array = np.empty(info["shape"], dtype=np.dtype(SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<"))
            view = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
            digest = hashlib.sha256(f"{array.dtype.name}:{list(array.shape)}:".encode())
            for at in range(0, stop - begin, _CHUNK):
                part = view[at:at + _CHUNK]
                if handle.readinto(part) != len(part):
                    raise ArtifactError(f"{path} ends inside tensor {name[:17]}... (truncated)")
                digest.update(part)
            if "w" + digest.hexdigest() != name:
                raise ArtifactError(f"{path}: tensor {name[:17]}... does not match its sha256 (tampered or corrupt); "
                                    "refusing to load it")
            tensors[name] = make(array)
            total += array.nbytes
            del array, view
    if wanted is not None and wanted - set(tensors):
        missing = sorted(wanted - set(tensors))
        raise ArtifactError(f"{path} lacks weight {missing[0][:17]}... ({len(missing)} missing): it is another build's "
                            "weights file; rebuild the artifact")
    return tensors, total
