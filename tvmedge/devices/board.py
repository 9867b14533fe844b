"""``Board``: one edge board, read from ``targets/<name>.yaml`` (add a board by adding a file).

A board names the LLVM triple / CPU / features TVM compiles for, the cross compiler that links the
``.so``, and its compute units and the links between them (used by the partitioner).

>>> from tvmedge.devices.board import load_board
>>> load_board("rk3588").triple
'aarch64-linux-gnu'
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
                      field_validator, model_validator)

from ..errors import ConfigError, ToolchainError
from ..runtime.manifest import machine_arch
from ..yamlfile import read_yaml

__all__ = ["Board", "ComputeUnit", "Link", "DeclaredMetric", "load_board", "list_boards", "resolve_target", "cpu_clusters",
           "targets_dir", "emulated_board_name"]

Arch = Literal["x86_64", "aarch64", "riscv64"]

# Debian packages that provide each cross compiler, for error messages that say what to install.
_CROSS_PACKAGES = {
    "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu",
    "riscv64-linux-gnu-g++": "g++-riscv64-linux-gnu",
}
_TRIPLE_ARCH = {"aarch64": "aarch64", "arm64": "aarch64", "riscv64": "riscv64", "x86_64": "x86_64"}


def targets_dir() -> Path:
    """Where board YAMLs live: ``$TVMEDGE_TARGETS`` or the shipped ones (package data ``shipped_targets``: the
    repository's ``targets/`` in a checkout, a copy of it in an installed wheel)."""
    env = os.environ.get("TVMEDGE_TARGETS")
    return Path(env) if env else Path(__file__).resolve().parent / "shipped_targets"


def resolve_target(target: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``target`` with ``mcpu: host`` / ``num-cores: host`` replaced by this machine's values.

    Tuning records are valid only for the CPU they were measured on, so the host CPU is detected
    (``znver4``, ``skylake-avx512``, ...) rather than written into targets/x86-host.yaml.
    """
    target = dict(target)
    if target.get("mcpu") == "host":
        import tvm  # compiler side only: resolving the host CPU needs LLVM

        target["mcpu"] = tvm.target.codegen.llvm_get_system_cpu()
    if target.get("num-cores") == "host":
        target["num-cores"] = os.cpu_count() or 1
    return target


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


BOARD_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9_-]+)*$"
# A TVM target as a board writes it: a flat mapping of option -> scalar or list of scalars (``mattr``, ``keys``).
# Typed so that a board file cannot hide a structure that is expensive to walk (a YAML alias bomb) in it.
_TargetValue = Union[StrictBool, StrictInt, StrictFloat, StrictStr, list[Union[StrictBool, StrictInt, StrictFloat, StrictStr]]]
TargetSpec = Annotated[dict[StrictStr, _TargetValue], Field(max_length=64)]


class ComputeUnit(_Strict):
    """A compute unit: a CPU cluster, a GPU or an NPU."""

    name: str
    kind: Literal["cpu", "gpu", "npu"]
    model: str = ""
    cores: int = Field(1, ge=1)
    freq_ghz: Optional[float] = Field(None, gt=0)
    # Peak throughput in GOP/s per dtype (fp32, fp16, int8, ...).
    peak_gops: dict[str, float] = Field(default_factory=dict)
    mem_bandwidth_gbps: float = Field(..., gt=0)
    memory_gb: Optional[float] = Field(None, gt=0)
    # Op kinds the unit runs ("all" for a general-purpose CPU), e.g. [conv2d, matmul, relu, pool].
    ops: Union[Literal["all"], list[str]] = "all"
    # The TVM target that generates code for this unit; None when TVM has no code generator for it
    # (a vendor NPU), in which case the unit is reachable only through a vendor toolchain.
    target: Optional[TargetSpec] = None
    # A CPU cluster's Linux CPU numbers (e.g. [4, 5, 6, 7] for rk3588's Cortex-A76s): what `--cores big` pins to.
    cpus: Optional[list[int]] = None

    def supports(self, op_kind: str) -> bool:
        return self.ops == "all" or op_kind in self.ops

    def tvm_target(self) -> Optional[dict[str, Any]]:
        """This unit's TVM target with ``host`` values resolved, or None when TVM cannot generate code for it."""
        return resolve_target(self.target) if self.target is not None else None


def cpu_clusters(board) -> Optional[dict]:
    """``{unit: {"cpus": [...], "role": "big"|"little"|None}}`` for the board's CPU units that declare ``cpus``;
    with two or more, the one with the highest fp32 peak per core is ``big`` and the lowest ``little``."""
    units = [u for u in board.compute_units if u.kind == "cpu" and u.cpus]
    if not units:
        return None
    per_core = {u.name: (u.peak_gops.get("fp32") or 0.0) / u.cores for u in units}
    ordered = sorted(units, key=lambda u: per_core[u.name])
    roles = {ordered[-1].name: "big", ordered[0].name: "little"} if len(units) > 1 and \
        per_core[ordered[0].name] < per_core[ordered[-1].name] else {}
    return {u.name: {"cpus": list(u.cpus), "role": roles.get(u.name)} for u in units}


class Link(_Strict):
    """A data path between two units (shared DRAM, PCIe, ...)."""

    src: str
    dst: str
    bandwidth_gbps: float = Field(..., gt=0)
    latency_us: float = Field(0.0, ge=0)
    sync_us: float = Field(0.0, ge=0)


class DeclaredMetric(_Strict):
    """One data-sheet figure of the evaluation matrix (:data:`tvmedge.devices.metrics.METRICS`), with its citation.

    In YAML either a bare number or ``{value: 6000, source: "[1] RK3588 datasheet: NPU 6 TOPS INT8"}``.
    """

    value: float = Field(..., ge=0)
    source: str = ""

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data):
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"value": data}
        return data


