"""Resident memory of this process, and handing freed memory back to the OS. Stdlib only."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional

__all__ = ["rss_bytes", "release_memory"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> Optional[int]:
    """Current resident set size in bytes (Linux ``/proc/self/statm``), or None where it is not readable."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def release_memory() -> None:
    """Ask glibc to return free heap pages to the OS (``malloc_trim``), so RSS shows what was freed.

    Without it, memory freed by an unloaded model stays in glibc's arenas and RSS does not move. No
    ``gc.collect()``: a model holds no reference cycles, so it is freed when its last reference goes, and a full
    collection would hold the GIL for tens of milliseconds, stalling every request on the other models.
    On musl or without glibc this does nothing.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)  # ctypes releases the GIL for the call
