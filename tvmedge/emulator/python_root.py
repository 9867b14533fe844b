"""Building the aarch64 board root of :mod:`.python_board`: Debian's arm64 Python userland (``apt-get download`` +
``dpkg -x``) and the aarch64 wheels of TVM and its runtime dependencies (``pip download``), minus TVM's
compiler library; then a check that ``import tvm`` works in the emulator without it.

:func:`build_root` fills an empty folder and returns what ``ready.json`` records; caching, locking and the
atomic rename are :func:`tvmedge.cache.build_once`'s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..cache import last_json, run_step, tree_size
from ..devices.board import Board
from ..errors import ConfigError, ToolchainError
from ..versions import TVM_FFI_VERSION, TVM_VERSION
from .common import host_environ
from .python_board import LAYOUT_VERSION, PYTHON_VERSION, PythonEmulatedBoard

__all__ = ["build_root", "recipe_for", "ArchRecipe"]


@dataclass(frozen=True)
class ArchRecipe:
    qemu: str
    debian_arch: str
    pip_platform: str


_RECIPES = {
    "aarch64": ArchRecipe(qemu="qemu-aarch64", debian_arch="arm64", pip_platform="manylinux_2_28_aarch64"),
}

# Debian 12 packages of the board's userland. The first nine are what python3.11 + ctypes + numpy need to
# start; the last four are small and make the stdlib complete where an artifact's tools may reach
# (hashlib's OpenSSL backend and ssl, bz2/lzma in zipfile/tarfile, uuid) — as on a real board.
_DEBS = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libssl3",
    "libbz2-1.0",
    "liblzma5",
    "libuuid1",
)

# (distribution, pinned version or None = the host's version if it has one, else the newest for cp311).
_WHEELS = (
    ("apache-tvm", TVM_VERSION),
    ("apache-tvm-ffi", TVM_FFI_VERSION),
    ("numpy", None),
    ("ml_dtypes", None),
    ("typing_extensions", None),
    ("cloudpickle", None),  # TVM's RPC server (tvm.exec.rpc_server) forks its workers through it
)

# Compile-time-only parts of the TVM wheel: a board never needs them (this is what proves the runtime route
# has no compiler in it). libtvm_compiler.so alone is ~230 MB of the ~235 MB wheel payload.
_COMPILER_ONLY = (
    "tvm/lib/libtvm_compiler.so",
    "tvm/3rdparty",  # CUTLASS headers for CUDA codegen
)

# Parts of the Debian packages Python never uses: iconv modules (~20 MB; Python has its own codecs) and docs.
_SYSROOT_PRUNE = ("usr/lib/*-linux-gnu/gconv", "usr/share/doc", "usr/share/man", "usr/share/lintian")


_VERIFY_SCRIPT = r"""
import json, platform, sys, time
t0 = time.perf_counter()
import ctypes, hashlib, zipfile
import numpy, tvm, tvm.runtime.vm
import tvm.base
elapsed = time.perf_counter() - t0
assert "tvm_compiler" not in tvm.base._LOADED_LIBS, "the compiler library was loaded"
print(json.dumps({"python": platform.python_version(), "machine": platform.machine(), "numpy": numpy.__version__,
                  "tvm": tvm.__version__, "import_s": round(elapsed, 3)}))