class Emulation(_Strict):
    """How the emulated board runs this board's code (``tvmedge run --board emu:NAME``)."""

    # qemu's -cpu model, when the board's ISA needs more than qemu's default CPU (e.g. RVV 1.0 at VLEN 256:
    # "rv64,v=true,vlen=256,vext_spec=v1.0"). Without it, qemu's model named like the target's mcpu, else
    # qemu's default.
    qemu_cpu: Optional[str] = None


class Board(_Strict):
    """One board: what TVM compiles for, how to link, and its compute units."""

    # The name becomes folder names (runtime bundles, the emulated board's disk) and words of shell commands run
    # on the board: one safe path component only (no '/', '..', quotes or ';').
    name: str = Field(..., pattern=BOARD_NAME_PATTERN)
    description: str = ""
    arch: Arch
    # TVM target of the main CPU cluster (a dict as ``tvm.target.Target`` takes it). ``mcpu: host``
    # is resolved to the host CPU at compile time (x86-host), since tuning records are CPU-specific.
    target: TargetSpec
    cross_compiler: Optional[str] = None
    memory_gb: Optional[float] = Field(None, gt=0)
    compute_units: list[ComputeUnit] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    # Declared (data-sheet) values of the 12-metric matrix, keyed by metric name (tvmedge.devices.metrics.METRICS),
    # each with its source. Only what a vendor publishes: the rest stays unavailable until measured on the board.
    metrics: dict[str, DeclaredMetric] = Field(default_factory=dict)
    emulation: Emulation = Field(default_factory=Emulation)
    source: str = ""

    @field_validator("metrics", mode="before")
    @classmethod
    def _known_metrics(cls, value):
        from .metrics import METRICS

        if isinstance(value, dict):
            known = [m.key for m in METRICS]
            unknown = [str(k) for k in value if k not in known]
            if unknown:
                raise ValueError(f"unknown metric '{unknown[0]}'; choose from: {', '.join(known)}")
        return value

    @field_validator("target")
    @classmethod
    def _target_has_kind(cls, value):
        if "kind" not in value:
            raise ValueError("must have a 'kind' (e.g. llvm)")
        return value

    @model_validator(mode="after")
    def _links_name_units(self):
        names = {u.name for u in self.compute_units}
        if len(names) != len(self.compute_units):
            raise ValueError("compute unit names must be unique")
        for link in self.links:
            for end in (link.src, link.dst):
                if end not in names:
                    raise ValueError(f"link endpoint '{end}' is not a compute unit ({', '.join(sorted(names))})")
        declared = self.metrics.get("memory_capacity")
        if declared is not None and self.memory_gb is not None and abs(declared.value - self.memory_gb) > 1e-6:
            raise ValueError(f"metrics.memory_capacity ({declared.value:g} GB) differs from memory_gb "
                             f"({self.memory_gb:g} GB); declare one capacity")
        return self

    @property
    def triple(self) -> str:
        """The LLVM target triple (the host's for a native board)."""
        return self.target.get("mtriple") or f"{self.arch}-linux-gnu"

    @property
    def is_native(self) -> bool:
        """True when the host can run this board's code directly (same arch, no cross compiler)."""
        return self.arch == machine_arch() and not self.cross_compiler

    def tvm_target(self) -> dict[str, Any]:
        """The TVM target dict, with ``mcpu: host`` resolved to the host's CPU name."""
        return resolve_target(self.target)

    def check_toolchain(self) -> Optional[str]:
        """The cross compiler's path (None for native), or ToolchainError naming the package to install."""
        if not self.cross_compiler:
            return None
        path = shutil.which(self.cross_compiler)
        if path is None:
            package = _CROSS_PACKAGES.get(self.cross_compiler, "the cross toolchain")
            raise ToolchainError(
                f"cross compiler {self.cross_compiler} for board {self.name} not found; "
                f"install the Debian package {package}"
            )
        return path

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def emulated_board_name(spec: str, *, what: str = "--board", hint: str = "") -> str:
    """``"emu:rk3588"`` -> ``"rk3588"``: the one parser of the ``emu:NAME`` strings that name an emulated board.

    ConfigError ``<what> '<spec>' must look like emu:NAME (e.g. emu:rk3588)<hint>`` for anything else.
    """
    kind, sep, name = str(spec).partition(":")
    if kind != "emu" or not sep or not name:
        raise ConfigError(f"{what} '{spec}' must look like emu:NAME (e.g. emu:rk3588){hint}")
    if not re.fullmatch(BOARD_NAME_PATTERN, name):
        raise ConfigError(f"{what} '{spec}': '{name[:64]}' is not a board name (letters, digits, '-', '_', '.')")
    return name


