"""Emulated boards with Python: the board's Debian Python + TVM's aarch64 wheels (runtime only) under qemu-user.

A board root (one per architecture, cached, shared by every board of that architecture)::

    <cache>/boards/aarch64/
        sysroot/     Debian 12 arm64 debs unpacked with ``dpkg -x``: python3.11, libc, libstdc++, ...
        site/        the aarch64 wheels of TVM, tvm-ffi, numpy, ml_dtypes, typing_extensions, unzipped,
                     minus ``libtvm_compiler.so``: a board needs ``libtvm_runtime.so`` only
        stage/       the board-side pieces of tvmedge (``errors.py``, ``runtime/``), refreshed per run
        ready.json   written last: versions, sizes, timings; its presence marks a complete root

and ``qemu-aarch64 -L sysroot python3.11 -m tvmedge.runtime ARTIFACT ...`` runs an artifact exactly as a board
would, minus the timings: emulated timings mean nothing, so every result carries ``"emulated": True``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping, Optional, Sequence

if TYPE_CHECKING:
    import numpy as np

from ...cache import build_once, cache_path, last_json, read_stamp, run_step, tree_size
from ...errors import ArtifactError, ConfigError, ToolchainError, TvmedgeError
from ..board import Board
from .common import GUEST_UNSET, host_environ, json_report

__all__ = ["EmulatedBoard", "board_root", "setup_python_board", "load_python_board", "LAYOUT_VERSION"]

# Bump when the recipe below changes in a way that makes old roots unusable: they are then rebuilt.
LAYOUT_VERSION = 2  # 2: cloudpickle for TVM's RPC server

# TVM on the board must match the compiler that built the artifact (design.md §2: ffi 0.1.15 segfaults).
TVM_VERSION = "0.27.0.post1"
TVM_FFI_VERSION = "0.1.14.post1"
PYTHON_VERSION = "3.11"  # Debian 12's python; the wheels are cp311

Progress = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class _ArchRecipe:
    qemu: str
    debian_arch: str
    pip_platform: str


_RECIPES = {
    "aarch64": _ArchRecipe(qemu="qemu-aarch64", debian_arch="arm64", pip_platform="manylinux_2_28_aarch64"),
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

# The board-side part of tvmedge that a board gets; nothing else of the package is copied.
_STAGE_FILES = ("__init__.py", "errors.py")
_STAGE_PACKAGES = ("runtime",)

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


# --------------------------------------------------------------------------------------------------------------
# paths


def board_root(arch: str) -> Path:
    """The cached root of emulated boards of one architecture: ``<cache>/boards/<arch>/``."""
    return cache_path("boards", arch)


# --------------------------------------------------------------------------------------------------------------
# the emulated board


@dataclass(frozen=True)
class EmulatedBoard:
    """A board root plus the board it stands for. Build one with :func:`setup_board`."""

    board: Board
    root: Path
    arch: str
    # qemu ``-cpu`` model: the board's ``mcpu`` when qemu knows it (so code using features the board lacks
    # fails as on the board), else qemu's default.
    cpu: Optional[str] = None
    info: dict = field(default_factory=dict, compare=False, repr=False)

    loader_kind: ClassVar[str] = "python"  # what runs artifacts on it: python -m tvmedge.runtime

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def stage(self) -> Path:
        return self.root / "stage"

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / f"python{PYTHON_VERSION}"

    @property
    def qemu(self) -> str:
        return _recipe(self.board).qemu

    def python_command(self, args: Sequence[str], env: Optional[Mapping[str, str]] = None) -> list[str]:
        """The command line that runs the board's ``python3.11 ARGS...`` under qemu.

        The guest gets ``PYTHONPATH=<site>:<stage>`` and ``TVM_USE_RUNTIME_LIB=1`` plus ``env``; host variables
        that would confuse it (``LD_LIBRARY_PATH``, ``PYTHONHOME``, ...) are unset. Run it with
        :meth:`host_environ` as the environment (and a neutral working directory: ``python -m`` puts the
        working directory first on ``sys.path``).
        """
        command = [self.qemu, "-L", str(self.sysroot)]
        if self.cpu:
            command += ["-cpu", self.cpu]
        for name in GUEST_UNSET:
            command += ["-U", name]
        guest = {
            "PYTHONPATH": f"{self.site}:{self.stage}",
            "TVM_USE_RUNTIME_LIB": "1",
            "PYTHONNOUSERSITE": "1",
        }
        guest.update(env or {})
        for key, value in guest.items():
            command += ["-E", f"{key}={value}"]
        return command + [str(self.python), *map(str, args)]

    @staticmethod
    def host_environ() -> dict[str, str]:
        return host_environ()

    def refresh_stage(self) -> Path:
        """Copy the board-side pieces of the host's tvmedge into ``<root>/stage/tvmedge`` (only what changed)."""
        import tvmedge

        src = Path(tvmedge.__file__).resolve().parent
        dst = self.stage / "tvmedge"
        wanted: dict[Path, Path] = {}
        for name in _STAGE_FILES:
            wanted[Path(name)] = src / name
        for package in _STAGE_PACKAGES:
            for path in sorted((src / package).rglob("*.py")):
                if "__pycache__" not in path.parts:
                    wanted[path.relative_to(src)] = path
        for rel, source in wanted.items():
            target = dst / rel
            data = source.read_bytes()
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        # drop files the host package no longer has, so the board never runs stale code
        if dst.is_dir():
            for path in dst.rglob("*.py"):
                rel = path.relative_to(dst)
                if rel not in wanted and "__pycache__" not in rel.parts:
                    path.unlink(missing_ok=True)
        return self.stage

    def run_python(self, args: Sequence[str], env: Optional[Mapping[str, str]] = None, *, timeout: float = 600,
                   cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        """Run ``python3.11 ARGS`` on the board (captured text output; no exception on a non-zero exit)."""
        self.refresh_stage()
        command = self.python_command(args, env)
        with contextlib.ExitStack() as stack:
            if cwd is None:
                cwd = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tvmedge-emu-")))
            try:
                return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                                      env=self.host_environ())
            except subprocess.TimeoutExpired as err:
                raise TvmedgeError(f"emulated board {self.board.name}: python {' '.join(map(str, args))[:80]} "
                                   f"timed out after {timeout:g} s") from err
            except OSError as err:
                raise ToolchainError(f"cannot start {self.qemu}: {err.strerror}") from err

    def run_json(self, args: Sequence[str], *, timeout: float = 600, cwd: Optional[Path] = None) -> dict:
        """Run ``python3.11 ARGS`` on the board and return the JSON object of its last JSON output line.

        A board-side ``Error: <message>`` becomes the tvmedge error it names; a crash or a run that printed
        no JSON is an ArtifactError.
        """
        proc = self.run_python(args, timeout=timeout, cwd=cwd)
        return json_report(self.board.name, proc, f"python {' '.join(map(str, args))[:60]}")

    def run_artifact(self, artifact_dir, inputs: Mapping[str, "np.ndarray"], *, repeat: int = 1,
                     timeout: float = 600) -> tuple[dict, dict]:
        """Run an artifact on the emulated board: ``python3.11 -m tvmedge.runtime ARTIFACT --json ...``.

        Returns ``(outputs, stats)``: the outputs by name (arrays) and the latency statistics the board printed
        (the ``"stats"`` of its JSON line: ``first_ms``, ``repeat``, ``median_ms``, ...) with ``"emulated": True``
        — emulated timings mean nothing for the real board.

        Raises
        ------
        ArtifactError
            The artifact directory is missing, or the board-side runtime crashed / printed no result.
        TvmedgeError (or the subclass the board names)
            The board-side runtime reported ``Error: <message>`` (bad artifact, bad inputs, ...).
        """
        import numpy as np

        artifact = Path(artifact_dir).resolve()
        if not artifact.is_dir():
            raise ArtifactError(f"artifact directory {artifact_dir} does not exist")
        with tempfile.TemporaryDirectory(prefix="tvmedge-emu-") as tmp:
            tmp_path = Path(tmp)
            in_path, out_path = tmp_path / "inputs.npz", tmp_path / "outputs.npz"
            np.savez(in_path, **{name: np.asarray(value) for name, value in inputs.items()})
            args = ["-P", "-m", "tvmedge.runtime", str(artifact), "--inputs", str(in_path), "--output",
                    str(out_path), "--repeat", str(int(repeat)), "--json"]
            report = self.run_json(args, timeout=timeout, cwd=tmp_path)
            if not out_path.is_file():
                raise ArtifactError(f"emulated board {self.board.name}: the runtime wrote no outputs file")
            with np.load(out_path, allow_pickle=False) as data:
                outputs = {name: data[name] for name in data.files}
        # The runtime prints {"stats": {latency...}, "outputs": {name: shape/dtype}}: the outputs are returned
        # as arrays, the latency statistics as the stats (as a run on the host returns them).
        if isinstance(report.get("stats"), dict):
            stats = dict(report["stats"])
        else:
            stats = report
        stats["emulated"] = True
        return outputs, stats

    def measure(self, artifact, duration: float) -> dict:
        """Certification measurements on the board (``python -m tvmedge.runtime.certify``; no temperatures:
        an emulated board's sensors would be the host's)."""
        return self.run_json(["-P", "-m", "tvmedge.runtime.certify", str(artifact), "--duration", str(duration),
                              "--no-thermal"], timeout=duration + 300)

    def serve_rpc(self, *, host: str = "127.0.0.1", port: int = 9090, tracker: Optional[str] = None,
                  key: str = "", stdout=None) -> subprocess.Popen:
        """Start TVM's RPC server on the emulated board (``python -m tvmedge.runtime.rpc_server``); returns the process.

        Point ``host`` at loopback: the server executes whatever modules its clients upload.
        """
        self.refresh_stage()
        args = ["-P", "-m", "tvmedge.runtime.rpc_server", "--host", host, "--port", str(port), "--key", key]
        if tracker:
            args += ["--tracker", tracker]
        try:
            return subprocess.Popen(self.python_command(args), env=self.host_environ(), cwd=tempfile.gettempdir(),
                                    stdout=stdout, stderr=subprocess.STDOUT, text=True)
        except OSError as err:
            raise ToolchainError(f"cannot start {self.qemu}: {err.strerror}") from err


