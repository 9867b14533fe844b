"""Emulated boards without Python: TVM's runtime + tvmedge's C++ loader under qemu-user (riscv64).

There is no riscv64 TVM wheel, so a RISC-V board runs artifacts the way a small Linux image would: the
cross-built ``libtvm_runtime.so`` / ``libtvm_ffi.so`` and ``tvmedge-run`` (:mod:`tvmedge.native.builder`), with
the cross toolchain's libc and libstdc++ as the board's userland::

    qemu-riscv64 -L /usr/riscv64-linux-gnu <cache>/runtime/riscv64/bin/tvmedge-run ARTIFACT --json ...

The route was chosen over a riscv64 Python (measured: both routes work) because it needs nothing but the
toolchain Debian already packages: the Python route needs Debian sid's moving riscv64 userland (332 MB, 7.7 s
to import numpy + tvm emulated) and a cross-built tvm-ffi Cython extension. The C++ board is ~5 MB and starts
in a fraction of a second. TVM's RPC server, which TVM implements in Python around a C++ server loop, runs as
``tvmedge-rpc-server`` (the same loop, the handshake and tracker registration in C++), so a RISC-V board also
serves ``tvmedge run --rpc/--tracker`` and tuning through TVM's tracker.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping, Optional, Sequence

if TYPE_CHECKING:
    import numpy as np

from ..devices.board import Board
from ..errors import ArtifactError, ToolchainError, TvmedgeError
from ..native.builder import NativeRuntime, load_native_runtime, native_runtime
from ..runtime.loader import LatencyStats
from .common import host_environ, json_report, qemu_prefix

__all__ = ["CppEmulatedBoard", "setup_cpp_board", "load_cpp_board", "CPP_ARCHS"]

# Architectures whose emulated boards use the C++ loader (no Python wheels of TVM exist for them).
CPP_ARCHS = ("riscv64",)


@dataclass(frozen=True)
class CppEmulatedBoard:
    """An emulated board that runs artifacts with ``tvmedge-run``. Build one with :func:`setup_cpp_board`."""

    board: Board
    runtime: NativeRuntime
    loader_kind: ClassVar[str] = "c++"  # what runs artifacts on it: tvmedge-run

    @property
    def arch(self) -> str:
        return self.board.arch

    @property
    def root(self) -> Path:
        return self.runtime.root

    @property
    def info(self) -> dict:
        return self.runtime.info

    @property
    def qemu(self) -> str:
        return f"qemu-{self.arch}"

    def qemu_prefix(self) -> list[str]:
        """``qemu-<arch> -L <toolchain sysroot> [-cpu CPU] -U ...``: the board's ISA (e.g. RVV) is qemu's CPU, so
        code using more than the board has traps here too."""
        return qemu_prefix(self.qemu, self.runtime.sysroot, self.board.emulation.qemu_cpu)

    def command(self, program: Path, args: Sequence[str]) -> list[str]:
        """``qemu-<arch> -L <toolchain sysroot> PROGRAM ARGS...`` (run it with :func:`host_environ`)."""
        return self.qemu_prefix() + [str(program), *map(str, args)]

    def loader_command(self, args: Sequence[str]) -> list[str]:
        return self.command(self.runtime.loader, args)

    def run_loader(self, args: Sequence[str], *, timeout: float = 600,
                   cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        """Run ``tvmedge-run ARGS`` on the board (captured text output; no exception on a non-zero exit)."""
        try:
            return subprocess.run(self.loader_command(args), capture_output=True, text=True, timeout=timeout,
                                  cwd=cwd or tempfile.gettempdir(), env=host_environ())
        except subprocess.TimeoutExpired as err:
            raise TvmedgeError(f"emulated board {self.board.name}: tvmedge-run timed out after {timeout:g} s") from err
        except OSError as err:
            raise ToolchainError(f"cannot start {self.qemu}: {err.strerror}; install the Debian package qemu-user") from err

    def run_json(self, args: Sequence[str], *, timeout: float = 600, cwd: Optional[Path] = None) -> dict:
        """Run ``tvmedge-run ARGS --json`` and return its JSON report (board-side errors raised as tvmedge errors)."""
        proc = self.run_loader([*args, "--json"], timeout=timeout, cwd=cwd)
        return json_report(self.board.name, proc, "tvmedge-run")

    def run_artifact(self, artifact_dir, inputs: Mapping[str, "np.ndarray"], *, repeat: int = 1,
                     timeout: float = 600) -> tuple[dict, LatencyStats]:
        """Run an artifact on the board; ``(outputs by name, LatencyStats)`` as
        :meth:`PythonEmulatedBoard.run_artifact` returns them (emulated timings)."""
        import numpy as np

        artifact = Path(artifact_dir).resolve()
        if not artifact.is_dir():
            raise ArtifactError(f"artifact directory {artifact_dir} does not exist")
        with tempfile.TemporaryDirectory(prefix="tvmedge-emu-") as tmp:
            tmp_path = Path(tmp)
            args = [str(artifact), "--output-dir", str(tmp_path), "--repeat", str(int(repeat))]
            for index, (name, value) in enumerate(inputs.items()):
                path = tmp_path / f"input_{index}.npy"
                np.save(path, np.asarray(value))
                args += ["--inputs", f"{name}={path}"]
            report = self.run_json(args, timeout=timeout, cwd=tmp_path)
            outputs = {}
            for name, described in (report.get("outputs") or {}).items():
                path = tmp_path / str(described.get("file", ""))
                if not path.is_file():
                    raise ArtifactError(f"emulated board {self.board.name}: tvmedge-run wrote no file for output {name}")
                outputs[name] = np.load(path, allow_pickle=False)
        if not isinstance(report.get("stats"), dict) or "first_ms" not in report["stats"]:
            raise ArtifactError(f"emulated board {self.board.name}: the runtime printed no latency statistics")
        return outputs, LatencyStats.from_json(report["stats"])

    def devices(self) -> dict:
        """The board's devices as ``HardwareAdapter("auto").summary()`` reports them (``tvmedge-run --devices``)."""
        return json_report(self.board.name, self.run_loader(["--devices"], timeout=120), "tvmedge-run --devices")

    def measure(self, artifact, duration: float) -> dict:
        """Certification measurements with the C++ loader, in the form :func:`tvmedge.runtime.certify.measure`
        returns them (load time, first inference, ``duration`` seconds back to back; no temperatures)."""
        from ..runtime.certify import summarize_latencies

        stats = self.run_json([str(artifact), "--duration", str(duration), "--times"], timeout=duration + 300)["stats"]
        times = [float(t) for t in stats.get("times_ms", [])]
        return {"load_s": float(stats["load_s"]), "first_inference_ms": float(stats["first_ms"]), "runs": len(times),
                "duration_s": sum(times) / 1e3, "latency_ms": summarize_latencies(times), "temperatures": []}

    def serve_rpc(self, *, host: str = "127.0.0.1", port: int = 9090, tracker: Optional[str] = None,
                  key: str = "", stdout=None) -> subprocess.Popen:
        """Start TVM's RPC server on the board (``tvmedge-rpc-server``: TVM's C++ server loop, the handshake and
        tracker registration of tvm/rpc/server.py); returns the process. Point ``host`` at loopback: the server
        executes whatever modules its clients upload."""
        args = ["--host", host, "--port", str(port), "--key", key]
        if tracker:
            args += ["--tracker", tracker]
        try:
            return subprocess.Popen(self.command(self.runtime.rpc_server, args), env=host_environ(),
                                    cwd=tempfile.gettempdir(), stdout=stdout, stderr=subprocess.STDOUT, text=True)
        except OSError as err:
            raise ToolchainError(f"cannot start {self.qemu}: {err.strerror}; install the Debian package qemu-user") from err


def load_cpp_board(board: Board) -> Optional[CppEmulatedBoard]:
    runtime = load_native_runtime(board.arch)
    return None if runtime is None else CppEmulatedBoard(board, runtime)


def setup_cpp_board(board: Board, *, progress=None, force: bool = False) -> CppEmulatedBoard:
    """Build (once per machine) TVM's runtime + the loader for the board's arch and return the board."""
    qemu = f"qemu-{board.arch}"
    if shutil.which(qemu) is None:
        raise ToolchainError(f"{qemu} not found; install the Debian package qemu-user")
    return CppEmulatedBoard(board, native_runtime(board.arch, progress=progress, force=force))
