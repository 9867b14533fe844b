"""``tvmedge bundle``: everything a board needs to run artifacts, in one archive, without TVM's compiler.

Two kinds, chosen by the board (or ``loader=``):

* **python** (boards with a TVM wheel for their arch: aarch64, x86_64): the board's own ``python3`` runs
  ``python -m tvmedge.runtime`` — the loader the host uses — from the bundle's ``site/``: TVM's Python package
  minus the compiler-only parts, ``libtvm_runtime.so``, tvm-ffi, numpy (with its OpenBLAS), ml_dtypes, and
  cloudpickle (for TVM's RPC server). Nothing is pip-installed on the board.
* **cpp** (any board; the only kind for riscv64): ``bin/tvmedge-run`` (the C++ loader),
  ``bin/tvmedge-rpc-server`` (TVM's RPC server) and the two runtime libraries; the board needs only libc and
  libstdc++.

Layout of the archive (one top folder, so unpacking never litters the current directory)::

    tvmedge-runtime-<board>/
        run.sh          runs an artifact: ./run.sh ARTIFACT [--inputs NAME=x.npy ...] [--json]
        BUNDLE.json     board, arch, kind, versions, sizes
        SHA256SUMS      every other file (sha256sum -c SHA256SUMS checks the bundle on the board)
        site/ ...       (python)     bin/tvmedge-run, lib/*.so  (cpp)
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..devices.board import Board
from ..errors import ConfigError, ToolchainError
from ..runtime.manifest import sha256_file
from ..versions import TVM_FFI_VERSION, TVM_VERSION
from ..native.builder import host_site, native_runtime

__all__ = ["Bundle", "BundleContents", "bundle_contents", "bundle_top", "build_bundle", "bundle_kind", "BUNDLE_JSON", "SUMS", "sha256_sums", "KINDS"]

BUNDLE_JSON = "BUNDLE.json"
SUMS = "SHA256SUMS"
KINDS = ("python", "cpp")
_PYTHON_ARCHS = ("aarch64", "x86_64")  # arches with a TVM wheel (and so a Python route)

# What of the board's site folder a runtime needs. TVM's Python package is pruned by subpackage: with
# TVM_USE_RUNTIME_LIB=1, `import tvm` + loading and running an artifact + TVM's RPC server import only
# backend, contrib, driver, exec, ir, rpc, runtime, script, support, sym, target, te and tirx (traced on the
# emulated rk3588); relax, s_tir, topi, web and the C++ sources/headers are compiler-side.
_SITE_PACKAGES = ("tvm", "tvm_ffi", "numpy", "numpy.libs", "ml_dtypes", "cloudpickle", "typing_extensions.py")
_SITE_EXCLUDE = (
    "*/__pycache__", "*/__pycache__/*", "*.pyi", "*.pyx", "*.pxi", "*.pxd", "*/py.typed",
    "tvm/lib/libtvm_compiler.so", "tvm/lib/libtvm_runtime_cuda.so",
    "tvm/relax", "tvm/s_tir", "tvm/topi", "tvm/web", "tvm/src", "tvm/include", "tvm/3rdparty", "tvm/cmake",
    "tvm/testing", "tvm/licenses", "tvm/lib64",
    "tvm_ffi/3rdparty", "tvm_ffi/include", "tvm_ffi/src", "tvm_ffi/cython", "tvm_ffi/stub", "tvm_ffi/share",
    "tvm_ffi/CMakeLists.txt",  # (lib/libtvm_ffi_testing.so stays: tvm_ffi.core links against it)
    "numpy/*/tests", "numpy/tests", "numpy/f2py", "numpy/_core/include", "numpy/_core/lib", "numpy/_pyinstaller",
    "numpy/typing", "numpy/doc",
)
# dist-info folders ship too (small): importlib.metadata lookups then work on the board as on the host.
_DIST_INFO = ("apache_tvm-*.dist-info", "apache_tvm_ffi-*.dist-info", "numpy-*.dist-info", "ml_dtypes-*.dist-info",
              "cloudpickle-*.dist-info", "typing_extensions-*.dist-info")

_RUN_PYTHON = """#!/bin/sh
# Run a tvmedge artifact with this bundle and the board's python3 (nothing pip-installed):
#   ./run.sh ARTIFACT [--inputs NAME=x.npy ...] [--output out.npz] [--repeat N] [--json]
# PYTHON overrides the interpreter (e.g. PYTHON=python{major}.{minor}).
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${{PYTHON:-python3}}
# the wheels in site/ are CPython {major}.{minor} builds: another interpreter would fail deep inside an import
if ! $PY -c 'import sys; sys.exit(sys.version_info[:2] != ({major}, {minor}))' 2>/dev/null; then
  echo "Error: this bundle holds CPython {major}.{minor} wheels, '$PY' is not Python {major}.{minor}: set PYTHON=python{major}.{minor} or use the C++ bundle (tvmedge bundle --loader cpp)" >&2
  exit 1
