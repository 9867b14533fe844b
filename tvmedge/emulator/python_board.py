"""Emulated boards with Python: the board's Debian Python + TVM's aarch64 wheels (runtime only) under qemu-user.

A board root (one per architecture, cached, shared by every board of that architecture)::

    <cache>/boards/aarch64/
        sysroot/     Debian 12 arm64 debs unpacked with ``dpkg -x``: python3.11, libc, libstdc++, ...
        site/        the aarch64 wheels of TVM, tvm-ffi, numpy, ml_dtypes, typing_extensions, unzipped,
                     minus ``libtvm_compiler.so``: a board needs ``libtvm_runtime.so`` only
        stage/       the board-side pieces of tvmedge (``errors.py``, ``runtime/``), refreshed per run
        ready.json   written last: versions, sizes, timings; its presence marks a complete root

and ``qemu-aarch64 -L sysroot python3.11 -m tvmedge.runtime ARTIFACT ...`` runs an artifact exactly as a board
would, minus the timings: emulated timings mean nothing, and a run on it is marked emulated.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping, Optional, Sequence

if TYPE_CHECKING:
    import numpy as np

from ..cache import build_once, cache_path, read_stamp
from ..devices.board import Board
from ..errors import ArtifactError, ToolchainError, TvmedgeError
from ..runtime.loader import LatencyStats
from ..versions import TVM_FFI_VERSION, TVM_VERSION
from .common import host_environ, json_report, qemu_prefix

__all__ = ["PythonEmulatedBoard", "board_root", "setup_python_board", "load_python_board", "LAYOUT_VERSION"]

# Bump when the recipe below changes in a way that makes old roots unusable: they are then rebuilt.
LAYOUT_VERSION = 2  # 2: cloudpickle for TVM's RPC server

PYTHON_VERSION = "3.11"  # Debian 12's python; the wheels are cp311

Progress = Optional[Callable[[str], None]]


# The board-side part of tvmedge that a board gets; nothing else of the package is copied.
_STAGE_FILES = ("__init__.py", "errors.py")
_STAGE_PACKAGES = ("runtime",)



# --------------------------------------------------------------------------------------------------------------
# paths


def board_root(arch: str) -> Path:
    """The cached root of emulated boards of one architecture: ``<cache>/boards/<arch>/``."""
    return cache_path("boards", arch)


# --------------------------------------------------------------------------------------------------------------
# the emulated board


@dataclass(frozen=True)
class PythonEmulatedBoard:
    """An emulated board that runs artifacts with the board's own Python (``python -m tvmedge.runtime`` under qemu):
    a board root plus the board it stands for. Build one with :func:`setup_board`."""

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
        return f"qemu-{self.arch}"

    def qemu_prefix(self) -> list[str]:
        """``qemu-<arch> -L <sysroot> [-cpu CPU] -U ...``: what runs any of the board's programs."""
        return qemu_prefix(self.qemu, self.sysroot, self.cpu)

    def python_command(self, args: Sequence[str], env: Optional[Mapping[str, str]] = None) -> list[str]:
        """The command line that runs the board's ``python3.11 ARGS...`` under qemu.

        The guest gets ``PYTHONPATH=<site>:<stage>`` and ``TVM_USE_RUNTIME_LIB=1`` plus ``env``; host variables
        that would confuse it (``LD_LIBRARY_PATH``, ``PYTHONHOME``, ...) are unset. Run it with
        :func:`.common.host_environ` as the environment (and a neutral working directory: ``python -m`` puts the
        working directory first on ``sys.path``).
        """
        command = self.qemu_prefix()
        guest = {
            "PYTHONPATH": f"{self.site}:{self.stage}",
            "TVM_USE_RUNTIME_LIB": "1",
            "PYTHONNOUSERSITE": "1",
        }
        guest.update(env or {})
        for key, value in guest.items():
            command += ["-E", f"{key}={value}"]
        return command + [str(self.python), *map(str, args)]

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
                                      env=host_environ())
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
                     timeout: float = 600, threads: Optional[int] = None,
                     cores: Optional[str] = None) -> tuple[dict, LatencyStats]:
        """Run an artifact on the emulated board: ``python3.11 -m tvmedge.runtime ARTIFACT --json ...``.

        Returns ``(outputs, stats)``: the outputs by name (arrays) and the latency statistics the board printed
        (the ``"stats"`` of its JSON line) as :class:`~tvmedge.runtime.loader.LatencyStats` — emulated timings,
        which mean nothing for the real board.

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
            args += (["--threads", str(threads)] if threads else []) + (["--cores", cores] if cores else [])
            report = self.run_json(args, timeout=timeout, cwd=tmp_path)
            if not out_path.is_file():
                raise ArtifactError(f"emulated board {self.board.name}: the runtime wrote no outputs file")
            with np.load(out_path, allow_pickle=False) as data:
                outputs = {name: data[name] for name in data.files}
        # The runtime prints {"stats": {latency...}, "outputs": {name: shape/dtype}}: the outputs are returned
        # as arrays, the latency statistics as LatencyStats (as a run on the host returns them).
        if not isinstance(report.get("stats"), dict) or "first_ms" not in report["stats"]:
            raise ArtifactError(f"emulated board {self.board.name}: the runtime printed no latency statistics")
        return outputs, LatencyStats.from_json(report["stats"])

    def profile_artifact(self, artifact_dir, inputs: Mapping[str, "np.ndarray"], *, repeat: int = 10,
                         timeout: float = 900) -> dict:
        """Per-kernel times on the board (``python -m tvmedge.runtime.profile``): the
        :func:`tvmedge.runtime.profile.profile` result, measured under qemu."""
        import numpy as np

        artifact = Path(artifact_dir).resolve()
        with tempfile.TemporaryDirectory(prefix="tvmedge-emu-") as tmp:
            in_path = Path(tmp) / "inputs.npz"
            np.savez(in_path, **{name: np.asarray(value) for name, value in inputs.items()})
            return self.run_json(["-P", "-m", "tvmedge.runtime.profile", str(artifact), "--inputs", str(in_path),
                                  "--repeat", str(int(repeat)), "--json"], timeout=timeout, cwd=Path(tmp))

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
            return subprocess.Popen(self.python_command(args), env=host_environ(), cwd=tempfile.gettempdir(),
                                    stdout=stdout, stderr=subprocess.STDOUT, text=True)
        except OSError as err:
            raise ToolchainError(f"cannot start {self.qemu}: {err.strerror}") from err


# --------------------------------------------------------------------------------------------------------------
# set-up


def load_python_board(board: Board) -> Optional[PythonEmulatedBoard]:
    """The board's emulated board if its root is set up and valid, else None (never builds anything)."""
    from .python_root import recipe_for

    recipe_for(board)  # a ConfigError for an arch without a recipe
    root = board_root(board.arch)
    info = read_stamp(root, _valid(root, board.arch))
    return None if info is None else _emulated(board, root, info)


