"""The compile pipeline: an ONNX file (or a ``torch.export`` ``.pt2`` program) in, an artifact directory out, in
one pass.

1. the board is resolved once (:class:`~tvmedge.devices.target.CompileTarget`: TVM target, cross compiler) and
   handed down: nothing below re-resolves or re-parses it;
2. the model is read and checked once and folded once (:func:`tvmedge.frontend.onnx.load_onnx`); with
   ``quant`` the folded model is quantized (:func:`tvmedge.quant.quantize`); then it is imported into Relax,
   quantized weights kept quantized (:func:`tvmedge.frontend.onnx.import_model`);
3. the module becomes stages: one for the board's main CPU, or the partitioner's plan
   (:mod:`tvmedge.compiler.stages`);
4. every stage is scheduled, lowered and linked the same way and the manifest is written once, with the
   quantization record in it (:func:`tvmedge.compiler.artifact.build_artifact`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..errors import ConfigError
from ..frontend.pytorch import is_exported_program

__all__ = ["compile_model", "import_for_compile"]


def compile_model(model, board, out, *, plan: Optional[str] = None, algorithm: Optional[str] = None,
                  costs: str = "learned", quant=None, tuning=None, input_shapes=None, opt_level: int = 3,
                  progress: Optional[Callable[[str], None]] = None, tune_progress=None, frozen_inputs=None, sign=None,
                  encrypt=None, expose_layers: bool = False, external_weights: bool = False, caches=()):
    """Compile ``model`` (an ONNX path) for ``board`` (a Board, name, YAML path or TVM target JSON) into ``out``
    -> :class:`~tvmedge.compiler.artifact.Artifact`. See :func:`tvmedge.api.compile` for the options;
    ``external_weights`` keeps the weights out of the library (:func:`~tvmedge.compiler.artifact.build_artifact`,
    for LM artifacts); ``caches``: names of inputs that are KV caches, which the graph may update in place
    (:mod:`tvmedge.compiler.kv_cache`)."""
    from ..devices.target import CompileTarget
    from .artifact import build_artifact, check_destination
    from .stages import partition_setup, plan_stages, single_stage

    progress = progress or (lambda message: None)
    if plan is not None and quant is not None:
        raise ConfigError("--partition and --quant cannot be combined yet; compile without one of them")
    if plan is None and algorithm is not None:
        raise ConfigError("partition_algorithm needs partition='latency' or 'throughput'")
    from .signing import load_encryption_key, load_signing_key

    signing_key = load_signing_key(sign)  # a bad key fails before anything slow ($TVMEDGE_SIGNING_KEY if None)
    encryption_key = load_encryption_key(encrypt)  # ($TVMEDGE_ENCRYPTION_KEY if None)
    target = CompileTarget.resolve(board)  # a missing cross compiler fails here, before the (slow) import
    check_destination(Path(out))
    if plan is not None and is_exported_program(model):
        raise ConfigError("--partition takes ONNX models; export the model to ONNX to partition it")
    devices, cost_model = partition_setup(target, plan, costs) if plan is not None else (None, None)
    progress(f"importing {Path(model).name} ({'quantize, ' if quant is not None else ''}check, fix shapes, fold, "
             f"convert to Relax)")
    imported, quantization = import_for_compile(model, quant, input_shapes, progress=None, frozen_inputs=frozen_inputs,
                                                expose_layers=expose_layers)
    if caches:
        _update_caches_in_place(imported, caches)
    stages = single_stage(imported, target) if plan is None else \
        plan_stages(imported, target, devices, cost_model, objective=plan, algorithm=algorithm, progress=progress)
    return build_artifact(imported, stages, out, tuning=tuning, opt_level=opt_level, quantization=quantization,
                          progress=progress, tune_progress=tune_progress, signing_key=signing_key,
                          encryption_key=encryption_key, external_weights=external_weights)


def _update_caches_in_place(imported, caches) -> None:
    """Rewrite ``imported``'s cache updates in place (:mod:`.kv_cache`) and note which inputs it did that for."""
    from .kv_cache import update_caches_in_place

    params = list(imported.mod["main"].params)
    relax_name = {spec.name: params[i].name for i, spec in enumerate(imported.inputs) if i < len(params)}
    onnx_name = {v: k for k, v in relax_name.items()}
    imported.mod, done = update_caches_in_place(imported.mod, [relax_name[c] for c in caches if c in relax_name])
    imported.updated_in_place = tuple(onnx_name[name] for name in done)


def import_for_compile(model, quant=None, input_shapes=None,
                       progress: Optional[Callable[[str], None]] = None, frozen_inputs=None,
                       expose_layers: bool = False) -> tuple:
    """Read, fold, (quantize,) import -> ``(ImportedModel, quantization record for the manifest or None)``.

    ``quant``: a ``QuantConfig`` or the path of its YAML. A model that already holds quantized weights (e.g.
    ``tvmedge quantize``'s output) is recorded as such. ``frozen_inputs``: ``--freeze-input`` values by name.
    A ``.pt2`` file is a ``torch.export`` program, imported by TVM's own importer for those.
    ``expose_layers``: every floating-point intermediate ONNX tensor (of the quantized model, with ``quant``) is
    also an output, by name (a debug build for ``tvmedge compare``; :func:`tvmedge.frontend.layers.expose_layers`).
    """
    from ..frontend.onnx import import_model, load_onnx

    if is_exported_program(model):
        if expose_layers:
            raise ConfigError("--expose-layers takes ONNX models (intermediate tensors are named by ONNX)")
        if quant is not None:
            raise ConfigError("--quant takes ONNX models; export the model to ONNX to quantize it")
        from ..frontend.pytorch import import_exported_program

        return import_exported_program(model, input_shapes, frozen_inputs), None
    source = load_onnx(model, input_shapes, frozen_inputs)
    result = None
    if quant is not None:
        from ..quant.quantize import quantize

        result = quantize(source, quant, progress=progress)
        source = source.with_proto(result.model)
    exposed = None
    if expose_layers:
        from ..frontend.layers import expose_layers as _expose

        before = len(source.proto.graph.output)
        source = source.with_proto(_expose(source.proto))
        exposed = len(source.proto.graph.output) - before
    imported = import_model(source)
    imported.exposed_layers = exposed
    if imported.quantized_weights is None and imported.integer is None:
        return imported, None
    record = result.manifest_record() if result is not None else \
        {"config": None, "note": "model already quantized (QDQ / quantized operators)"}
    if imported.quantized_weights is not None:
        record["artifact_weights"] = imported.quantized_weights
    if imported.integer is not None:
        record["integer"] = imported.integer.summary()
    return imported, record
