"""Compiling a language model: an LM package folder (two ONNX graphs + ``lm.json``) in, an LM artifact out.

An LM package is what a model exporter writes (``examples/llm/gpt.py`` does)::

    model/
      lm.json        {"format": "tvmedge-lm", "prefill": "prefill.onnx", "decode": "decode.onnx", "context": T,
                      "prefill_length": P, "cache": [[past input, present output], ...], "tokenizer": {...}}
      prefill.onnx   tokens [1, P] int64, length [1] int64 -> logits [1, V], present caches
      decode.onnx    tokens [1, 1] int64, position [1] int64, past caches -> logits [1, V], present caches

Each graph goes through the one compile pipeline (:func:`tvmedge.compiler.pipeline.compile_model`: the same
import, quantization, schedules and linking as any model) into a sub-artifact; the LM artifact
(:mod:`tvmedge.runtime.lm`) is those two folders, one ``weights.safetensors`` and an ``lm.json`` that pins their
manifest digests. The two graphs compute with the same weights, so their libraries are built without them
(:mod:`tvmedge.compiler.weights`: constants lifted to parameters named by content) and the weights of both are
written once; a weight only one graph has (folded differently) is simply one more entry. Matrix-vector products
(the decode graph's every projection) get the GEMV schedule (:mod:`tvmedge.tune.gemv`). With ``--encrypt`` the
weights stay inside the encrypted libraries (the file would be plaintext). Like a single artifact it is built
beside ``out`` and put in place with one rename.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from ..errors import ArtifactError, ModelError
from ..runtime.lm import GRAPHS, LM_MANIFEST, LMManifest
from .artifact import Artifact, _install
from .weights import WEIGHTS_FILE, write_safetensors

__all__ = ["LMArtifact", "LM_PACKAGE_FORMAT", "is_lm_package", "read_package", "compile_lm", "quantize_package"]

LM_PACKAGE_FORMAT = "tvmedge-lm"


def is_lm_package(path) -> bool:
    """Is ``path`` a folder meant as an LM package? ModelError for a folder without ``lm.json`` (a folder is
    never an ONNX model)."""
    path = Path(path)
    if path.is_dir() and not (path / LM_MANIFEST).is_file():
        raise ModelError(f"{path} is a folder without {LM_MANIFEST}; give an ONNX file or an LM package folder "
                         "(prefill.onnx, decode.onnx, lm.json)")
    return path.is_dir()


def read_package(path) -> dict:
    """``lm.json`` of an LM package, checked: ModelError naming what is missing or malformed."""
    path = Path(path)
    try:
        data = json.loads((path / LM_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ModelError(f"cannot read {path / LM_MANIFEST}: {err}") from err
    if not isinstance(data, dict) or data.get("format") != LM_PACKAGE_FORMAT:
        raise ModelError(f"{path / LM_MANIFEST} is not an LM package manifest (format '{LM_PACKAGE_FORMAT}')")
    for key in ("prefill", "decode", "context", "prefill_length", "cache", "tokenizer"):
        if key not in data:
            raise ModelError(f"{path / LM_MANIFEST} has no '{key}'")
    for graph in GRAPHS:
        if not (path / str(data[graph])).is_file():
            raise ModelError(f"{path / LM_MANIFEST} names {graph} graph {data[graph]}, which is not in {path}")
    return data


def quantize_package(package, config, out, *, progress: Optional[Callable[[str], None]] = None):
    """Quantize both graphs of an LM package with one config into a new package ``out`` (same ``lm.json``, the
    quantization recorded in it) -> the decode graph's ``QuantResult`` (its report: what generation reads)."""
    from ..quant.quantize import quantize

    package, out = Path(package), Path(out)
    data = read_package(package)
    if out.resolve() == package.resolve():
        raise ModelError(f"-o {out} is the package being quantized; write the quantized package elsewhere")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / LM_MANIFEST).is_file())):
        raise ArtifactError(f"output folder {out} is not empty and holds no LM package; choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    from ..quant.config import load_config

    config = config if not isinstance(config, (str, Path)) else load_config(config)
    results, int4 = {}, None
    for graph in GRAPHS:
        if progress:
            progress(f"quantizing the {graph} graph ({data[graph]})")
        # mixed: the bits are chosen on the prefill graph (calibration prompts) and the decode graph gets the same
        # choice, so that both graphs compute with the same weights (and the artifact stores them once)
        results[graph] = quantize(str(package / str(data[graph])), config, int4_layers=int4)
        if config.bit_width == "mixed" and int4 is None:
            int4 = {row["name"] for row in results[graph].report.layers if row.get("bits") == 4}
        results[graph].save(out / str(data[graph]))
    if int4 is not None:
        bits = {g: {row["name"]: row["bits"] for row in results[g].report.layers} for g in GRAPHS}
        if bits["prefill"] != bits["decode"]:
            raise ModelError(f"{package}: the prefill and decode graphs do not have the same weight layers, so one "
                             f"mixed-precision choice cannot serve both; quantize with bit_width 4 or 8")
        results["decode"].report.mixed = results["prefill"].report.mixed  # where the choice was measured
    data["quantization"] = results["decode"].report.config
    (out / LM_MANIFEST).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return results["decode"]


@dataclass
class LMArtifact:
    """A written LM artifact: its folder, ``lm.json`` and the two sub-artifacts."""

    path: Path
    lm: LMManifest
    prefill: Artifact
    decode: Artifact

    def summary(self) -> dict:
        weights = [a.manifest.build.memory.get("weight_bytes") if a.manifest.build.memory else None
                   for a in (self.prefill, self.decode)]
        return {"artifact": str(self.path), "kind": "lm", "board": self.decode.manifest.board,
                "context": self.lm.context, "prefill_length": self.lm.prefill_length,
                "vocab": len(self.lm.tokenizer.get("vocab", [])), "layers_cached": len(self.lm.cache),
                "weight_bytes": dict(zip(GRAPHS, weights)), "weights_file": self.lm.weights,
                "graphs": {"prefill": self.prefill.summary(), "decode": self.decode.summary()}}


def compile_lm(package, board, out, *, progress: Optional[Callable[[str], None]] = None, **options) -> LMArtifact:
    """Compile both graphs of the LM package ``package`` for ``board`` into the LM artifact ``out``.
    ``options`` are :func:`~tvmedge.compiler.pipeline.compile_model`'s (``quant``, ``tuning``, ``sign``, ...)."""
    from ..devices.target import CompileTarget
    from .pipeline import compile_model

    package, out = Path(package), Path(out)
    data = read_package(package)
    if options.get("plan") is not None or options.get("expose_layers"):
        raise ModelError("--partition and --expose-layers take single-graph models, not an LM package")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / LM_MANIFEST).is_file())):
        raise ArtifactError(f"output folder {out} is not empty and holds no LM artifact; choose another -o")
    target = CompileTarget.resolve(board)  # once, for both graphs
    from .signing import load_encryption_key

    external = load_encryption_key(options.get("encrypt")) is None  # encrypted: weights stay in the libraries
    from ..tune.auto import TuningOptions

    # decode is a chain of matrix-vector products: they get the GEMV schedule (tvmedge.tune.gemv)
    tuning = options.get("tuning") or TuningOptions()
    options["tuning"] = replace(tuning, gemv=True) if tuning.gemv is None else tuning  # (False: benchmarks)
    progress = progress or (lambda message: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tvmedge-build-"))
    try:
        quant = options.get("quant")
        if quant is not None:
            from ..quant.config import QuantConfig, load_config

            config = quant if isinstance(quant, QuantConfig) else load_config(quant)
            if config.bit_width == "mixed":  # one choice of bits for both graphs: quantize the package as a whole
                progress("quantizing both graphs (mixed precision: bits chosen on the prefill graph)")
                quantize_package(package, config, tmp / "quantized-package")
                package, options = tmp / "quantized-package", {**options, "quant": None}
        built = {}
        for graph in GRAPHS:
            progress(f"{graph} graph ({data[graph]})")
            built[graph] = compile_model(package / str(data[graph]), target.board, tmp / graph, progress=progress,
                                         external_weights=external, caches=[past for past, _ in data["cache"]],
                                         **options)
        weights = None
        if external:
            tensors = {name: array for g in GRAPHS for name, array in (built[g].weights or {}).items()}
            progress(f"writing {WEIGHTS_FILE} ({len(tensors)} tensors, shared by both graphs)")
            path = write_safetensors(tmp / WEIGHTS_FILE, tensors, {"format": "tvmedge-lm-weights"})
            weights = {"file": WEIGHTS_FILE, "bytes": path.stat().st_size, "tensors": len(tensors)}
            for g in GRAPHS:
                built[g].weights = None  # written; not kept in memory
            del tensors
        quantization = built["decode"].manifest.build.quantization
        lm = LMManifest(context=int(data["context"]), prefill_length=int(data["prefill_length"]),
                        cache=tuple((str(a), str(b)) for a, b in data["cache"]), tokenizer=dict(data["tokenizer"]),
                        digests={g: built[g].manifest.digest for g in GRAPHS}, model=dict(data.get("model") or {}),
                        quantization=quantization, weights=weights)
        lm.write(tmp)
        shutil.rmtree(tmp / "quantized-package", ignore_errors=True)  # mixed: the package quantized on the way
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return LMArtifact(out, lm, *(Artifact(out / g, built[g].manifest) for g in GRAPHS))
