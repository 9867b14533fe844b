"""TVM's runtime and tvmedge's C++ loader for a board's architecture, without Python on the board.

``native_runtime(arch)`` returns a cached folder (``<cache>/runtime/<arch>/``)::

    lib/libtvm_runtime.so   TVM's runtime (the Relax VM, CPU device, thread pool, RPC endpoint)
    lib/libtvm_ffi.so       tvm-ffi, which the runtime and every compiled model link against
    bin/tvmedge-run         tvmedge/native/src/tvmedge_run.cc: reads the artifact manifest, checks it, runs
    bin/tvmedge-rpc-server  tvmedge/native/src/tvmedge_rpc_server.cc: TVM's RPC server (+ tracker) in C++
    ready.json              versions, sizes and timings of the build

Where the libraries come from:

* **riscv64**: there is no riscv64 TVM wheel, so they are cross-built:
  ``libtvm_ffi.so`` from the ``apache-tvm-ffi`` sdist with its own CMake build (pip's ``cmake``: the sdist
  needs CMake >= 3.26), ``libtvm_runtime.so`` from the runtime sources the ``apache-tvm`` wheel itself ships
  (``tvm/src/runtime``, ``tvm/include``) plus the support headers it lacks (``third_party/tvm_support/``).
  Using the wheel's sources, not another TVM checkout, keeps the runtime in step with the compiler that built
  the model. The
  build reaches nothing but PyPI: ~1.5 min on 2 cores, once per machine.
* **aarch64**: the aarch64 wheels' own libraries, from the folder the caller names (``wheel_site``: the emulated
  board root's ``site/``, which holds those wheels unpacked).
* **x86_64**: the host's installed wheels.

The loader is compiled for every architecture with that architecture's g++ against the host wheels' headers
(the same TVM and tvm-ffi versions).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..cache import build_once, cache_path, read_stamp, run_step, tree_size
from ..errors import ConfigError, ToolchainError
from ..versions import TVM_FFI_VERSION, TVM_VERSION

__all__ = ["NativeRuntime", "native_runtime", "load_native_runtime", "PROGRAMS", "TOOLCHAINS"]

# Bump when the build below changes so that old folders are rebuilt.
LAYOUT_VERSION = 1
# Bump when the way the programs are compiled changes (their sources are hashed anyway): only they are rebuilt.
PROGRAMS_VERSION = 3  # 2: --no-as-needed; 3: Monocypher linked in, versions passed in
MIN_CMAKE = (3, 26)

_NATIVE = Path(__file__).resolve().parent / "src"
# The board-side programs, compiled per arch against TVM's runtime: bin/<name> from src/<source>.
PROGRAMS = {"tvmedge-run": _NATIVE / "tvmedge_run.cc", "tvmedge-rpc-server": _NATIVE / "tvmedge_rpc_server.cc"}
# TVM's support headers the wheel lacks, vendored unchanged (third_party/tvm_support/README.md says from where)
_SUPPORT = Path(__file__).resolve().parent / "third_party" / "tvm_support"
# Monocypher (Ed25519 checks of signed artifacts, tvmedge-run --trust), vendored unchanged: its README says from where
_MONOCYPHER = Path(__file__).resolve().parent / "third_party" / "monocypher"
_MONOCYPHER_SOURCES = ("monocypher.c", "monocypher-ed25519.c")

# arch -> (C++ compiler, strip, Debian package of the cross toolchain, sysroot of its libraries for qemu -L)
TOOLCHAINS = {
    "riscv64": ("riscv64-linux-gnu-g++", "riscv64-linux-gnu-strip", "g++-riscv64-linux-gnu", "/usr/riscv64-linux-gnu"),
    "aarch64": ("aarch64-linux-gnu-g++", "aarch64-linux-gnu-strip", "g++-aarch64-linux-gnu", "/usr/aarch64-linux-gnu"),
    "x86_64": ("g++", "strip", "g++", "/"),
}

# Runtime sources compiled into libtvm_runtime.so, relative to the wheel's tvm/src/runtime. GPU back-ends,
# disco (multi-GPU), vendor libraries and the Hexagon/CUDA VM builtins are left out: a CPU board runs none of them.
_RUNTIME_SOURCES = ("*.cc", "memory/*.cc", "vm/*.cc", "rpc/*.cc", "extra/contrib/sort/*.cc",
                    "extra/contrib/random/*.cc")
_CXXFLAGS = ("-std=c++17", "-O2", "-fPIC", "-fvisibility=hidden", "-DNDEBUG", "-DTVM_RUNTIME_EXPORTS")

Progress = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class NativeRuntime:
    """A built ``<cache>/runtime/<arch>/`` folder."""

    arch: str
    root: Path
    info: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def loader(self) -> Path:
        return self.root / "bin" / "tvmedge-run"

    @property
    def rpc_server(self) -> Path:
        return self.root / "bin" / "tvmedge-rpc-server"

    @property
    def files(self) -> list[Path]:
        """What a board needs besides the artifact: the loader and the two libraries."""
        return [self.loader, self.lib_dir / "libtvm_runtime.so", self.lib_dir / "libtvm_ffi.so"]

    @property
    def sysroot(self) -> str:
        """The cross toolchain's library folder (``qemu-<arch> -L``): libc and libstdc++ of the board."""
        return TOOLCHAINS[self.arch][3]


