"""Request bodies to input arrays and output arrays to response bodies. Stdlib + numpy only.

Bodies the service accepts on ``POST /v1/models/{name}/infer``:

- ``application/json``: ``{"inputs": {"input": [[...]]}}``; a value is a nested list (cast to the input's dtype
  when that loses no kind: ints to float32 yes, floats to int8 no) or ``{"data": [[...]], "dtype": "float16"}``
  (used as given, so the loader reports a wrong dtype).
- ``application/x-npy`` (or ``application/octet-stream``): one ``.npy`` array, for a single-input model or the
  input named by ``?input=NAME``.
- ``application/x-npz``: an ``.npz`` archive holding every input by name.

Untrusted bytes are never unpickled, and an ``.npy`` header may not claim more data than the body holds
(a 100-byte body declaring a 1 TB array is refused before anything is allocated). An ``.npz`` member is
inflated in small steps and never past what its input's spec needs (a zip entry may lie about its size), and a
JSON ``dtype`` must be a plain numeric type (a subarray type such as ``"(12000,12000)f8"`` would allocate
gigabytes for a 66-byte body).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Optional

import numpy as np

from ..errors import InputError, ServeError

__all__ = ["JSON", "NPY", "NPZ", "decode_inputs", "encode_outputs", "outputs_bytes"]

JSON, NPY, NPZ = "application/json", "application/x-npy", "application/x-npz"
_NPY_TYPES = {NPY, "application/octet-stream"}


def media_type(content_type: Optional[str]) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    return (content_type or "").split(";")[0].strip().lower()


def decode_inputs(body: bytes, content_type: Optional[str], specs, *, input_name: Optional[str] = None,
                  limit: int = 1 << 24) -> dict:
    """Decode a request body into ``{input name: array}`` for a model with input ``specs``.

    Raises
    ------
    InputError
        Malformed JSON / .npy / .npz.
    ServeError
        An unsupported content type (status 415).
    """
    kind = media_type(content_type) or JSON
    if kind == JSON:
        return _from_json(body, specs)
    if kind in _NPY_TYPES:
        if input_name is None:
            if len(specs) != 1:
                names = ", ".join(s.name for s in specs)
                raise InputError(f"model has {len(specs)} inputs ({names}); send an .npz, JSON, or ?input=NAME with an .npy")
            input_name = specs[0].name
        return {input_name: _read_npy(body)}
    if kind == NPZ:
        return _read_npz(body, limit, specs)
    raise ServeError(f"unsupported content type '{kind}'; send {JSON}, {NPY} or {NPZ}", 415)


def _from_json(body: bytes, specs) -> dict:
    try:
        data = json.loads(body)
    except RecursionError as err:
        raise InputError("request body is not valid JSON: nested too deeply") from err
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise InputError(f"request body is not valid JSON: {err}") from err
    if not isinstance(data, dict) or set(data) != {"inputs"} or not isinstance(data["inputs"], dict):
        raise InputError('JSON body must be {"inputs": {"<input name>": [[...]], ...}}')
    by_name = {s.name: s for s in specs}
    return {name: _array(name, value, _spec(name, by_name)) for name, value in data["inputs"].items()}


def _spec(name: str, by_name: dict):
    """The spec of input ``name``; InputError (before anything is allocated for it) when the model has none."""
    if name not in by_name:
        raise InputError(f"unknown input '{name}'; the model's inputs are: {', '.join(by_name)}")
    return by_name[name]


def _plain_dtype(name: str, given, spec) -> np.dtype:
    """``given`` as a numpy dtype if it is a plain number type (no subarray, no fields); InputError otherwise.

    A structured or subarray dtype (``"(12000,12000)f8"``) makes ``np.array`` allocate the subarray for every
    element: a few bytes of JSON would become gigabytes before any shape check.
    """
    try:
        dtype = np.dtype(str(given))
    except (TypeError, ValueError, SyntaxError) as err:
        raise InputError(f"input '{name}': unknown dtype {given!r}") from err
    if dtype.subdtype is not None or dtype.names is not None or dtype.kind not in "biufc" or dtype.itemsize > 16:
        raise InputError(f"input '{name}': dtype {str(given)[:40]!r} is not a plain number type; the model takes {spec.dtype}")
    return dtype


def _array(name: str, value, spec) -> np.ndarray:
    dtype = None
    if isinstance(value, dict):
        if "data" not in value or set(value) - {"data", "dtype"}:
            raise InputError(f'input \'{name}\': give a nested list or {{"data": [...], "dtype": "float32"}}')
        dtype = _plain_dtype(name, value.get("dtype", "float32"), spec)
        value = value["data"]
    try:
        array = np.array(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as err:
        raise InputError(f"input '{name}' is not a rectangular array of numbers: {str(err).splitlines()[0]}") from err
    if array.dtype.kind not in "biufc":
        raise InputError(f"input '{name}' holds {array.dtype} values; send numbers")
    if dtype is None and np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
        array = array.astype(spec.dtype)  # JSON has no float32: a plain list takes the input's dtype
    return array


def _read_npy(data: bytes) -> np.ndarray:
    handle = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        if dtype.hasobject:
            raise ValueError("it holds Python objects")
        needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if needed > len(data) - handle.tell():
            raise ValueError(f"its header declares {needed} bytes of data but the body holds {len(data) - handle.tell()}")
        handle.seek(0)
        return np.lib.format.read_array(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"request body is not a valid .npy array: {str(err).splitlines()[0]}") from err


_NPY_HEADER_MAX = 1 << 16  # room for an .npy header (numpy writes 128 bytes; a header may not exceed 64 KiB)
_INFLATE_STEP = 1 << 16


def _read_npz(data: bytes, limit: int, specs) -> dict:
    """Each member is inflated in steps of 64 KiB, never past its input's size plus a header: the size a zip
    entry declares is the sender's claim (a 1.5 MB body declaring a small size inflated to gigabytes)."""
    by_name = {s.name: s for s in specs}
    arrays, total = {}, 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            expanded = sum(m.file_size for m in members)
            if expanded > limit:
                raise InputError(f".npz body expands to {expanded} bytes, over the {limit}-byte limit")
            for member in members:
                name = member.filename.removesuffix(".npy")
                spec = _spec(name, by_name)
                bound = min(limit - total, _spec_bytes(spec) + _NPY_HEADER_MAX)
                raw = _inflate(archive, member, bound)
                if raw is None:
                    raise InputError(f".npz member '{member.filename}' inflates to more than the {bound} bytes input "
                                     f"'{name}' ({spec.describe()}) can take")
                total += len(raw)
                arrays[name] = _read_npy(raw)
            return arrays
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise InputError(f"request body is not a valid .npz archive: {str(err).splitlines()[0]}") from err