def list_boards() -> list[str]:
    """Names of the boards in the targets directory."""
    folder = targets_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_board(spec: str) -> Board:
    """A board from a name in ``targets/``, a path to a YAML file, or a raw TVM target JSON.

    Raises
    ------
    ConfigError
        Unknown board, unreadable or malformed YAML/JSON (the message names the key).
    """
    spec = spec.strip()
    if spec.startswith("{"):
        return _board_from_target_json(spec)
    path = Path(spec)
    if spec.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"board file {spec} does not exist")
    else:
        path = targets_dir() / f"{spec}.yaml"
        if not path.is_file():
            choices = ", ".join(list_boards()) or "(none: the targets directory is empty)"
            raise ConfigError(f"unknown board '{spec}'; choose from: {choices} (or pass a TVM target JSON)")
    return _board_from_file(path)


def _board_from_file(path: Path) -> Board:
    data = read_yaml(path, "board file")
    if not isinstance(data, dict):
        raise ConfigError(f"board file {path} must be a YAML mapping with keys name, arch, target, ...")
    data.setdefault("name", path.stem)
    return _validate(data, origin=str(path))


def _board_from_target_json(text: str) -> Board:
    try:
        target = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--target is neither a board name nor valid TVM target JSON: {err.msg} at column {err.colno}") from err
    if not isinstance(target, dict):
        raise ConfigError("--target JSON must be an object such as {\"kind\": \"llvm\", \"mtriple\": \"aarch64-linux-gnu\"}")
    triple = target.get("mtriple")
    if triple is not None and not isinstance(triple, str):
        raise ConfigError(f"--target JSON: 'mtriple' must be a string such as \"aarch64-linux-gnu\", got {triple!r}")
    arch = _TRIPLE_ARCH.get(triple.split("-")[0], triple.split("-")[0]) if triple else machine_arch()
    cross = None if arch == machine_arch() else f"{arch}-linux-gnu-g++"
    if target.get("kind", "llvm") == "llvm" and "num-cores" not in target and cross is None:
        # TVM's schedules need the core count (MetaSchedule stops with an internal error without it): this
        # machine's for a native target (a cross target's is asked for when compiling, CompileTarget.resolve)
        target = {**target, "num-cores": "host"}
    name = "custom-" + arch
    data = {
        "name": name,
        "description": "raw TVM target given on the command line",
        "arch": arch,
        "target": target,
        "cross_compiler": cross,
    }
    return _validate(data, origin="--target JSON")


def _validate(data: dict, origin: str) -> Board:
    try:
        return Board(source=origin, **{k: v for k, v in data.items() if k != "source"})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ConfigError(f"{origin}: key '{key}': {first['msg']}{more}") from err
    except TypeError as err:  # e.g. a non-string key
        raise ConfigError(f"{origin}: {err}") from err