def runtime_root(arch: str) -> Path:
    return cache_path("runtime", arch)


def _valid(arch: str, *, current_programs: bool = False) -> Callable[[dict], bool]:
    """Are the libraries of ``runtime/<arch>`` complete and of these versions (and, with ``current_programs``,
    the programs built from the current sources)?"""
    def check(info: dict) -> bool:
        return (info.get("layout") == LAYOUT_VERSION and info.get("arch") == arch
                and info.get("tvm") == TVM_VERSION and info.get("tvm_ffi") == TVM_FFI_VERSION
                and (not current_programs or _programs_current(runtime_root(arch), info))
                and all((runtime_root(arch) / rel).is_file()
                        for rel in ("lib/libtvm_runtime.so", "lib/libtvm_ffi.so")))
    return check


def _programs_current(root: Path, info: dict) -> bool:
    return (info.get("programs_sha256") == _programs_hash()
            and all((root / "bin" / program).is_file() for program in PROGRAMS))


def load_native_runtime(arch: str) -> Optional[NativeRuntime]:
    """The built runtime for ``arch`` if it is cached and current, else None (never builds)."""
    if arch not in TOOLCHAINS:
        return None
    info = read_stamp(runtime_root(arch), _valid(arch, current_programs=True))
    return NativeRuntime(arch, runtime_root(arch), info) if info is not None else None


def native_runtime(arch: str, *, progress: Progress = None, force: bool = False,
                   wheel_site: Optional[Callable[[], Path]] = None) -> NativeRuntime:
    """Build (once per machine) and return TVM's runtime + the C++ loader for ``arch``.

    ``wheel_site`` returns the folder holding ``arch``'s TVM wheels unpacked (``tvm/``, ``tvm_ffi/``): their
    libraries are the aarch64 runtime (x86_64 takes this host's, riscv64 is cross-built from sources). It is
    called only when those libraries are not built yet.

    Raises
    ------
    ConfigError
        No recipe for ``arch``, or no ``wheel_site`` for an arch that needs one.
    ToolchainError
        A compiler, CMake >= 3.26 or qemu is missing, or a build step failed (one line naming the step).
    """
    if arch not in TOOLCHAINS:
        raise ConfigError(f"no native runtime recipe for arch {arch}; known: {', '.join(sorted(TOOLCHAINS))}")
    cxx, _, package, _ = TOOLCHAINS[arch]
    if shutil.which(cxx) is None:
        raise ToolchainError(f"{cxx} not found; install the Debian package {package}")
    say = progress or (lambda message: None)
    root = runtime_root(arch)

    def build(tmp: Path) -> dict:
        return _build(tmp, arch, say, wheel_site)

    info = build_once(root, _valid(arch), build, force=force)
    if not _programs_current(root, info):
        info = _refresh_programs(root, arch, say)  # a program's source changed (or one is gone): the libraries stay
    return NativeRuntime(arch, root, info)