def _spec_bytes(spec) -> int:
    return int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize


def _inflate(archive: zipfile.ZipFile, member: zipfile.ZipInfo, bound: int) -> Optional[bytes]:
    """The member's bytes, or None as soon as they pass ``bound`` (nothing more is inflated)."""
    chunks, size = [], 0
    with archive.open(member) as handle:
        while True:
            chunk = handle.read(_INFLATE_STEP)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > bound:
                return None
            chunks.append(chunk)


def encode_outputs(outputs: dict) -> dict:
    """``{name: {"shape", "dtype", "data"}}`` for a JSON response (float32 values round-trip exactly)."""
    return {name: {"shape": list(v.shape), "dtype": str(v.dtype), "data": v.tolist()} for name, v in outputs.items()}


def outputs_bytes(outputs: dict, kind: str) -> bytes:
    """Outputs as an ``.npy`` (single output) or ``.npz`` body."""
    buffer = io.BytesIO()
    if kind == NPY:
        if len(outputs) != 1:
            raise InputError(f"model has {len(outputs)} outputs; ask for {NPZ} or {JSON} instead of {NPY}")
        np.save(buffer, next(iter(outputs.values())), allow_pickle=False)
    else:
        np.savez(buffer, **outputs)
    return buffer.getvalue()