fi
PYTHONPATH="$HERE/site" TVM_USE_RUNTIME_LIB=1 PYTHONNOUSERSITE=1 exec $PY -m tvmedge.runtime "$@"
"""

_RUN_CPP = """#!/bin/sh
# Run a tvmedge artifact with this bundle's C++ loader (needs only libc and libstdc++):
#   ./run.sh ARTIFACT [--inputs NAME=x.npy ...] [--output-dir DIR] [--repeat N] [--json]
HERE=$(cd "$(dirname "$0")" && pwd)
exec "$HERE/bin/tvmedge-run" "$@"
"""

Progress = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class Bundle:
    """A written bundle archive and what is in it."""

    path: Path
    info: dict

    @property
    def top(self) -> str:
        return self.info["top"]


def bundle_kind(board: Board, loader: Optional[str] = None) -> str:
    """``python`` where a TVM wheel exists for the board's arch, else ``cpp``; ``loader`` forces one."""
    if loader is not None:
        if loader not in KINDS:
            raise ConfigError(f"unknown loader '{loader}'; choose one of: {', '.join(KINDS)}")
        if loader == "python" and board.arch not in _PYTHON_ARCHS:
            raise ConfigError(f"board {board.name} is {board.arch}: there is no {board.arch} TVM wheel, so no Python "
                              f"runtime bundle; use --loader cpp")
        return loader
    return "python" if board.arch in _PYTHON_ARCHS else "cpp"


@dataclass(frozen=True)
class BundleContents:
    """What a bundle holds, before it is written anywhere: files by their path inside the bundle's top folder
    (``files``: copied from these sources; ``generated``: run.sh, BUNDLE.json, SHA256SUMS) and their sha256s."""

    top: str
    files: dict
    generated: dict
    sums: dict  # every file but SHA256SUMS itself (which lists these)
    info: dict

    def all_sums(self) -> dict:
        """The sha256 of every file in the bundle, SHA256SUMS included."""
        return dict(self.sums, **{SUMS: _sha256(self.generated[SUMS])})

    def write_to(self, folder: Path) -> Path:
        """Lay the bundle out unpacked in ``folder/<top>/`` (what unpacking the archive gives); returns it."""
        root = Path(folder) / self.top
        for rel, source in self.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / rel)
        for rel, data in self.generated.items():
            (root / rel).write_bytes(data)
            (root / rel).chmod(_mode(rel))
        return root


def bundle_top(board: Board) -> str:
    """The bundle's one top folder (unpacking never litters the current directory)."""
    return f"tvmedge-runtime-{board.name}"


def bundle_contents(board: Board, *, loader: Optional[str] = None, progress: Progress = None) -> BundleContents:
    """Collect the runtime bundle for ``board`` (see :func:`build_bundle` for the errors)."""
    kind = bundle_kind(board, loader)
    say = progress or (lambda message: None)
    top = bundle_top(board)
    files: dict[str, Path] = {}  # path inside the bundle -> source
    python = None
    if kind == "python":
        site = _python_site(board, say)
        for rel, source in _site_files(site):
            files[f"site/{rel}"] = source
        for rel, source in _tvmedge_runtime_files():
            files[f"site/{rel}"] = source
        python = _site_python(site)
        script = _RUN_PYTHON.format(major=python[0], minor=python[1])
    else:
        runtime = native_runtime(board.arch, progress=say, wheel_site=lambda: _python_site(board, say))
        files["bin/tvmedge-run"] = runtime.loader
        files["bin/tvmedge-rpc-server"] = runtime.rpc_server
        for library in ("libtvm_runtime.so", "libtvm_ffi.so"):
            files[f"lib/{library}"] = runtime.lib_dir / library
        script = _RUN_CPP
    generated = {"run.sh": script.encode()}
    sums = {rel: sha256_file(source) for rel, source in files.items()}
    sums.update({rel: _sha256(data) for rel, data in generated.items()})
    uncompressed = sum(source.stat().st_size for source in files.values()) + sum(map(len, generated.values()))
    info = {
        "format": "tvmedge-runtime-bundle",
        "format_version": 1,
        "top": top,
        "board": board.name,
        "arch": board.arch,
        "kind": kind,
        "python": f"{python[0]}.{python[1]}" if kind == "python" else None,
        "tvm": TVM_VERSION,
        "tvm_ffi": TVM_FFI_VERSION,
        "files": len(sums),
        "uncompressed_bytes": uncompressed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": f"{top}/run.sh ARTIFACT --json",
    }
    generated[BUNDLE_JSON] = (json.dumps(info, indent=2) + "\n").encode()
    sums[BUNDLE_JSON] = _sha256(generated[BUNDLE_JSON])
    generated[SUMS] = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items())).encode()
    return BundleContents(top, files, generated, sums, info)