def setup_python_board(board: Board, *, progress: Progress = None, force: bool = False) -> PythonEmulatedBoard:
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
    from .python_root import build_root, recipe_for

    recipe = recipe_for(board)
    if shutil.which(recipe.qemu) is None:
        raise ToolchainError(f"{recipe.qemu} not found; install the Debian package qemu-user")
    root = board_root(board.arch)
    say = progress or (lambda message: None)
    built = []

    def build(tmp: Path) -> dict:
        built.append(True)
        return build_root(tmp, board, recipe, say)

    info = build_once(root, _valid(root, board.arch), build, force=force)
    if built:
        say(f"board root ready: {root} ({info['size_mb']} MB, {info['setup_s']} s)")
    return _emulated(board, root, info)


def _emulated(board: Board, root: Path, info: dict) -> PythonEmulatedBoard:
    mcpu = str(board.target.get("mcpu") or "")
    cpu = board.emulation.qemu_cpu or (mcpu if mcpu in info.get("qemu_cpus", ()) else None)
    return PythonEmulatedBoard(board=board, root=root, arch=board.arch, cpu=cpu, info=info)


def _valid(root: Path, arch: str):
    """Does a ``ready.json`` describe a complete root of the current layout?"""
    def check(info: dict) -> bool:
        wheels = info.get("wheels") or {}
        return (info.get("layout") == LAYOUT_VERSION and info.get("arch") == arch
                and wheels.get("apache-tvm") == TVM_VERSION and wheels.get("apache-tvm-ffi") == TVM_FFI_VERSION
                and all((root / rel).exists() for rel in
                        (f"sysroot/usr/bin/python{PYTHON_VERSION}", "site/tvm/lib/libtvm_runtime.so", "site/numpy")))
    return check