"""


def recipe_for(board: Board) -> ArchRecipe:
    if board.arch not in _RECIPES:
        raise ConfigError(f"board {board.name}: no Python emulation recipe for arch {board.arch}")
    return _RECIPES[board.arch]


def _run(step: str, command: Sequence, **kwargs) -> subprocess.CompletedProcess:
    return run_step("emulated board set-up", step, command, **kwargs)


def build_root(tmp: Path, board: Board, recipe: ArchRecipe, say: Callable[[str], None]) -> dict:
    started = time.perf_counter()
    sysroot, site, debs_dir, wheels_dir = tmp / "sysroot", tmp / "site", tmp / "debs", tmp / "wheels"
    for path in (sysroot, site, debs_dir, wheels_dir, tmp / "stage"):
        path.mkdir()

    # 1. Debian userland of the board
    debs = _download_debs(debs_dir, recipe, say)
    say(f"unpacking {len(debs)} {recipe.debian_arch} packages into the sysroot")
    for deb in sorted(debs_dir.glob("*.deb")):
        _run(f"dpkg -x {deb.name}", ["dpkg", "-x", deb, sysroot], timeout=300)
    _relativize_symlinks(sysroot)
    for pattern in _SYSROOT_PRUNE:
        for path in sysroot.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    # 2. Python packages of the board
    wheels = _download_wheels(wheels_dir, recipe, say)
    say(f"unpacking {len(wheels)} wheels into the site folder")
    for wheel in sorted(wheels_dir.glob("*.whl")):
        _unpack_wheel(wheel, site)

    # 3. Drop the compiler: the board runs on libtvm_runtime.so alone.
    removed = {}
    for rel in _COMPILER_ONLY:
        path = site / rel
        if path.exists():
            removed[rel] = tree_size(path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    mb = sum(removed.values()) / 1e6
    say(f"removed the compiler-only parts of the TVM wheel ({mb:.0f} MB): {', '.join(removed) or 'none found'}")
    # The downloads are not part of the board: keep the root small (their names and versions go to ready.json).
    shutil.rmtree(debs_dir)
    shutil.rmtree(wheels_dir)

    # 4. Verify: python + numpy + tvm's runtime import in the emulator, without the compiler. This first run
    # also writes the bytecode of what it imports, which makes later imports ~2x faster.
    say("checking python, numpy and tvm's runtime in the emulator")
    cpus = _qemu_cpus(recipe.qemu)
    probe = PythonEmulatedBoard(board=board, root=tmp, arch=board.arch)
    command = probe.python_command(["-c", _VERIFY_SCRIPT])
    proc = _run("verify import tvm (runtime only) in the emulator", command, timeout=600, cwd=tmp,
                env=host_environ())
    verify = last_json(proc.stdout) or {}
    if verify.get("tvm") != TVM_VERSION:
        raise ToolchainError(f"emulated board set-up failed at step 'verify': tvm {verify.get('tvm')} in the "
                             f"emulator, expected {TVM_VERSION}")
    qemu_version = (_run("qemu --version", [recipe.qemu, "--version"], timeout=60).stdout.splitlines() or [""])[0]

    info = {
        "layout": LAYOUT_VERSION,
        "arch": board.arch,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "setup_s": round(time.perf_counter() - started, 1),
        "size_mb": round(tree_size(tmp) / 1e6, 1),
        "python": verify.get("python"),
        "import_s_emulated": verify.get("import_s"),
        "qemu": qemu_version,
        "qemu_cpus": cpus,
        "debs": debs,
        "wheels": wheels,
        "removed_compiler_only": sorted(removed),
    }
    return info


def _download_debs(dest: Path, recipe: ArchRecipe, say: Callable[[str], None]) -> dict:
    """``apt-get download`` the board's debs into ``dest``; {package: version}."""
    names = [f"{name}:{recipe.debian_arch}" for name in _DEBS]
    check = subprocess.run(["apt-get", "download", "--print-uris", *names], capture_output=True, text=True,
                           cwd=dest) if shutil.which("apt-get") else None
    if check is None:
        raise ToolchainError("emulated board set-up failed at step 'apt-get download': apt-get not found "
                             "(a Debian/Ubuntu host is needed)")
    if check.returncode != 0:
        foreign = _run("dpkg --print-foreign-architectures", ["dpkg", "--print-foreign-architectures"]).stdout.split()
        if os.geteuid() != 0:
            fix = ("" if recipe.debian_arch in foreign else f"dpkg --add-architecture {recipe.debian_arch} && ")
            raise ToolchainError(f"{recipe.debian_arch} packages are not available to apt; as root run: "
                                 f"{fix}apt-get update")
        if recipe.debian_arch not in foreign:
            say(f"adding the {recipe.debian_arch} architecture to dpkg")
            _run(f"dpkg --add-architecture {recipe.debian_arch}", ["dpkg", "--add-architecture", recipe.debian_arch])
        say("apt-get update (to see the arm64 package lists)")
        _run("apt-get update", ["apt-get", "update"], timeout=900)
    say(f"downloading {len(names)} Debian {recipe.debian_arch} packages")
    _run("apt-get download", ["apt-get", "download", *names], cwd=dest)
    versions = {}
    for deb in dest.glob("*.deb"):
        package, version, _ = deb.name.split("_", 2)
        versions[package] = version.replace("%3a", ":")
    missing = sorted(set(_DEBS) - set(versions))
    if missing:
        raise ToolchainError(f"emulated board set-up failed at step 'apt-get download': missing {', '.join(missing)}")
    return dict(sorted(versions.items()))


def _host_version(dist: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _download_wheels(dest: Path, recipe: ArchRecipe, say: Callable[[str], None]) -> dict:
    """``pip download`` the board's wheels (one by one, so a pin can fall back); {distribution: version}."""
    base = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--platform", recipe.pip_platform, "--python-version", PYTHON_VERSION,
            "--implementation", "cp", "-d", str(dest)]
    for dist, pin in _WHEELS:
        host = pin or _host_version(dist)
        wanted = f"{dist}=={host}" if host else dist
        say(f"downloading the {recipe.pip_platform} wheel of {wanted}")
        try:
            _run(f"pip download {wanted}", base + [wanted], timeout=1800)
        except ToolchainError:
            if pin or not host:
                raise
            say(f"{wanted} has no {recipe.pip_platform} wheel; taking the newest {dist} for cp311")
            _run(f"pip download {dist}", base + [dist], timeout=1800)
    versions = {}
    for wheel in dest.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        versions[name.replace("_", "-").lower()] = version
    for dist, _ in _WHEELS:
        if dist.replace("_", "-").lower() not in versions:
            raise ToolchainError(f"emulated board set-up failed at step 'pip download': no wheel of {dist} in {dest}")
    return dict(sorted(versions.items()))


def _unpack_wheel(wheel: Path, site: Path) -> None:
    """Unzip a wheel into the site folder (``*.data/{purelib,platlib}`` too; scripts and headers are skipped)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    except (zipfile.BadZipFile, OSError) as err:
        raise ToolchainError(f"emulated board set-up failed at step 'unzip {wheel.name}': {err}") from err
    for data in site.glob("*.data"):
        for kind in ("purelib", "platlib"):
            if (data / kind).is_dir():
                shutil.copytree(data / kind, site, dirs_exist_ok=True)
        shutil.rmtree(data)


def _relativize_symlinks(sysroot: Path) -> None:
    """Make absolute symlinks in the sysroot point inside it (e.g. sitecustomize.py -> /etc/python3.11/...),
    so the guest never reads the host's files through them."""
    for dirpath, dirnames, filenames in os.walk(sysroot):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                target = os.readlink(path)
                if target.startswith("/"):
                    inside = sysroot / target.lstrip("/")
                    path.unlink()
                    path.symlink_to(os.path.relpath(inside, path.parent))


def _qemu_cpus(qemu: str) -> list[str]:
    try:
        proc = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = proc.stdout.splitlines()[1:]  # "Available CPUs:" first
    return sorted({line.split()[0] for line in lines if line.strip()})
