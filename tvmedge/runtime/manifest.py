"""The artifact contract: ``Manifest`` and the types it holds, read and verified on the board before anything is
loaded. The runtime owns the format (the board reads it alone); the compiler imports these types to write it.
Stdlib only. ``tvmedge/native/src/manifest.h`` is the C++ reader of the same types.

An artifact directory holds ``manifest.json`` and the files it lists with their sha256, e.g.::

    out/
      manifest.json     {"format": "tvmedge-artifact", "format_version": 1, "board": "rk3588", ...}
      model.so          the cross-compiled Relax VM executable

Types (each one JSON object in the file):

- :class:`TensorSpec`: name, static shape, dtype of a tensor (model inputs and outputs, tensors between stages);
- :class:`Stage`: one library, the tensors it reads and writes (by name, in call / return order) and where the
  plan placed it;
- :class:`StoredPlan`: the plan as the artifact stores it: its stages in execution order and which of their
  tensors are the model's outputs (``"plan"``, format version 2);
- :class:`BuildInfo`: how the libraries were built (``"build"``);
- :class:`Manifest`: all of the above plus board, architecture, TVM target, file hashes and a digest.

A single-library artifact (format version 1, ``"plan": null``) is read as a one-stage plan: model inputs in,
model outputs out. The optional ``"weights"`` field (a graph of an LM artifact) says that the library's ``main``
takes the listed weights after the model's inputs, from the named safetensors file beside the artifact folder
(:mod:`tvmedge.runtime.weights`); without it the library embeds its weights. Both versions are read; a newer version is refused, so a runtime never runs a partitioned
artifact's first stage as if it were the whole model.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from ..errors import ArtifactError

__all__ = ["Manifest", "TensorSpec", "Stage", "StoredPlan", "BuildInfo", "MANIFEST_NAME", "FORMAT",
           "FORMAT_VERSION", "PARTITIONED_FORMAT_VERSION", "PLAN_FORMAT", "sha256_file", "machine_arch", "check_schema"]

MANIFEST_NAME = "manifest.json"
FORMAT = "tvmedge-artifact"
FORMAT_VERSION = 1  # a single-library artifact
# A multi-partition artifact (``plan`` with stages, one library each) is version 2, so that a runtime that
# knows only version 1 refuses it rather than running its first stage as if it were the whole model.
PARTITIONED_FORMAT_VERSION = 2
READABLE_VERSIONS = (FORMAT_VERSION, PARTITIONED_FORMAT_VERSION)
PLAN_FORMAT = 1  # version of the manifest's "plan" block

_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}


def machine_arch() -> str:
    """This machine's architecture as boards and artifacts name it (``x86_64``, ``aarch64``, ``riscv64``).

    The one definition: the compiler side (native boards, tuning-record keys) imports it from here."""
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
    """Name, shape and dtype of one tensor: a model input or output, or a tensor handed between stages.

    Shapes in an artifact are static (ints); before input shapes are fixed a dim may be a name (``"batch"``).
    """

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


@dataclass(frozen=True)
class Stage:
    """One library of an artifact: what it reads and writes, by name, in call and return order.

    ``unit`` is the compute unit the plan placed it on, ``built_for`` the unit whose target the library uses
    (another one when the plan's unit cannot be built for here: ``fallback`` says so and ``reason`` why).
    """

    library: str
    inputs: tuple  # of TensorSpec: model inputs keep their names; intermediates are named by their Relax variable
    outputs: tuple  # of TensorSpec
    index: int = 0
    unit: Optional[str] = None
    built_for: Optional[str] = None
    target: Optional[dict] = None
    fallback: Optional[str] = None
    reason: Optional[str] = None
    ops: tuple = ()
    predicted: Optional[dict] = None  # the plan's cost of this stage: compute_ms, transfer_in_ms, total_ms
    tuning: Optional[dict] = None  # schedule provenance of this library

    @property
    def input_names(self) -> list:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list:
        return [spec.name for spec in self.outputs]

    def to_json(self) -> dict:
        return {"index": self.index, "unit": self.unit, "built_for": self.built_for, "target": self.target,
                "fallback": self.fallback, "reason": self.reason, "library": self.library, "ops": list(self.ops),
                "inputs": [s.to_json() for s in self.inputs], "outputs": [s.to_json() for s in self.outputs],
                "predicted": self.predicted, "tuning": self.tuning}

    @classmethod
    def from_json(cls, data: dict) -> "Stage":
        return cls(library=str(data["library"]), inputs=tuple(TensorSpec.from_json(s) for s in data["inputs"]),
                   outputs=tuple(TensorSpec.from_json(s) for s in data["outputs"]), index=int(data.get("index", 0)),
                   unit=data.get("unit"), built_for=data.get("built_for"), target=data.get("target"),
                   fallback=data.get("fallback"), reason=data.get("reason"), ops=tuple(data.get("ops") or ()),
                   predicted=data.get("predicted"), tuning=data.get("tuning"))


@dataclass(frozen=True)
class StoredPlan:
    """The plan as an artifact stores it: stages run one after another, tensors handed over by name.

    ``outputs`` names the stage tensors that are the model's outputs, in the model's order. The rest
    (objective, algorithm, predicted costs, op assignment) says how the partitioner chose it.
    """

    stages: tuple  # of Stage, in execution order
    outputs: tuple  # of tensor names
    objective: Optional[str] = None
    algorithm: Optional[str] = None
    board: Optional[str] = None
    host: Optional[str] = None
    correction: Optional[str] = None
    predicted: dict = field(default_factory=dict)
    assignment: dict = field(default_factory=dict)
    notes: tuple = ()
    execution: str = "stages run one after another in plan order, tensors handed over by name"
    format: int = PLAN_FORMAT

    def to_json(self) -> dict:
        return {"format": self.format, "objective": self.objective, "algorithm": self.algorithm, "board": self.board,
                "host": self.host, "correction": self.correction, "predicted": self.predicted,
                "stages": [s.to_json() for s in self.stages], "outputs": list(self.outputs),
                "assignment": dict(self.assignment), "notes": list(self.notes), "execution": self.execution}

    @classmethod
    def from_json(cls, data: dict) -> "StoredPlan":
        stages = []
        for index, stage in enumerate(data["stages"]):
            try:
                stages.append(Stage.from_json(stage))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"stage {index} of the plan is malformed ({type(err).__name__}: {err})") from err
        return cls(stages=tuple(stages), outputs=tuple(str(n) for n in data["outputs"]),
                   objective=data.get("objective"), algorithm=data.get("algorithm"), board=data.get("board"),
                   host=data.get("host"), correction=data.get("correction"), predicted=data.get("predicted") or {},
                   assignment=data.get("assignment") or {}, notes=tuple(data.get("notes") or ()),
                   execution=data.get("execution", cls.execution), format=int(data.get("format", PLAN_FORMAT)))


@dataclass(frozen=True)
class BuildInfo:
    """How the libraries were built. Keys this runtime does not know are kept in ``extra`` (and written back)."""

    input_shapes: dict = field(default_factory=dict)
    opt_level: int = 3
    cross_compiler: Optional[str] = None
    folding: str = ""
    partitions: Optional[int] = None  # number of stages of a partitioned artifact
    quantization: Optional[dict] = None  # how the weights were quantized and kept quantized
    frozen_inputs: Optional[dict] = None  # model inputs made constants at compile time -> their values
    # bytes: weights, planned activations, kernel workspace (see tvmedge.compiler.layers), per stage when partitioned
    memory: Optional[dict] = None
    exposed_layers: Optional[int] = None  # a debug build: this many intermediate ONNX tensors are also outputs
    # the board's CPU clusters: unit -> {"cpus": [Linux CPU numbers], "role": "big"|"little"|None} (--cores)
    cpu_clusters: Optional[dict] = None
    # inputs the library updates in place (an LM decode graph's KV caches): after a run, such an input's tensor
    # holds the matching output (the runtime hands it on as the next step's input)
    updated_in_place: Optional[list] = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = {"input_shapes": dict(self.input_shapes), "opt_level": self.opt_level,
                "cross_compiler": self.cross_compiler, "folding": self.folding}
        if self.partitions is not None:
            data["partitions"] = self.partitions
        if self.quantization is not None:
            data["quantization"] = self.quantization
        if self.frozen_inputs:
            data["frozen_inputs"] = self.frozen_inputs
        if self.memory is not None:
            data["memory"] = self.memory
        if self.exposed_layers is not None:
            data["exposed_layers"] = self.exposed_layers
        if self.cpu_clusters:
            data["cpu_clusters"] = self.cpu_clusters
        if self.updated_in_place:
            data["updated_in_place"] = list(self.updated_in_place)
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "BuildInfo":
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


@dataclass
class Manifest:
    """The artifact's description. ``created`` is the only field that differs between identical builds."""

    board: str
    arch: str
    triple: str
    target: dict
    inputs: list  # of TensorSpec
    outputs: list  # of TensorSpec
    library: str  # the (first) library
    files: dict = field(default_factory=dict)  # file name -> {"sha256": ..., "bytes": ...}
    source_model: dict = field(default_factory=dict)
    build: BuildInfo = field(default_factory=BuildInfo)
    tvm_version: str = ""
    tvmedge_version: str = ""
    tvm_ffi_version: str = ""  # with tvm_version, what the loader pins (absent in artifacts built before the pin)
    # who built it and from what: key id of the signing key (None when unsigned), the source model's sha256, the
    # compiler's versions. Covered by the digest, so a signature covers it too.
    provenance: Optional[dict] = None
    # libraries encrypted at rest: {"algorithm": "chacha20-poly1305", "key_id": ..., "files": [names]}
    encryption: Optional[dict] = None
    plan: Optional[StoredPlan] = None  # a partitioned artifact's stages (format version 2)
    # weights kept outside the library (an LM artifact's sub-artifact): {"file": name of the safetensors file in
    # the folder that holds this artifact, "names": [the tensors main takes after its inputs, in order]}. Each
    # name is the sha256 of its tensor (:mod:`tvmedge.runtime.weights`), so the digest pins the weights' content.
    weights: Optional[dict] = None
    tuning: Optional[dict] = None  # schedule provenance (of every library, when they share it)
    created: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    # sha256 of every other field but ``created``: catches an edited or corrupted manifest (not an
    # attacker, who could recompute it; signing is a separate concern).
    digest: str = ""

    # --- writing -------------------------------------------------------------------------------
    def _fields(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for optional in ("tvm_ffi_version", "provenance", "encryption", "weights"):  # absent rather than empty: older readers' digests agree
            if not data[optional]:
                del data[optional]
        data["inputs"] = [s.to_json() for s in self.inputs]
        data["outputs"] = [s.to_json() for s in self.outputs]
        data["build"] = self.build.to_json()
        data["plan"] = None if self.plan is None else self.plan.to_json()
        return json.loads(json.dumps(data))  # plain JSON values (tuples -> lists), as a reader sees them

    @staticmethod
    def _digest_of(data: dict) -> str:
        body = {k: v for k, v in data.items() if k not in ("created", "digest")}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        data = self._fields()
        data["digest"] = self._digest_of(data)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> Path:
        """Write ``directory/manifest.json``; ``digest`` is set to the one written."""
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json())
        self.digest = self._digest_of(self._fields())
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
        data = _parse_bounded(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(f"{path} is not a {FORMAT} manifest")
        problem = check_schema(data)
        if problem:
            raise ArtifactError(f"{path} is malformed: {problem}")
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
            data["build"] = BuildInfo.from_json(data.get("build") or {})
            plan = data.get("plan")
            # a plan without stages (written before partitioned artifacts existed) describes no libraries
            data["plan"] = StoredPlan.from_json(plan) if isinstance(plan, dict) and plan.get("stages") else None
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ArtifactError(f"{path} is missing or has a malformed field: {err}") from err

    def stages(self) -> list:
        """The :class:`Stage` list the runtime runs, in order: a partitioned artifact's plan, or the one library
        as one stage from the model's inputs to its outputs."""
        if self.plan is not None:
            return list(self.plan.stages)
        return [Stage(library=self.library, inputs=tuple(self.inputs), outputs=tuple(self.outputs))]

    def output_names(self) -> list:
        """Which stage tensors are the model's outputs, in the model's order."""
        return list(self.plan.outputs) if self.plan is not None else [s.name for s in self.outputs]

    def libraries(self) -> list:
        """Every library the runtime loads, in stage order."""
        return [s.library for s in self.stages()]

    def verify(self, directory) -> None:
        """Check every listed file's sha256 (before anything is loaded) and that every library is listed.

        A listed file must be a regular file inside the artifact folder: a symlink pointing out of it (to a
        library an attacker placed elsewhere, whose hash they also wrote) is refused, not followed."""
        directory = Path(directory)
        for library in dict.fromkeys([self.library, *self.libraries()]):
            if library not in self.files:
                raise ArtifactError(f"{directory / MANIFEST_NAME} does not list a hash for its library {library}")
        root = directory.resolve()
        for name, info in sorted(self.files.items()):
            path = directory / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ArtifactError(f"{directory / MANIFEST_NAME} names a file outside the artifact: {name}")
            if path.is_symlink() or not path.resolve().is_relative_to(root):
                raise ArtifactError(f"{path} is a symbolic link; an artifact's files must be regular files inside it, refusing to load it")
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


# --- schema --------------------------------------------------------------------------------------------------
# Written here rather than with a JSON-Schema library: the board-side runtime imports the stdlib only, and the
# checks are few. Every field a reader uses is typed; sizes and nesting are bounded, so a hostile manifest is one
# ArtifactError line, never a traceback or an allocation it chose.
MAX_MANIFEST_BYTES = 8 << 20
MAX_DEPTH = 32
_MAX_DIM = 1 << 40
_HEX64 = set("0123456789abcdef")
_NONE = type(None)
_TOP = {  # field -> (allowed types, required)
    "format": (str, True), "format_version": (int, True), "board": (str, True), "arch": (str, True),
    "triple": (str, True), "target": (dict, True), "inputs": (list, True), "outputs": (list, True),
    "library": (str, True), "files": (dict, True), "digest": (str, True), "source_model": (dict, False),
    "build": (dict, False), "tvm_version": (str, False), "tvmedge_version": (str, False),
    "tvm_ffi_version": (str, False), "provenance": ((dict, _NONE), False), "encryption": ((dict, _NONE), False), "plan": ((dict, _NONE), False),
    "weights": ((dict, _NONE), False),
    "tuning": ((dict, _NONE), False), "created": (str, False),
}
_BUILD = {"input_shapes": (dict,), "opt_level": (int,), "cross_compiler": (str, _NONE), "folding": (str,),
          "partitions": (int, _NONE), "quantization": (dict, _NONE), "frozen_inputs": (dict, _NONE)}


def _parse_bounded(path: Path):
    """``path`` as JSON; ArtifactError for an oversized file, bad JSON or nesting too deep for a reader."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{path} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; it is not a manifest tvmedge wrote")
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError as err:
        raise ArtifactError(f"{path} is malformed: nested too deeply") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path} is not valid JSON (corrupt or edited): {err}") from err


def _is(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:  # JSON true is not a number here
        return False
    return isinstance(value, types)


def _depth(value) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
    return deepest


def _tensor_problem(spec, where: str) -> Optional[str]:
    if not isinstance(spec, dict):
        return f"{where} must be an object with name, shape and dtype"
    if not _is(spec.get("name"), str) or not _is(spec.get("dtype"), str):
        return f"{where}: name and dtype must be strings"
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) > 16 or not all(_is(d, int) and 0 <= d < _MAX_DIM for d in shape):
        return f"{where}: shape must be a list of at most 16 non-negative integers"
    return None


def check_schema(data: dict) -> Optional[str]:
    """What is wrong with a parsed manifest's structure (one phrase naming the field), or None when it is well-formed."""
    if _depth(data) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    for key, (types, required) in _TOP.items():
        if key not in data:
            if required:
                return f"field '{key}' is missing"
            continue
        if not _is(data[key], types):
            names = "/".join(t.__name__ if t is not _NONE else "null" for t in (types if isinstance(types, tuple) else (types,)))
            return f"field '{key}' must be {names}, not {type(data[key]).__name__}"
    for key in ("inputs", "outputs"):
        if len(data[key]) > 4096:
            return f"field '{key}' lists more than 4096 tensors"
        for index, spec in enumerate(data[key]):
            problem = _tensor_problem(spec, f"{key}[{index}]")
            if problem:
                return problem
    for name, info in data["files"].items():
        if not isinstance(info, dict) or not _is(info.get("sha256"), str) or len(info["sha256"]) != 64 \
                or not set(info["sha256"]) <= _HEX64 or not _is(info.get("bytes", 0), int):
            return f"files['{name[:80]}'] must be {{\"sha256\": <64 hex digits>, \"bytes\": <int>}}"
    encryption = data.get("encryption")
    if encryption is not None and (not _is(encryption.get("algorithm"), str) or not _is(encryption.get("key_id"), str)
                                   or not isinstance(encryption.get("files"), list)
                                   or not all(_is(n, str) for n in encryption["files"])):
        return "encryption must name an algorithm, a key_id and the encrypted files"
    weights = data.get("weights")
    if weights is not None:
        file, names = weights.get("file"), weights.get("names")
        if not _is(file, str) or not file or "/" in file or "\\" in file or file in (".", "..") \
                or not isinstance(names, list) or not all(_is(n, str) and len(n) == 65 and n[0] == "w"
                                                          and set(n[1:]) <= _HEX64 for n in names):
            return "weights must name a file beside the artifact and list its tensors as w<sha256>"
    for key, types in _BUILD.items():
        if key in (data.get("build") or {}) and not _is(data["build"][key], types):
            return f"build.{key} has the wrong type ({type(data['build'][key]).__name__})"
    plan = data.get("plan")
    if isinstance(plan, dict) and plan.get("stages"):
        if not isinstance(plan["stages"], list) or not isinstance(plan.get("outputs"), list):
            return "plan.stages and plan.outputs must be lists"
        for index, stage in enumerate(plan["stages"]):
            if not isinstance(stage, dict) or not _is(stage.get("library"), str) or not _is(stage.get("index", 0), int) \
                    or not isinstance(stage.get("inputs"), list) or not isinstance(stage.get("outputs"), list):
                return f"plan.stages[{index}] must have a library (string), an index and input/output lists"
            for key in ("inputs", "outputs"):
                for number, spec in enumerate(stage[key]):
                    problem = _tensor_problem(spec, f"plan.stages[{index}].{key}[{number}]")
                    if problem:
                        return problem
        if not all(_is(n, str) for n in plan["outputs"]):
            return "plan.outputs must be tensor names"
    return None
