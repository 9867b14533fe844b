"""The library API: the Python twins of the CLI verbs.

>>> from tvmedge import api
>>> report = api.inspect("examples/models/tiny_cnn.onnx")
>>> artifact = api.compile("examples/models/tiny_cnn.onnx", "rk3588", out="out/")
>>> outputs, stats = api.run("out/", board="emu:rk3588", random=True)
"""

from __future__ import annotations

from dataclasses import replace
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


def compile(model, board: Union[str, Board], *, plan: Optional[str] = None, quant=None,
            search: Optional[str] = None, tuning=None, input_shapes: Shapes = None, out="out", opt_level: int = 3,
            algorithm: Optional[str] = None, progress: Optional[Callable[[str], None]] = None,
            tune_progress: Optional[Callable[[dict], None]] = None, partition: Optional[str] = None,
            partition_algorithm: Optional[str] = None):
    """Compile an ONNX model for a board (name, YAML path, TVM target JSON or ``Board``) -> ``Artifact``.

    One pass (:mod:`tvmedge.build.pipeline`): the board is resolved once, the model read, checked and folded
    once, imported, cut into stages and built; the manifest is written once.

    ``plan`` (``"latency"`` or ``"throughput"``, default None = one library for the board's main CPU)
    partitions the model over the board's compute units first and writes a multi-partition artifact: one
    library per plan stage (``stage0.so`` ...), the plan in the manifest, stages on units TVM cannot build for
    or the runtime cannot drive (NPU, OpenCL GPU) built for the host CPU and marked ``"fallback": "cpu"``
    (see :mod:`tvmedge.build.stages`). ``algorithm`` picks another partitioner than the objective's default
    (e.g. ``"fixed-rule"``). Not combinable with ``quant`` yet.

    ``quant`` (a :class:`tvmedge.quant.QuantConfig` or its YAML path) quantizes the model first; quantized
    weights stay quantized in the artifact (also for a model that ``tvmedge quantize`` wrote) and the manifest's
    ``build.quantization`` says how.

    ``search`` (``"quick"``, ``"none"``, ``"naive"`` or a number of candidates per task) is the schedule search
    for tasks without tuning records; ``tuning`` (a :class:`tvmedge.tune.auto.TuningOptions`) says the rest
    (records folder, tracker; default: records from ``tuning_logs/`` plus the quick search, measured on a native
    board). ``progress`` receives a message as each step starts; ``tune_progress`` the quick search's events.

    ``partition`` and ``partition_algorithm`` are the former names of ``plan`` and ``algorithm``.
    """
    from .build.pipeline import compile_model
    from .tune.auto import TuningOptions

    if search is not None:
        tuning = replace(tuning or TuningOptions(), search=search)
    if partition is not None or partition_algorithm is not None:
        if plan is not None or algorithm is not None:
            raise ConfigError("give plan/algorithm or their former names partition/partition_algorithm, not both")
        plan, algorithm = partition, partition_algorithm
    return compile_model(model, board, out, plan=plan, algorithm=algorithm, quant=quant, tuning=tuning,
                         input_shapes=input_shapes, opt_level=opt_level, progress=progress,
                         tune_progress=tune_progress)


def tune(model, board: Union[str, Board], *, input_shapes: Shapes = None, budget=None, log_dir=None,
         tracker: Optional[str] = None, key: Optional[str] = None, progress=None, seed: int = 0):
    """Tune a model's tasks for a board into ``tuning_logs/<target key>/`` (or ``log_dir``) -> ``TuneReport``.

    Measures on this host for a native board, or on boards behind TVM's RPC tracker (``tracker="HOST:PORT"``,
    ``key``: what the boards registered under, default the board's name). Resumable: records are kept as they are measured, finished tasks are skipped.
    """
    from .devices.target import CompileTarget
    from .frontend.onnx import import_model
    from .tune.database import TuningDatabase
    from .tune.measure import measurer_for
    from .tune.tasks import extract_tasks, prepare
    from .tune.tuner import Budget, tune_tasks

    target = CompileTarget.resolve(board)
    builder, runner, _ = measurer_for(target, tracker, key)  # key defaults to the board's name
    database = TuningDatabase(log_dir, create=True) if log_dir else TuningDatabase.for_target(target.spec)
    imported = import_model(model, input_shapes)  # as compile imports it, so the records match
    tasks = extract_tasks(prepare(imported.mod, target.tvm_target), target.tvm_target)
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