def build_bundle(board: Board, out, *, loader: Optional[str] = None, progress: Progress = None) -> Bundle:
    """Write the runtime bundle for ``board`` to ``out`` (``.tar.gz``/``.tgz`` or ``.tar.xz``).

    Raises
    ------
    ConfigError
        Unknown loader kind, a Python bundle for an arch without TVM wheels, or an unsupported file suffix.
    ToolchainError
        The board's runtime pieces could not be built (emulated board root, cross compiler, ...).
    """
    out = Path(out)
    mode = _tar_mode(out)
    say = progress or (lambda message: None)
    contents = bundle_contents(board, loader=loader, progress=say)
    info, top = contents.info, contents.top
    say(f"writing {out} ({info['kind']} bundle, {info['files']} files, {info['uncompressed_bytes'] / 1e6:.1f} MB "
        "before compression)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=False) as handle:
        tmp = Path(handle.name)
    try:
        with tarfile.open(tmp, mode) as archive:
            for rel in sorted(contents.files):
                archive.add(str(contents.files[rel]), arcname=f"{top}/{rel}", recursive=False, filter=_normalize)
            for rel, data in sorted(contents.generated.items()):
                entry = tarfile.TarInfo(f"{top}/{rel}")
                entry.size, entry.mode, entry.mtime = len(data), _mode(rel), 0
                archive.addfile(entry, io.BytesIO(data))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return Bundle(out, dict(info, compressed_bytes=out.stat().st_size, path=str(out)))


def sha256_sums(text: str) -> dict[str, str]:
    """Parse ``SHA256SUMS`` text (``<hex>  <path>`` lines) into {path: hex}."""
    sums = {}
    for line in text.splitlines():
        digest, sep, rel = line.partition("  ")
        if sep and len(digest) == 64:
            sums[rel] = digest
    return sums


# --------------------------------------------------------------------------------------------------------------


def _tar_mode(out: Path) -> str:
    name = out.name
    if name.endswith((".tar.gz", ".tgz")):
        return "w:gz"
    if name.endswith(".tar.xz"):
        return "w:xz"
    raise ConfigError(f"bundle file {out} must end in .tar.gz, .tgz or .tar.xz")


def _python_site(board: Board, say) -> Path:
    """The site folder holding the board arch's TVM wheels minus the compiler."""
    if board.arch == "x86_64":
        return host_site()  # the host's installed wheels are x86_64's
    from ..emulator import setup_board

    return setup_board(board, progress=say).site  # an aarch64 (Python) board: bundle_kind allows no other


def _site_python(site: Path) -> tuple:
    """(major, minor) of the CPython the site's compiled wheels are for (from tvm_ffi's extension module)."""
    import re

    for path in (site / "tvm_ffi").glob("core.cpython-*"):
        match = re.match(r"core\.cpython-(\d)(\d+)-", path.name)
        if match:
            return int(match.group(1)), int(match.group(2))
    raise ToolchainError(f"{site / 'tvm_ffi'} has no compiled core module: cannot tell which Python it is for")


def _excluded(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, pattern) or rel.startswith(pattern + "/") for pattern in _SITE_EXCLUDE)


def _site_files(site: Path) -> Iterable[tuple[str, Path]]:
    names = list(_SITE_PACKAGES)
    for pattern in _DIST_INFO:
        names += sorted(p.name for p in site.glob(pattern))
    for name in names:
        top = site / name
        if not top.exists():
            if name in ("tvm", "tvm_ffi", "numpy"):
                raise ToolchainError(f"{site} has no {name}: the board's site folder is incomplete")
            continue
        if top.is_file():
            yield name, top
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = os.path.relpath(dirpath, site)
            dirnames[:] = sorted(d for d in dirnames if not _excluded(f"{rel_dir}/{d}"))
            for filename in sorted(filenames):
                rel = f"{rel_dir}/{filename}"
                if not _excluded(rel):
                    yield rel, Path(dirpath) / filename


def _tvmedge_runtime_files() -> Iterable[tuple[str, Path]]:
    """The board-side part of tvmedge: ``tvmedge/__init__.py``, ``errors.py`` and ``runtime/*.py``."""
    import tvmedge

    package = Path(tvmedge.__file__).resolve().parent
    for name in ("__init__.py", "errors.py"):
        yield f"tvmedge/{name}", package / name
    for path in sorted((package / "runtime").rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield f"tvmedge/{path.relative_to(package)}", path


def _normalize(entry: tarfile.TarInfo) -> tarfile.TarInfo:
    """Reproducible entries: no owner names or times from this machine."""
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    entry.mtime = 0
    return entry


def _mode(rel: str) -> int:
    """File mode of a generated file: the scripts are executable."""
    return 0o755 if rel.endswith(".sh") else 0o644


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
