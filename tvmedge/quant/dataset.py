"""Calibration and evaluation data: a folder of ``.npy`` / ``.npz`` files, a text file listing them, or one file.

- ``.npy``: one array for a single-input model.
- ``.npz``: one array per input name (a single-input model also takes any one array), plus optional
  ``labels`` (or ``label``, ``y``, ``target``) for accuracy.
- A list file (RKNN-Toolkit2's ``dataset.txt``): one path per line, relative to the list file; blank lines
  and ``#`` comments are skipped.

An array may hold one sample (the model's input shape, with or without its batch dim) or a stack of them
along the batch axis; stacks are split into model-sized samples. The result is an iterable of input dicts,
like ONNX Runtime's ``CalibrationDataReader``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ConfigError

__all__ = ["Dataset", "load_dataset", "LABEL_KEYS"]

LABEL_KEYS = ("labels", "label", "y", "target")
_SUFFIXES = (".npy", ".npz")


@dataclass
class Dataset:
    """Samples (input dicts, each shaped as the model takes it) and their labels if the files had any."""

    source: str
    samples: list = field(default_factory=list)
    labels: Optional[np.ndarray] = None  # one per batch row, concatenated over samples

    def __iter__(self):
        return iter(self.samples)

    def __len__(self):
        return len(self.samples)


def load_dataset(path, inputs: list, *, key: str, limit: Optional[int] = None) -> Dataset:
    """Read ``path`` (folder, list file, ``.npy`` or ``.npz``) for a model with ``inputs`` (``TensorSpec`` list:
    dims may be names where the model's shape is symbolic).

    ``key`` names the setting in error messages (``quantization.calibration_dataset``, ``--evaluate``);
    ``limit`` keeps the first N samples. Raises ConfigError for anything missing or mis-shaped.
    """
    path = Path(path)
    files = _files(path, key)
    samples, labels, read = [], [], 0
    for file in files:
        arrays, file_labels = _read(file, inputs, key)
        samples += _split(file, arrays, inputs, key)
        read += 1
        if file_labels is not None:
            labels.append(np.asarray(file_labels).reshape(-1))
        if limit and len(samples) >= limit:
            break
    if not samples:
        raise ConfigError(f"{key}: {path} holds no samples")
    total = len(samples)
    samples = samples[:limit] if limit else samples
    label_array = None
    if labels and len(labels) == read:  # labels only when every file has them
        label_array = np.concatenate(labels)
        rows = label_array.size // total
        if rows * total != label_array.size:
            raise ConfigError(f"{key}: {path} has {label_array.size} labels for {total} samples")
        label_array = label_array[:len(samples) * rows]
    return Dataset(str(path), samples, label_array)


_MAX_LIST_BYTES = 1 << 20  # a list file names files, one per line: a few KB


def _regular(path: Path, key: str, where: str = "") -> None:
    """ConfigError unless ``path`` is a regular file: a device (/dev/zero) would be read without end, a FIFO
    would block forever."""
    if not path.is_file():
        raise ConfigError(f"{key}: {where}{path} is not a regular file (expected a .npy, .npz or list file)")


def _files(path: Path, key: str) -> list:
    if not path.exists():
        raise ConfigError(f"{key}: {path} does not exist (expected a folder of .npy/.npz files, "
                          f"a text file listing them, or one .npy/.npz file)")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        if not files:
            raise ConfigError(f"{key}: folder {path} has no .npy or .npz files")
        return files
    _regular(path, key)
    if path.suffix in _SUFFIXES:
        return [path]
    with open(path, "rb") as handle:
        raw = handle.read(_MAX_LIST_BYTES + 1)
    if len(raw) > _MAX_LIST_BYTES:
        raise ConfigError(f"{key}: {path} is larger than {_MAX_LIST_BYTES >> 10} KiB; a list file names one .npy/.npz per line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{key}: {path} is neither a .npy/.npz file nor a text file listing them") from err
    files = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line) if Path(line).is_absolute() else path.parent / line
        if entry.suffix not in _SUFFIXES:  # the line itself is not shown: the file may not be a list at all
            raise ConfigError(f"{key}: {path} line {number} does not name a .npy or .npz file "
                              "(a list file names one per line)")
        if not entry.exists():
            raise ConfigError(f"{key}: {path} line {number}: {entry} does not exist")
        _regular(entry, key, f"{path} line {number}: ")
        files.append(entry)
    if not files:
        raise ConfigError(f"{key}: list file {path} names no files")
    return files


def _read(file: Path, inputs: list, key: str):
    """-> ({input name: array}, labels or None)."""
    try:
        loaded = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}: cannot read {file}: {str(err).splitlines()[0]}") from err
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise ConfigError(f"{key}: {file} holds one array but the model has inputs "
                              f"{', '.join(s.name for s in inputs)}; use .npz files with one array per input")
        return {inputs[0].name: loaded}, None
    with loaded:
        data = {name: loaded[name] for name in loaded.files}
    labels = next((data.pop(k) for k in LABEL_KEYS if k in data), None)
    names = [s.name for s in inputs]
    if all(n in data for n in names):
        return {n: data[n] for n in names}, labels
    if len(names) == 1 and len(data) == 1:
        return {names[0]: next(iter(data.values()))}, labels
    missing = [n for n in names if n not in data]
    raise ConfigError(f"{key}: {file} has no array for input '{missing[0]}' (it holds: {', '.join(sorted(data)) or 'nothing'})")


def _split(file: Path, arrays: dict, inputs: list, key: str) -> list:
    """Arrays of one file -> model-sized samples (split along the batch axis)."""
    counts = set()
    per_input = {}
    for spec in inputs:
        array = np.asarray(arrays[spec.name])
        dims = spec.shape
        static = all(isinstance(d, int) for d in dims)
        if static and tuple(array.shape) == tuple(dims):
            chunks = [array]
        elif static and dims and tuple(array.shape) == tuple(dims[1:]):
            chunks = [array[None]]
        elif static and dims and array.ndim == len(dims) and tuple(array.shape[1:]) == tuple(dims[1:]) \
                and dims[0] > 0 and array.shape[0] % dims[0] == 0:
            chunks = np.split(array, array.shape[0] // dims[0])
        elif not static and array.ndim == len(dims):
            chunks = [array]
        else:
            raise ConfigError(f"{key}: {file}: input '{spec.name}' expects shape {tuple(dims)}, "
                              f"got an array of shape {tuple(array.shape)}")
        per_input[spec.name] = [np.ascontiguousarray(c.astype(spec.dtype, copy=False)) for c in chunks]
        counts.add(len(chunks))
    if len(counts) != 1:
        raise ConfigError(f"{key}: {file}: its arrays hold different numbers of samples")
    return [{name: per_input[name][i] for name in per_input} for i in range(counts.pop())]