def _refresh_programs(root: Path, arch: str, say: Callable[[str], None]) -> dict:
    from ..cache import write_stamp

    tmp = root / f".bin.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (root / "bin").mkdir(exist_ok=True)
    try:
        _build_programs(arch, root / "lib", tmp, say)
        for program in PROGRAMS:
            os.replace(tmp / program, root / "bin" / program)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info = read_stamp(root, _valid(arch)) or {}
    info.update(programs_sha256=_programs_hash(),
                bytes=dict(info.get("bytes", {}), **{f"bin/{p}": (root / "bin" / p).stat().st_size for p in PROGRAMS}))
    write_stamp(root, info)
    return info


# --------------------------------------------------------------------------------------------------------------
# the build


def _build(tmp: Path, arch: str, say: Callable[[str], None], wheel_site) -> dict:
    started = time.perf_counter()
    lib, bin_dir, work = tmp / "lib", tmp / "bin", tmp / "work"
    for path in (lib, bin_dir, work):
        path.mkdir()
    timings = {}
    if arch == "riscv64":
        t0 = time.perf_counter()
        _build_tvm_ffi(work, arch, lib, say)
        timings["tvm_ffi_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        _build_tvm_runtime(work, arch, lib, say)
        timings["tvm_runtime_s"] = round(time.perf_counter() - t0, 1)
        source = "cross-built from the apache-tvm-ffi sdist and the apache-tvm wheel's runtime sources"
    else:
        _copy_wheel_libraries(arch, lib, say, wheel_site)
        source = "the apache-tvm / apache-tvm-ffi wheels' libraries"
    t0 = time.perf_counter()
    _build_programs(arch, lib, bin_dir, say)
    timings["programs_s"] = round(time.perf_counter() - t0, 1)
    shutil.rmtree(work)
    return {
        "layout": LAYOUT_VERSION,
        "arch": arch,
        "tvm": TVM_VERSION,
        "tvm_ffi": TVM_FFI_VERSION,
        "source": source,
        "compiler": _compiler_version(TOOLCHAINS[arch][0]),
        "programs_sha256": _programs_hash(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_s": round(time.perf_counter() - started, 1),
        "timings": timings,
        "bytes": {rel: (tmp / rel).stat().st_size
                  for rel in (*(f"bin/{p}" for p in PROGRAMS), "lib/libtvm_runtime.so", "lib/libtvm_ffi.so")},
        "size_mb": round(tree_size(tmp) / 1e6, 2),
    }


def _what(arch: str) -> str:
    return f"native runtime build for {arch}"


def host_site() -> Path:
    """The site-packages folder holding the host's tvm and tvm_ffi (their headers and sources)."""
    import importlib.util

    spec = importlib.util.find_spec("tvm_ffi")
    if spec is None or not spec.origin:
        raise ToolchainError("apache-tvm-ffi is not installed on this host (pip install -e .)")
    return Path(spec.origin).resolve().parent.parent


def _include_flags() -> list[str]:
    site = host_site()
    # the wheel's tvm/runtime/tensor.h includes tvm/support/io.h, which the wheel lacks (tvm_support/README.md)
    return [f"-I{site / 'tvm' / 'include'}", f"-I{site / 'tvm_ffi' / 'include'}", f"-I{_SUPPORT / 'include'}"]


def _cmake() -> str:
    """A CMake new enough for the tvm-ffi sdist: the venv's (pip package ``cmake``) first, then PATH."""
    candidates = [Path(sys.executable).parent / "cmake", shutil.which("cmake")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            proc = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
            words = (proc.stdout.split() or ["", "", "0"])
            version = tuple(int(p) for p in words[2].split(".")[:2] if p.isdigit())
            if version >= MIN_CMAKE:
                return str(candidate)
    raise ToolchainError("the tvm-ffi sdist needs CMake >= 3.26; install it with: pip install 'cmake>=3.26'")


def _build_tvm_ffi(work: Path, arch: str, lib: Path, say: Callable[[str], None]) -> None:
    cxx, strip, _, sysroot = TOOLCHAINS[arch]
    cmake = _cmake()
    say(f"downloading the apache-tvm-ffi {TVM_FFI_VERSION} sdist")
    dist = work / "dist"
    # --no-binary for this one package only: `--no-binary :all:` would also rebuild cmake itself from source.
    run_step(_what(arch), "pip download apache-tvm-ffi sdist",
             [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
              "--no-binary", "apache-tvm-ffi", f"apache-tvm-ffi=={TVM_FFI_VERSION}", "-d", dist], timeout=900)
    archives = sorted(dist.glob("apache_tvm_ffi-*.tar.gz"))
    if not archives:
        raise ToolchainError(f"{_what(arch)} failed at step 'pip download': no apache-tvm-ffi sdist in {dist}")
    with tarfile.open(archives[0]) as archive:
        # the "data" filter (no absolute paths, no links out of the folder) where this Python has it (>= 3.11.4)
        archive.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    source = next(p for p in work.iterdir() if p.name.startswith("apache_tvm_ffi-") and p.is_dir())
    toolchain = work / "toolchain.cmake"
    toolchain.write_text(
        "set(CMAKE_SYSTEM_NAME Linux)\n"
        f"set(CMAKE_SYSTEM_PROCESSOR {arch})\n"
        f"set(CMAKE_C_COMPILER {cxx.replace('g++', 'gcc')})\n"
        f"set(CMAKE_CXX_COMPILER {cxx})\n"
        f"set(CMAKE_FIND_ROOT_PATH {sysroot})\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n"
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n")
    build = work / "build-ffi"
    say(f"building libtvm_ffi.so for {arch} (CMake, ~35 s)")
    # libbacktrace is a C library the sdist builds with autotools for the host; a board does without it.
    run_step(_what(arch), "cmake configure tvm-ffi",
             [cmake, "-S", source, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DCMAKE_BUILD_TYPE=Release",
              "-DTVM_FFI_USE_LIBBACKTRACE=OFF", "-DTVM_FFI_BACKTRACE_ON_SEGFAULT=OFF"], timeout=600)
    run_step(_what(arch), "cmake build tvm-ffi",
             [cmake, "--build", build, "--target", "tvm_ffi_shared", "-j", str(os.cpu_count() or 2)], timeout=1800)
    shutil.copy2(build / "lib" / "libtvm_ffi.so", lib / "libtvm_ffi.so")
    run_step(_what(arch), "strip libtvm_ffi.so", [strip, lib / "libtvm_ffi.so"])


def _build_tvm_runtime(work: Path, arch: str, lib: Path, say: Callable[[str], None]) -> None:
    cxx, strip, _, _ = TOOLCHAINS[arch]
    site = host_site()
    tree = work / "tvm"
    # The wheel's runtime sources and headers, with the support headers it lacks laid over them in TVM's
    # repository layout (sources include them by relative paths such as "../support/utils.h").
    shutil.copytree(site / "tvm" / "src", tree / "src")
    shutil.copytree(site / "tvm" / "include", tree / "include")
    shutil.copytree(_SUPPORT, tree, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    runtime = tree / "src" / "runtime"
    sources = sorted({path for pattern in _RUNTIME_SOURCES for path in runtime.glob(pattern)})
    if not sources:
        raise ToolchainError(f"{_what(arch)}: the installed apache-tvm wheel has no runtime sources under {runtime}")
    objects = work / "objs"
    objects.mkdir()
    flags = [*_CXXFLAGS, f"-I{tree / 'include'}", *_include_flags(), f"-I{tree / '3rdparty' / 'compiler-rt'}"]
    say(f"compiling TVM's runtime for {arch} from the wheel's {len(sources)} sources (~1 min)")

    def compile_one(source: Path) -> Path:
        obj = objects / (str(source.relative_to(runtime)).replace("/", "_")[:-3] + ".o")
        run_step(_what(arch), f"compile {source.relative_to(runtime)}", [cxx, *flags, "-c", source, "-o", obj])
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        built = list(pool.map(compile_one, sources))
    out = lib / "libtvm_runtime.so"
    # -latomic: riscv64 has no byte-sized atomic instructions (undefined __atomic_fetch_add_1 without it)
    run_step(_what(arch), "link libtvm_runtime.so",
             [cxx, "-shared", "-o", out, *built, f"-L{lib}", "-ltvm_ffi", "-lpthread", "-ldl", "-lm", "-latomic",
              "-Wl,-rpath,$ORIGIN"])
    run_step(_what(arch), "strip libtvm_runtime.so", [strip, out])


def _copy_wheel_libraries(arch: str, lib: Path, say: Callable[[str], None], wheel_site) -> None:
    if arch == "x86_64":
        site = host_site()
    elif wheel_site is None:
        raise ConfigError(f"{_what(arch)}: its libraries are the {arch} TVM wheels'; say where they are unpacked "
                          f"(wheel_site, e.g. the emulated {arch} board root's site/)")
    else:
        say(f"taking the {arch} wheels' libraries (libtvm_runtime.so, libtvm_ffi.so)")
        site = wheel_site()
    for rel in ("tvm/lib/libtvm_runtime.so", "tvm_ffi/lib/libtvm_ffi.so"):
        source = site / rel
        if not source.is_file():
            raise ToolchainError(f"{_what(arch)}: {source} is missing")
        shutil.copy2(source, lib / Path(rel).name)


def _build_programs(arch: str, lib: Path, bin_dir: Path, say: Callable[[str], None]) -> None:
    cxx, strip, _, _ = TOOLCHAINS[arch]
    say(f"compiling {', '.join(PROGRAMS)} (the C++ loader and RPC server) for {arch}")
    cc = cxx[: -len("g++")] + "gcc"  # Monocypher is C99
    objects, scratch = [], Path(tempfile.mkdtemp(prefix="tvmedge-monocypher-"))
    for source in _MONOCYPHER_SOURCES:
        obj = scratch / (Path(source).stem + ".o")
        run_step(_what(arch), f"compile {source}", [cc, "-std=c99", "-O2", "-fPIC", "-c", str(_MONOCYPHER / source),
                                                   "-o", obj])
        objects.append(obj)
    versions = [f'-DTVMEDGE_TVM_VERSION="{TVM_VERSION}"', f'-DTVMEDGE_TVM_FFI_VERSION="{TVM_FFI_VERSION}"']

    def build(item) -> None:
        name, source = item
        out = bin_dir / name
        run_step(_what(arch), f"compile {name}",
                 # --no-as-needed: the RPC server calls TVM's runtime only through global functions it registers
                 # at load time, so a toolchain that defaults to --as-needed (riscv64's) would drop the library
                 [cxx, "-std=c++17", "-O2", *_include_flags(), f"-I{_MONOCYPHER}", *versions, source, *objects,
                  "-o", out, f"-L{lib}", "-Wl,--no-as-needed", "-ltvm_runtime", "-ltvm_ffi", "-Wl,--as-needed",
                  "-Wl,-rpath,$ORIGIN/../lib"])
        run_step(_what(arch), f"strip {name}", [strip, out])

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(build, PROGRAMS.items()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _compiler_version(cxx: str) -> str:
    try:
        proc = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60)
    except OSError:
        return ""
    return (proc.stdout.splitlines() or [""])[0]


def _programs_hash() -> str:
    import hashlib

    digest = hashlib.sha256(str(PROGRAMS_VERSION).encode())
    for path in sorted(_NATIVE.glob("*.cc")) + sorted(_NATIVE.glob("*.h")) + sorted(_MONOCYPHER.glob("*.[ch]")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
