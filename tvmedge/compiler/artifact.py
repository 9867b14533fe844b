"""``Artifact``: an artifact directory written by the compiler (libraries + ``manifest.json``).

The manifest format belongs to the runtime (:mod:`tvmedge.runtime.manifest`); :func:`build_artifact` builds
every stage of a :class:`~tvmedge.compiler.stages.StagePlan` the same way (schedule, lower, link) and writes the
manifest once. Identical inputs give a byte-identical manifest except for ``created``.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .. import __version__
from ..devices.board import cpu_clusters
from ..errors import ArtifactError
from ..runtime.manifest import (FORMAT_VERSION, MANIFEST_NAME, PARTITIONED_FORMAT_VERSION, BuildInfo, Manifest, Stage,
                                StoredPlan, sha256_file)
from ..runtime.layers import LAYERS_NAME, KernelCall, LayerMap, StageLayers
from .cross import export_library
from .int8 import arrange_for_dot_product
from .signing import encrypt_libraries, sign_artifact, signing_key_id
from .layers import kernel_calls, memory_plan, recording_pipeline, weight_bytes, workspace_bytes
from .lower import build_executable
from .weights import WEIGHTS_FILE, lifting_pipeline

__all__ = ["Artifact", "build_artifact", "check_destination", "LIBRARY_NAME"]

LIBRARY_NAME = "model.so"  # the library of a single-stage artifact (a partitioned one has stage0.so, stage1.so ...)


@dataclass
class Artifact:
    """A written artifact: its directory and manifest."""

    path: Path
    manifest: Manifest
    # external_weights builds: the lifted weights (name -> numpy array) the caller writes (not kept on disk here)
    weights: Optional[dict] = None

    def summary(self) -> dict:
        m = self.manifest
        lib = m.files[m.library]
        data = {
            "artifact": str(self.path),
            "board": m.board,
            "arch": m.arch,
            "triple": m.triple,
            "target": m.target,
            "library": m.library,
            "library_bytes": lib["bytes"],
            "library_sha256": lib["sha256"],
            "inputs": [s.to_json() for s in m.inputs],
            "outputs": [s.to_json() for s in m.outputs],
            "source_model": m.source_model,
            "tuning": m.tuning,
            "provenance": m.provenance,
            "signed": (m.provenance or {}).get("key_id") is not None,
            "encryption": m.encryption,
        }
        if m.weights:
            data["weights"] = {"file": m.weights["file"], "tensors": len(m.weights["names"])}
        if m.plan is not None:
            data["plan"] = m.plan.to_json()
        if m.build.quantization:
            data["quantization"] = m.build.quantization
        if m.build.frozen_inputs:
            data["frozen_inputs"] = m.build.frozen_inputs
        if m.build.memory:
            data["memory"] = m.build.memory
        if m.build.exposed_layers:
            data["exposed_layers"] = m.build.exposed_layers
        return data


def build_artifact(imported, stages, out, *, tuning=None, opt_level: int = 3, quantization: Optional[dict] = None,
                   progress: Optional[Callable[[str], None]] = None, tune_progress=None, signing_key=None,
                   encryption_key: Optional[bytes] = None, external_weights: bool = False) -> Artifact:
    """Schedule, lower and link every stage of ``stages`` (a :class:`~tvmedge.compiler.stages.StagePlan` of
    ``imported``, an ``ImportedModel``) and write the artifact directory ``out`` with its manifest -> ``Artifact``.

    ``tuning`` is a :class:`tvmedge.tune.auto.TuningOptions`; ``quantization`` the record of what quantization
    did (the manifest's ``build.quantization``). The whole artifact (libraries and manifest) is written in a
    temporary folder beside ``out`` and put in place with one rename, so a failed or killed build leaves an
    existing artifact untouched; a non-empty folder that is not an artifact is never overwritten.

    ``external_weights``: the weights are lifted out of the library (:mod:`tvmedge.compiler.weights`): the
    manifest's ``weights`` lists them by name, and the returned ``Artifact.weights`` holds them for the caller to
    write (an LM artifact writes both graphs' weights as one file). One library, unencrypted, only.
    """
    from ..tune.auto import TuningOptions, auto_schedule

    progress = progress or (lambda message: None)
    tuning = tuning or TuningOptions()
    out = Path(out)
    check_destination(out)
    if external_weights and (stages.partitioned or encryption_key is not None):
        raise ArtifactError("weights outside the library need one unencrypted library (no --partition, no --encrypt)")
    lifted: dict = {}
    built, files, layer_stages, memory = [], {}, [], []
    out.parent.mkdir(parents=True, exist_ok=True)
    # The whole artifact is written in a hidden folder beside ``out`` (same file system) and put in place with
    # one rename: a kill at any moment leaves either the previous artifact or the new one, never a mix.
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tvmedge-build-"))
    try:
        for stage in stages.stages:
            name = f"stage{stage.index}.so" if stages.partitioned else LIBRARY_NAME
            what = (f"stage{stage.index} ({len(stage.ops)} ops on {stage.unit}"
                    + (f", built for {stage.built_for}" if stage.fallback else "") + ")") if stages.partitioned \
                else stage.target.name
            progress(f"scheduling {what} (records, search {tuning.search})")
            mod = arrange_for_dot_product(stage.mod, stage.target.tvm_target)  # VNNI: u8 x s8; SDOT: s8 x s8
            scheduled, provenance = auto_schedule(mod, stage.target, tuning, progress=tune_progress)
            progress(f"building {name} for {stage.target.describe()}, linking with "
                     f"{stage.target.board.cross_compiler or 'the host compiler'}")
            lowered: dict = {}
            pipeline = recording_pipeline(lowered)
            if external_weights:
                pipeline = lifting_pipeline(lifted, pipeline)
            executable = build_executable(scheduled, stage.target, opt_level=opt_level, relax_pipeline=pipeline)
            layer_stages.append(_stage_layers(stage, mod, scheduled, imported))
            memory.append({"weight_bytes": weight_bytes(scheduled), "workspace_bytes": workspace_bytes(scheduled),
                           **memory_plan(lowered["mod"])})
            library = export_library(executable, tmp / name, stage.target)
            files[name] = {"sha256": sha256_file(library), "bytes": library.stat().st_size}
            built.append(Stage(
                library=name, inputs=tuple(stage.inputs), outputs=tuple(stage.outputs), index=stage.index,
                unit=stage.unit, built_for=stage.built_for, target=stage.target.spec, fallback=stage.fallback,
                reason=stage.reason, ops=tuple(stage.ops), predicted=stage.predicted, tuning=provenance))
        layers = LayerMap(tuple(layer_stages)).write(tmp)
        libraries = list(files)  # encrypted below; the layer map is not secret and profile reads it as is
        files[LAYERS_NAME] = {"sha256": sha256_file(layers), "bytes": layers.stat().st_size}
        encryption = None
        if encryption_key is not None:  # the hashes (and the signature) then cover what is on disk: ciphertext
            progress(f"encrypting {', '.join(libraries)} (ChaCha20-Poly1305)")
            encryption = encrypt_libraries(tmp, libraries, encryption_key)
            files = {name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size} for name in files}
        manifest = _manifest(imported, stages, built, files, opt_level=opt_level, quantization=quantization,
                             signer=signing_key_id(signing_key), memory=_memory_record(memory))
        manifest.encryption = encryption
        if external_weights:
            manifest.weights = {"file": WEIGHTS_FILE, "names": list(lifted["weights"])}
        progress(f"writing {out}/ ({len(files)} {'libraries' if len(files) > 1 else 'library'} + {MANIFEST_NAME})")
        for leftover in [p for p in tmp.iterdir() if p.name not in files]:  # the linker's scratch files
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        manifest.write(tmp)
        if signing_key is not None:  # over the digest just written, which covers every field and file hash
            progress(f"signing with key {signing_key_id(signing_key)}")
            sign_artifact(tmp, manifest.digest, signing_key)
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the build folder, or after the exchange the previous artifact
    return Artifact(out, manifest, lifted.get("weights"))


def _install(built: Path, out: Path) -> None:
    """Put the complete artifact folder ``built`` at ``out`` in one step; afterwards ``built`` holds what ``out``
    held (removed by the caller).

    A new ``out`` is one rename. An existing one (an artifact, or an empty folder) is swapped with
    ``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15), so there is no moment without a valid artifact at ``out``;
    where that call is missing, two renames (a kill between them leaves the previous artifact beside ``out``,
    named ``.<out>.tvmedge-build-*``, intact)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(built, 0o777 & ~umask)  # mkdtemp made it private
    if not out.exists():
        os.rename(built, out)
        return
    if _exchange(built, out):
        return
    previous = built.with_name(built.name + "-previous")
    os.rename(out, previous)
    os.rename(built, out)
    os.rename(previous, built)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux's renameat2(RENAME_EXCHANGE); False where it is not available."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange)
    return result == 0


def _stage_layers(stage, mod, scheduled, imported) -> StageLayers:
    """The stage's kernel calls (``mod``: the stage's module as scheduled) tied to ONNX layers; an unexpected
    failure costs the map, never the build."""
    try:
        calls, note = kernel_calls(mod, scheduled, getattr(imported, "layer_of_var", None) or {},
                                   stage.target.tvm_target, getattr(imported, "binding_signatures", None))
    except Exception as err:  # noqa: BLE001 (a pass TVM cannot run on this module: the map is unknown)
        calls, note = None, f"no layer map: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    if calls is None:
        return StageLayers(stage.index, None, note)
    return StageLayers(stage.index, tuple(KernelCall(c["kernel"], tuple(c["layers"]), c["flops"], c["integer"])
                                          for c in calls))


def _memory_record(stages: list) -> dict:
    """The manifest's ``build.memory``: totals over the stages (activations are planned per stage and all stages'
    storages stay allocated, so they add up), and each stage's figures when there are several."""
    def total(key):
        values = [s[key] for s in stages]
        return None if any(v is None for v in values) else int(sum(values))

    record = {"weight_bytes": total("weight_bytes"), "activation_bytes": total("activation_bytes"),
              "workspace_bytes": max(s["workspace_bytes"] for s in stages),
              "method": "weights: constants of main; activations: storages planned by Relax StaticPlanBlockMemory "
                        "(outputs included); workspace: largest kernel-internal buffers"}
    if len(stages) > 1:
        record["stages"] = stages
    return record


def _manifest(imported, stages, built: list, files: dict, *, opt_level: int, quantization,
              signer: Optional[str] = None, memory: Optional[dict] = None) -> Manifest:
    """The manifest of the built stages: a single library is format version 1 (no plan), a plan's stages
    version 2 with the plan stored. ``signer`` is the signing key's id (provenance)."""
    import tvm
    import tvm_ffi

    main = stages.target  # the board's own target: the manifest's (a plan's stages may be built for other units)
    plan = StoredPlan(stages=tuple(built), outputs=tuple(stages.outputs), **stages.partition) \
        if stages.partitioned else None
    return Manifest(
        board=main.name, arch=main.arch, triple=main.triple, target=main.spec,
        inputs=list(imported.inputs), outputs=list(imported.outputs),
        library=built[0].library, files=files,
        source_model={"file": Path(imported.source_path).name, "sha256": imported.source_sha256},
        build=BuildInfo(input_shapes=dict(sorted(imported.input_shapes.items())), opt_level=opt_level,
                        frozen_inputs=dict(sorted(imported.frozen_inputs.items())) or None,
                        cross_compiler=main.board.cross_compiler, folding=_folding_tool(),
                        partitions=len(built) if plan is not None else None, quantization=quantization,
                        memory=memory, exposed_layers=getattr(imported, "exposed_layers", None),
                        cpu_clusters=cpu_clusters(main.board),
                        updated_in_place=list(imported.updated_in_place) or None),
        # the schedule provenance of every library, when they share it
        tuning=built[0].tuning if len({str(s.tuning) for s in built}) == 1 else None,
        plan=plan, format_version=PARTITIONED_FORMAT_VERSION if plan is not None else FORMAT_VERSION,
        tvm_version=tvm.__version__, tvmedge_version=__version__, tvm_ffi_version=tvm_ffi.__version__,
        provenance={"key_id": signer, "source_model_sha256": imported.source_sha256,
                    "compiler": {"tvmedge": __version__, "tvm": tvm.__version__, "tvm_ffi": tvm_ffi.__version__,
                                 "folding": _folding_tool()}},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def check_destination(out: Path) -> None:
    """ArtifactError unless ``out`` is absent, empty, or an artifact (which is then replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise ArtifactError(f"output folder {out} is not empty and holds no tvmedge artifact; choose another -o")


def _folding_tool() -> str:
    try:
        import onnxslim

        return f"onnxslim {onnxslim.__version__}"
    except (ImportError, AttributeError):
        return "onnxslim"
