"""``Artifact``: an artifact directory written by the compiler (library + ``manifest.json``).

The manifest format belongs to the runtime (``tvmedge.runtime.manifest``); this module fills it in.
Identical inputs give a byte-identical manifest except for ``created``.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..devices.board import Board
from ..errors import ArtifactError
from ..runtime.manifest import MANIFEST_NAME, BuildInfo, Manifest, sha256_file
from .cross import export_library
from .lower import build_executable

__all__ = ["Artifact", "compile_artifact", "check_destination", "LIBRARY_NAME"]

LIBRARY_NAME = "model.so"


@dataclass
class Artifact:
    """A written artifact: its directory and manifest."""

    path: Path
    manifest: Manifest

    def summary(self) -> dict:
        m = self.manifest
        lib = m.files[m.library]
        return {
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
        }


def compile_artifact(imported, board: Board, out, *, mod=None, tuning=None, opt_level: int = 3,
                     progress=None) -> Artifact:
    """Build ``imported`` (an ``ImportedModel``) for ``board`` and write the artifact directory ``out``.

    ``mod`` replaces ``imported.mod`` (e.g. after schedules were applied); ``tuning`` is its provenance.

    The library is built in a temporary folder and moved in only when it is complete, so a failed build
    leaves an existing artifact untouched; a non-empty folder that is not an artifact is never overwritten.
    """
    import tvm

    out = Path(out)
    check_destination(out)
    target = board.tvm_target()
    executable = build_executable(imported.mod if mod is None else mod, target, opt_level=opt_level)
    with tempfile.TemporaryDirectory(prefix="tvmedge-build-") as tmp:
        if progress:
            progress(f"linking {LIBRARY_NAME} with {board.cross_compiler or 'the host compiler'}")
        library = export_library(executable, Path(tmp) / LIBRARY_NAME, board)
        manifest = Manifest(
            board=board.name,
            arch=board.arch,
            triple=board.triple,
            target=target,
            inputs=list(imported.inputs),
            outputs=list(imported.outputs),
            library=LIBRARY_NAME,
            files={LIBRARY_NAME: {"sha256": sha256_file(library), "bytes": library.stat().st_size}},
            source_model={"file": Path(imported.source_path).name, "sha256": imported.source_sha256},
            build=BuildInfo(input_shapes=dict(sorted(imported.input_shapes.items())), opt_level=opt_level,
                            cross_compiler=board.cross_compiler, folding=_folding_tool()),
            tuning=tuning,
            tvm_version=tvm.__version__,
            tvmedge_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        out.mkdir(parents=True, exist_ok=True)
        shutil.move(str(library), out / LIBRARY_NAME)
        manifest.write(out)
    return Artifact(out, manifest)


def check_destination(out: Path) -> None:
    """ArtifactError unless ``out`` is absent, empty, or an artifact (which is then replaced)."""
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
