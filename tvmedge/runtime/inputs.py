"""Reading model inputs from ``.npy`` / ``.npz`` files and making random ones. Stdlib + numpy only."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError

__all__ = ["read_inputs", "random_inputs", "write_outputs"]


def read_inputs(items: Iterable[str], specs) -> dict:
    """Inputs from ``NAME=file.npy`` items, a bare ``file.npy`` (single-input model) or one ``file.npz``."""
    inputs = {}
    for item in items:
        name, sep, filename = item.partition("=")
        if not sep:
            name, filename = "", item
        path = Path(filename)
        if not path.is_file():
            raise InputError(f"input file {filename} does not exist")
        if path.suffix == ".npz":
            if name:
                raise InputError(f"{filename}: an .npz holds all inputs by name; pass it without NAME=")
            inputs.update(_load_npz(path))
            continue
        if not name:
            if len(specs) != 1:
                raise InputError(
                    f"model has {len(specs)} inputs; pass NAME=file.npy for each or one .npz "
                    f"(names: {', '.join(s.name for s in specs)})"
                )
            name = specs[0].name
        inputs[name] = _load_npy(path)
    return inputs


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{path} is not a readable .npy file: {err}") from err


def _load_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"{path} is not a readable .npz file: {err}") from err


def random_inputs(specs, seed: int = 0) -> dict:
    """Deterministic random inputs matching the specs (floats in [0, 1), small non-negative integers)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            inputs[spec.name] = rng.random(spec.shape, dtype=np.float64).astype(dtype)
        elif dtype.kind == "b":
            inputs[spec.name] = rng.integers(0, 2, spec.shape).astype(dtype)
        else:
            inputs[spec.name] = rng.integers(0, 10, spec.shape).astype(dtype)
    return inputs


def write_outputs(path, outputs: dict) -> Path:
    """Save outputs: one array to ``.npy`` or all of them by name to ``.npz`` (chosen by suffix)."""
    path = Path(path)
    if path.suffix == ".npy":
        if len(outputs) != 1:
            raise InputError(f"model has {len(outputs)} outputs; write them to an .npz file instead of {path}")
        np.save(path, next(iter(outputs.values())))
    else:
        np.savez(path, **outputs)
    return path