# --------------------------------------------------------------------------------------------------------------
# set-up


def _recipe(board: Board) -> _ArchRecipe:
    if board.arch not in _RECIPES:
        raise ConfigError(f"board {board.name}: no Python emulation recipe for arch {board.arch}")
    return _RECIPES[board.arch]


def load_python_board(board: Board) -> Optional[EmulatedBoard]:
    """The board's emulated board if its root is set up and valid, else None (never builds anything)."""
    _recipe(board)
    root = board_root(board.arch)
    info = read_stamp(root, _valid(root, board.arch))
    return None if info is None else _emulated(board, root, info)


def setup_python_board(board: Board, *, progress: Progress = None, force: bool = False) -> EmulatedBoard:
    """Build (once per machine and architecture) and return the emulated board for ``board``.

    Idempotent: when ``<root>/ready.json`` is present and valid the root is returned at once. Otherwise the
    root is built in a temporary folder next to the final one and renamed into place at the end, so an
    interrupted set-up never leaves a half root. Needs ``qemu-user`` and, the first time, network access to
    the Debian and PyPI registries (and root for ``dpkg --add-architecture`` if arm64 is not configured).

    Raises
    ------
    ToolchainError
        qemu is missing, or a set-up step failed (the message names the step and ends with its error).
    """
    recipe = _recipe(board)
    if shutil.which(recipe.qemu) is None:
        raise ToolchainError(f"{recipe.qemu} not found; install the Debian package qemu-user")
    root = board_root(board.arch)
    say = progress or (lambda message: None)
    built = []

    def build(tmp: Path) -> dict:
        built.append(True)
        return _build_root(tmp, board, recipe, say)

    info = build_once(root, _valid(root, board.arch), build, force=force)
    if built:
        say(f"board root ready: {root} ({info['size_mb']} MB, {info['setup_s']} s)")
    return _emulated(board, root, info)


