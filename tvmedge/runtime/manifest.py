"""``Manifest``: what an artifact is, read and verified on the board before anything is loaded.

The runtime owns the format (the board reads it alone); ``tvmedge.build`` imports it to write it.
Stdlib only.

An artifact directory holds ``manifest.json`` and the files it lists with their sha256, e.g.::

    out/
      manifest.json     {"format": "tvmedge-artifact", "format_version": 1, "board": "rk3588", ...}
      model.so          the cross-compiled Relax VM executable
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import ArtifactError

__all__ = ["Manifest", "TensorSpec", "MANIFEST_NAME", "FORMAT", "FORMAT_VERSION", "PARTITIONED_FORMAT_VERSION", "sha256_file", "machine_arch"]

MANIFEST_NAME = "manifest.json"
FORMAT = "tvmedge-artifact"
FORMAT_VERSION = 1  # a single-library artifact
# A multi-partition artifact (``plan`` with stages, one library each) is version 2, so that a runtime that
# knows only version 1 refuses it rather than running its first stage as if it were the whole model.
PARTITIONED_FORMAT_VERSION = 2
READABLE_VERSIONS = (FORMAT_VERSION, PARTITIONED_FORMAT_VERSION)

_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}


def machine_arch() -> str:
    """This machine's architecture as artifacts name it (``x86_64``, ``aarch64``, ``riscv64``)."""
    machine = platform.machine().lower()
    return _ARCH_ALIASES.get(machine, machine)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and dtype of one model input or output."""

    name: str
    shape: tuple
    dtype: str

    def describe(self) -> str:
        return f"{self.name} {tuple(self.shape)} {self.dtype}"

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict) -> "TensorSpec":
        return cls(name=str(data["name"]), shape=tuple(int(d) for d in data["shape"]), dtype=str(data["dtype"]))


@dataclass
class Manifest:
    """The artifact's description. ``created`` is the only field that differs between identical builds."""

    board: str
    arch: str
    triple: str
    target: dict
    inputs: list
    outputs: list
    library: str
    files: dict = field(default_factory=dict)  # file name -> {"sha256": ..., "bytes": ...}
    source_model: dict = field(default_factory=dict)
    build: dict = field(default_factory=dict)
    tvm_version: str = ""
    tvmedge_version: str = ""
    plan: Optional[dict] = None  # filled by the partitioner (issue 5)
    tuning: Optional[dict] = None  # tuning provenance (issue 4)
    created: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    # sha256 of every other field but ``created``: catches an edited or corrupted manifest (not an
    # attacker, who could recompute it; signing is a separate concern).
    digest: str = ""

    # --- writing -------------------------------------------------------------------------------
    def _fields(self) -> dict:
        data = asdict(self)
        data["inputs"] = [s.to_json() for s in self.inputs]
        data["outputs"] = [s.to_json() for s in self.outputs]
        return data

    @staticmethod
    def _digest_of(data: dict) -> str:
        body = {k: v for k, v in data.items() if k not in ("created", "digest")}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        data = self._fields()
        data["digest"] = self._digest_of(data)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json())
        return path

    # --- reading -------------------------------------------------------------------------------
    @classmethod
    def read(cls, directory) -> "Manifest":
        """Parse ``directory/manifest.json``; ArtifactError if it is missing, not JSON, or another format."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ArtifactError(f"{directory} is not an artifact directory (compile one with `tvmedge compile`)")
        path = directory / MANIFEST_NAME
        if not path.is_file():
            raise ArtifactError(f"{directory} has no {MANIFEST_NAME}; it is not a tvmedge artifact")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ArtifactError(f"{path} is not valid JSON (corrupt or edited): {err}") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(f"{path} is not a {FORMAT} manifest")
        if data.get("digest") != cls._digest_of(data):
            raise ArtifactError(f"{path} was modified after it was built (its digest does not match); rebuild the artifact")
        if data.get("format_version") not in READABLE_VERSIONS:
            raise ArtifactError(
                f"{path} has format version {data.get('format_version')}; this runtime reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        try:
            data["inputs"] = [TensorSpec.from_json(s) for s in data["inputs"]]
            data["outputs"] = [TensorSpec.from_json(s) for s in data["outputs"]]
            known = set(cls.__dataclass_fields__)
            return cls(**{k: v for k, v in data.items() if k in known})
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"{path} is missing or has a malformed field: {err}") from err

    def stages(self) -> list:
        """The plan's stages (dicts with ``library``, ``inputs``, ``outputs`` ...) of a multi-partition
        artifact, in execution order; ``[]`` for a single-library artifact."""
        if not isinstance(self.plan, dict) or not self.plan.get("stages"):
            return []
        return list(self.plan["stages"])

    def libraries(self) -> list:
        """Every library the runtime loads: the stages' in plan order, or the one library."""
        return [s["library"] for s in self.stages()] or [self.library]

    def verify(self, directory) -> None:
        """Check every listed file's sha256 (before anything is loaded) and that every library is listed."""
        directory = Path(directory)
        for library in dict.fromkeys([self.library, *self.libraries()]):
            if library not in self.files:
                raise ArtifactError(f"{directory / MANIFEST_NAME} does not list a hash for its library {library}")
        for name, info in sorted(self.files.items()):
            path = directory / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ArtifactError(f"{directory / MANIFEST_NAME} names a file outside the artifact: {name}")
            if not path.is_file():
                raise ArtifactError(f"{path} is missing from the artifact")
            if sha256_file(path) != info.get("sha256"):
                raise ArtifactError(f"{path} does not match the sha256 in its manifest (tampered or corrupt); refusing to load it")

    def check_arch(self, directory) -> None:
        here = machine_arch()
        if self.arch != here:
            raise ArtifactError(
                f"{directory} is built for {self.arch} (board {self.board}); this machine is {here}: "
                f"run it on the board or with --board emu:{self.board}"
            )
