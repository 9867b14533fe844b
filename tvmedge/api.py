"""The library API: the Python twins of the CLI verbs.

>>> from tvmedge import api
>>> report = api.inspect("examples/models/tiny_cnn.onnx")
>>> artifact = api.compile("examples/models/tiny_cnn.onnx", "rk3588", out="out/")
>>> outputs, stats = api.run("out/", board="emu:rk3588", random=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from .devices.board import Board, load_board
from .errors import ConfigError

__all__ = ["inspect", "compile", "tune", "partition", "run", "load", "load_board"]

Shapes = Optional[Mapping[str, tuple]]


def inspect(model, *, input_shapes: Shapes = None):
    """IO specs, op histogram and unsupported ops of an ONNX model -> ``ModelReport``."""
    from .frontend.onnx import inspect_onnx

    return inspect_onnx(model, input_shapes)


def compile(model, board: Union[str, Board], *, input_shapes: Shapes = None, out="out", tuning=None,
            opt_level: int = 3, progress: Optional[Callable[[str], None]] = None,
            tune_progress: Optional[Callable[[dict], None]] = None, quant=None, partition: Optional[str] = None,
            partition_algorithm: Optional[str] = None):
    """Compile an ONNX model for a board (name, YAML path, TVM target JSON or ``Board``) -> ``Artifact``.

    ``tuning`` is a :class:`tvmedge.tune.auto.TuningOptions` (default: records from ``tuning_logs/`` plus
    the quick search for tasks without records, on a native board). ``progress`` receives a message as each
    step starts; ``tune_progress`` receives the quick search's events. ``quant`` (a
    :class:`tvmedge.quant.QuantConfig` or its YAML path) quantizes the model first; quantized weights stay
    quantized in the artifact (also for a model that ``tvmedge quantize`` wrote) and the manifest's
    ``build.quantization`` says how.

    ``partition`` (``"latency"`` or ``"throughput"``, default None = one library for the board's main CPU)
    partitions the model over the board's compute units first and writes a multi-partition artifact: one
    library per plan stage (``stage0.so`` ...), the plan in the manifest, stages on units TVM cannot build for
    or the runtime cannot drive (NPU, OpenCL GPU) built for the host CPU and marked ``"fallback": "cpu"``
    (see :mod:`tvmedge.build.partitioned`). ``partition_algorithm`` picks another partitioner than the
    objective's default (e.g. ``"fixed-rule"``). Not combinable with ``quant`` yet.
    """
    from .build.artifact import check_destination, compile_artifact
    from .build.pipeline import import_for_compile
    from .tune.auto import TuningOptions, auto_schedule

    progress = progress or (lambda message: None)
    tuning = tuning or TuningOptions()
    board = board if isinstance(board, Board) else load_board(board)
    board.check_toolchain()  # fail before the (slow) import and search when the cross compiler is missing
    check_destination(Path(out))
    if partition is not None:
        if quant is not None:
            raise ConfigError("--partition and --quant cannot be combined yet; compile without one of them")
        from .build.partitioned import compile_partitioned

        return compile_partitioned(model, board, out, objective=partition, input_shapes=input_shapes,
                                   tuning=tuning, opt_level=opt_level, algorithm=partition_algorithm,
                                   progress=progress, tune_progress=tune_progress)
    if partition_algorithm is not None:
        raise ConfigError("partition_algorithm needs partition='latency' or 'throughput'")
    progress(f"importing {Path(model).name} ({'quantize, ' if quant is not None else ''}check, fix shapes, fold, "
             f"convert to Relax)")
    imported, quantization = import_for_compile(model, quant, input_shapes)
    progress(f"scheduling for {board.name} (records, search {tuning.search})")
    scheduled, provenance = auto_schedule(imported.mod, board, tuning, progress=tune_progress)
    progress(f"building for {board.name} ({board.triple})")
    artifact = compile_artifact(imported, board, out, mod=scheduled, tuning=provenance, opt_level=opt_level,
                                progress=progress)
    if quantization is not None:  # rewritten whole, so the manifest's digest covers this block too
        from dataclasses import replace

        artifact.manifest.build = replace(artifact.manifest.build, quantization=quantization)
        artifact.manifest.write(artifact.path)
    return artifact


def tune(model, board: Union[str, Board], *, input_shapes: Shapes = None, budget=None, log_dir=None,
         tracker: Optional[str] = None, key: Optional[str] = None, progress=None, seed: int = 0):
    """Tune a model's tasks for a board into ``tuning_logs/<target key>/`` (or ``log_dir``) -> ``TuneReport``.

    Measures on this host for a native board, or on boards behind TVM's RPC tracker (``tracker="HOST:PORT"``,
    ``key``: what the boards registered under, default the board's name). Resumable: records are kept as they are measured, finished tasks are skipped.
    """
    import tvm

    from .frontend.onnx import import_model
    from .tune.database import TuningDatabase
    from .tune.measure import measurer_for
    from .tune.tasks import extract_tasks, prepare
    from .tune.tuner import Budget, tune_tasks

    board = board if isinstance(board, Board) else load_board(board)
    builder, runner, _ = measurer_for(board, tracker, key)  # key defaults to the board's name
    spec = board.tvm_target()
    database = TuningDatabase(log_dir, create=True) if log_dir else TuningDatabase.for_target(spec)
    imported = import_model(model, input_shapes)  # as compile imports it, so the records match
    target = tvm.target.Target(spec)
    tasks = extract_tasks(prepare(imported.mod, target), target)
    return tune_tasks(tasks, database, budget=budget or Budget(), builder=builder, runner=runner,
                      progress=progress, seed=seed)


def partition(model, board: Union[str, Board], *, objective: str = "latency", input_shapes: Shapes = None,
              costs: str = "learned", algorithm: Optional[str] = None):
    """Partition a model over a board's device graph -> ``PartitionReport`` (plan + baselines side by side)."""
    from .partition.report import partition_model

    return partition_model(model, board, objective=objective, input_shapes=input_shapes, correction=costs,
                           algorithm=algorithm)


def load(artifact, device: str = "cpu", verify: bool = True, session=None):
    """Load an artifact on this machine (or on an RPC ``session``'s board) -> ``tvmedge.runtime.Model``."""
    from .runtime import load as _load

    return _load(artifact, device=device, verify=verify, session=session)


def run(artifact, inputs: Optional[Mapping] = None, *, board: Optional[str] = None, repeat: int = 0,
        random: bool = False, seed: int = 0, rpc: Optional[str] = None, tracker: Optional[str] = None,
        key: Optional[str] = None):
    """Run an artifact here, on an emulated board (``board="emu:rk3588"``) or on a remote board through TVM's
    RPC (``rpc="HOST:PORT"``, or ``tracker="HOST:PORT"`` and ``key``).

    Returns ``(outputs, stats)``: outputs by name, latency statistics in ms (``stats["emulated"]`` is True
    for an emulated board, whose timings say nothing about the real one).
    """
    from .runtime.inputs import random_inputs
    from .runtime.loader import check_inputs
    from .runtime.manifest import Manifest

    if board is None:
        session, where = (None, "host")
        if rpc or tracker:
            from .runtime.remote import connect

            session, where = connect(rpc=rpc, tracker=tracker, key=key)
        model = load(artifact, session=session)
        feed = random_inputs(model.inputs, seed) if random or inputs is None else inputs
        outputs, stats = model.timed_run(feed, repeat=repeat)
        stats["emulated"] = False  # a remote board's timings are its own (emulated or not, it cannot tell us)
        stats["where"] = where
        return outputs, stats
    from .devices.board import emulated_board_name
    from .devices.emulator import setup_board

    name = emulated_board_name(board)

    manifest = Manifest.read(artifact)
    target_board = load_board(name)
    if target_board.arch != manifest.arch:
        raise ConfigError(f"artifact {artifact} is built for {manifest.arch}, board {name} is {target_board.arch}")
    feed = random_inputs(manifest.inputs, seed) if random or inputs is None else inputs
    # Validate here, before the emulator starts (it costs seconds).
    feed = dict(zip((spec.name for spec in manifest.inputs), check_inputs(manifest.inputs, feed)))
    emulated = setup_board(target_board)
    outputs, stats = emulated.run_artifact(Path(artifact), feed, repeat=repeat)
    stats["where"] = f"emu:{name}"
    return outputs, stats