def _emulated(board: Board, root: Path, info: dict) -> EmulatedBoard:
    mcpu = str(board.target.get("mcpu") or "")
    cpu = mcpu if mcpu in info.get("qemu_cpus", ()) else None
    return EmulatedBoard(board=board, root=root, arch=board.arch, cpu=cpu, info=info)


def _valid(root: Path, arch: str):
    """Does a ``ready.json`` describe a complete root of the current layout?"""
    def check(info: dict) -> bool:
        wheels = info.get("wheels") or {}
        return (info.get("layout") == LAYOUT_VERSION and info.get("arch") == arch
                and wheels.get("apache-tvm") == TVM_VERSION and wheels.get("apache-tvm-ffi") == TVM_FFI_VERSION
                and all((root / rel).exists() for rel in
                        (f"sysroot/usr/bin/python{PYTHON_VERSION}", "site/tvm/lib/libtvm_runtime.so", "site/numpy")))
    return check


def _run(step: str, command: Sequence, **kwargs) -> subprocess.CompletedProcess:
    return run_step("emulated board set-up", step, command, **kwargs)


def _build_root(tmp: Path, board: Board, recipe: _ArchRecipe, say: Callable[[str], None]) -> dict:
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
    probe = EmulatedBoard(board=board, root=tmp, arch=board.arch)
    command = probe.python_command(["-c", _VERIFY_SCRIPT])
    proc = _run("verify import tvm (runtime only) in the emulator", command, timeout=600, cwd=tmp,
                env=EmulatedBoard.host_environ())
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


def _download_debs(dest: Path, recipe: _ArchRecipe, say: Callable[[str], None]) -> dict:
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


def _download_wheels(dest: Path, recipe: _ArchRecipe, say: Callable[[str], None]) -> dict:
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
