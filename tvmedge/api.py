"""The library API: the Python twins of the CLI verbs.

>>> from tvmedge import api
>>> report = api.inspect("examples/models/tiny_cnn.onnx")
>>> artifact = api.compile("examples/models/tiny_cnn.onnx", "rk3588", out="out/")
>>> result = api.run("out/", board="emu:rk3588", random=True)     # result.outputs, result.stats, result.emulated
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence, Union

from .devices.board import Board, load_board
from .errors import ConfigError

if TYPE_CHECKING:
    from .runtime.loader import RunResult

__all__ = ["inspect", "compile", "tune", "partition", "rank", "quantize", "load", "run", "profile", "compare", "bundle",
           "deploy", "certify",
           "bench", "setup_board", "serve_board", "rack", "tracker_boards", "load_board", "list_boards",
           "device_graph", "tuning_logs", "serve", "govern", "compare_governors", "generate", "load_lm"]

Shapes = Optional[Mapping[str, tuple]]


def inspect(model, *, input_shapes: Shapes = None, frozen_inputs: Optional[Mapping[str, list]] = None):
    """IO specs, op histogram and unsupported ops of an ONNX model -> ``ModelReport``."""
    from .frontend.onnx import inspect_onnx

    return inspect_onnx(model, input_shapes, frozen_inputs)


def inspect_artifact(artifact, *, trust=None) -> dict:
    """What an artifact folder holds and who built it: board, IO specs, versions, provenance (signing key id,
    source model sha256, compiler versions) and its signature, verified against ``trust`` (public key(s),
    default ``$TVMEDGE_TRUSTED_KEYS``) when given -> a dict (what ``tvmedge inspect out/`` prints)."""
    import json as _json

    from .runtime.manifest import Manifest
    from .runtime.trust import SIGNATURE_NAME, trusted_keys, verify_signature

    path = Path(artifact)
    manifest = Manifest.read(path)
    sig = path / SIGNATURE_NAME
    signature = {"present": sig.is_file(), "key_id": None, "verified": None}
    if sig.is_file():
        try:
            signature["key_id"] = str(_json.loads(sig.read_text()).get("key_id"))
        except (ValueError, AttributeError, UnicodeDecodeError):
            signature["key_id"] = "unreadable"
    keys = trusted_keys(trust)
    if keys is not None:
        verify_signature(path, manifest.digest, keys, recorded_key=(manifest.provenance or {}).get("key_id"))
        signature["verified"] = True
    return {"artifact": str(path), "board": manifest.board, "arch": manifest.arch, "triple": manifest.triple,
            "inputs": [s.to_json() for s in manifest.inputs], "outputs": [s.to_json() for s in manifest.outputs],
            "libraries": manifest.libraries(), "tvm_version": manifest.tvm_version,
            "tvm_ffi_version": manifest.tvm_ffi_version, "tvmedge_version": manifest.tvmedge_version,
            "source_model": manifest.source_model, "provenance": manifest.provenance, "signature": signature,
            "encryption": manifest.encryption,
            "created": manifest.created, "digest": manifest.digest}


def compile(model, board: Union[str, Board], *, plan: Optional[str] = None, quant=None,
            search: Optional[str] = None, tuning=None, input_shapes: Shapes = None, out="out", opt_level: int = 3,
            algorithm: Optional[str] = None, progress: Optional[Callable[[str], None]] = None,
            tune_progress: Optional[Callable[[dict], None]] = None, partition: Optional[str] = None,
            partition_algorithm: Optional[str] = None, frozen_inputs: Optional[Mapping[str, list]] = None,
            sign: Optional[str] = None, encrypt: Optional[str] = None, expose_layers: bool = False):
    """Compile an ONNX model (or a ``torch.export`` program saved as ``.pt2``, when torch is installed) for a board
    (name, YAML path, TVM target JSON or ``Board``) -> ``Artifact``.

    One pass (:mod:`tvmedge.compiler.pipeline`): the board is resolved once, the model read, checked and folded
    once, imported, cut into stages and built; the manifest is written once.

    ``plan`` (``"latency"`` or ``"throughput"``, default None = one library for the board's main CPU)
    partitions the model over the board's compute units first and writes a multi-partition artifact: one
    library per plan stage (``stage0.so`` ...), the plan in the manifest, stages on units TVM cannot build for
    or the runtime cannot drive (NPU, OpenCL GPU) built for the host CPU and marked ``"fallback": "cpu"``
    (see :mod:`tvmedge.compiler.stages`). ``algorithm`` picks another partitioner than the objective's default
    (e.g. ``"fixed-rule"``). Not combinable with ``quant`` yet.

    ``quant`` (a :class:`tvmedge.quant.QuantConfig` or its YAML path) quantizes the model first; quantized
    weights stay quantized in the artifact (also for a model that ``tvmedge quantize`` wrote) and the manifest's
    ``build.quantization`` says how.

    ``search`` (``"quick"``, ``"none"``, ``"naive"`` or a number of candidates per task) is the schedule search
    for tasks without tuning records; ``tuning`` (a :class:`tvmedge.tune.auto.TuningOptions`) says the rest
    (records folder, tracker; default: records from ``tuning_logs/`` plus the quick search, measured on a native
    board). ``progress`` receives a message as each step starts; ``tune_progress`` the quick search's events.

    ``frozen_inputs`` (``{name: values}``, see :mod:`tvmedge.frontend.freeze`) makes those inputs constants:
    they leave the artifact's inputs, what they select is folded away, the manifest's ``build.frozen_inputs``
    records them.

    ``sign`` (a private key from ``tvmedge keys generate``; default ``$TVMEDGE_SIGNING_KEY``) signs the artifact:
    its key id goes into the manifest's provenance and ``manifest.sig`` holds the signature (see
    :mod:`tvmedge.runtime.trust`). ``encrypt`` (a key from ``tvmedge keys secret``; default
    ``$TVMEDGE_ENCRYPTION_KEY``) encrypts the libraries (and the weights in them) at rest: the loader needs the key
    and decrypts them in memory only.

    ``expose_layers`` makes a debug build whose outputs are the model's followed by every floating-point
    intermediate ONNX tensor, by name: what :func:`compare` compares layer by layer (slower: nothing fuses across
    an output).

    ``partition`` and ``partition_algorithm`` are the former names of ``plan`` and ``algorithm``.

    A folder holding an LM package (``lm.json`` + prefill and decode ONNX graphs, see
    :mod:`tvmedge.compiler.lm`) compiles into an LM artifact: both graphs through this same pipeline, with the
    same options, -> ``LMArtifact`` (run it with :func:`generate`).
    """
    from .compiler.lm import compile_lm, is_lm_package
    from .compiler.pipeline import compile_model
    from .tune.auto import TuningOptions

    if search is not None:
        tuning = replace(tuning or TuningOptions(), search=search)
    if partition is not None or partition_algorithm is not None:
        if plan is not None or algorithm is not None:
            raise ConfigError("give plan/algorithm or their former names partition/partition_algorithm, not both")
        plan, algorithm = partition, partition_algorithm
    if is_lm_package(model):
        return compile_lm(model, board, out, plan=plan, algorithm=algorithm, quant=quant, tuning=tuning,
                          input_shapes=input_shapes, opt_level=opt_level, progress=progress,
                          tune_progress=tune_progress, frozen_inputs=frozen_inputs, sign=sign, encrypt=encrypt,
                          expose_layers=expose_layers)
    return compile_model(model, board, out, plan=plan, algorithm=algorithm, quant=quant, tuning=tuning,
                         input_shapes=input_shapes, opt_level=opt_level, progress=progress,
                         tune_progress=tune_progress, frozen_inputs=frozen_inputs, sign=sign, encrypt=encrypt,
                         expose_layers=expose_layers)


def tune(model, board: Union[str, Board], *, input_shapes: Shapes = None, budget=None, log_dir=None,
         tracker: Optional[str] = None, key: Optional[str] = None, progress=None, seed: int = 0, plot=None):
    """Tune a model's tasks for a board into ``tuning_logs/<target key>/`` (or ``log_dir``) -> ``TuneReport``.

    Measures on this host for a native board, or on boards behind TVM's RPC tracker (``tracker="HOST:PORT"``,
    ``key``: what the boards registered under, default the board's name). Resumable: records are kept as they
    are measured, finished tasks are skipped. ``plot`` (a PNG path, or True for ``tuning_curve.png`` next to the
    records) draws the tuning curve of what was measured (``report.plot``).
    """
    from .compiler.int8 import arrange_for_dot_product
    from .devices.target import CompileTarget
    from .frontend.onnx import import_model
    from .tune.database import TuningDatabase
    from .tune.measure import measurer_for
    from .tune.tasks import extract_tasks, prepare
    from .tune.tuner import Budget, tune_tasks

    target = CompileTarget.resolve(board)
    builder, runner, _ = measurer_for(target, tracker, key)  # key defaults to the board's name
    database = TuningDatabase(log_dir, create=True) if log_dir else TuningDatabase.for_target(target.spec)
    imported = import_model(model, input_shapes)  # as compile imports and arranges it, so the records match
    mod = arrange_for_dot_product(imported.mod, target.tvm_target)
    tasks = extract_tasks(prepare(mod, target.tvm_target), target.tvm_target)
    # convolutions and integer layers start from the schedule a compile would give them: a record must beat it
    from .tune.apply import written_schedules
    from .tune.conv import conv_schedule
    from .tune.int8 import int8_schedule

    candidates = {name: [sch] for schedule in (conv_schedule, int8_schedule)
                  for name, sch in written_schedules(tasks, target.tvm_target, schedule).items()}
    report = tune_tasks(tasks, database, budget=budget or Budget(), builder=builder, runner=runner,
                        progress=progress, seed=seed, candidates=candidates)
    if plot and report.history:
        from .tune.plot import plot_tuning_curve

        path = Path(report.database) / "tuning_curve.png" if plot is True else plot
        report.plot = str(plot_tuning_curve(report, path, title=f"{Path(model).name} on {target.name}"))
    return report


def partition(model, board: Union[str, Board], *, objective: str = "latency", input_shapes: Shapes = None,
              costs: str = "learned", algorithm: Optional[str] = None):
    """Partition a model over a board's device graph -> ``PartitionReport`` (plan + baselines side by side)."""
    from .partition.report import partition_model

    return partition_model(model, board, objective=objective, input_shapes=input_shapes, correction=costs,
                           algorithm=algorithm)


def rank(model, *, objective: str = "latency", input_shapes: Shapes = None, boards=None,
         costs: str = "learned") -> dict:
    """Rank boards (default: every board in ``targets/``) for a model by the cost model's prediction, with the
    reasons; boards that cannot be predicted are listed with why (:func:`tvmedge.partition.rank.rank_boards`)."""
    from .partition.rank import rank_boards

    return rank_boards(model, objective=objective, input_shapes=input_shapes, boards=boards, correction=costs)


def quantize(model, config, *, out=None, evaluate=None, report=None, progress: Optional[Callable[[str], None]] = None):
    """Quantize an ONNX model as ``config`` (a ``QuantConfig`` or its YAML path) says -> ``QuantResult``.

    ``out`` writes the quantized (QDQ) ONNX model, ``report`` the report as JSON; ``evaluate`` (a data set with
    labels) measures float vs quantized accuracy. A bad config fails before the model is read. An LM package
    folder (:mod:`tvmedge.compiler.lm`) has both graphs quantized into the package folder ``out``.
    """
    from .quant import QuantConfig, load_config
    from .quant.quantize import quantize as _quantize

    config = config if isinstance(config, QuantConfig) else load_config(config)
    from .compiler.lm import is_lm_package, quantize_package

    if is_lm_package(model):  # both graphs, into a new LM package folder; the decode graph's report
        if out is None or evaluate is not None:
            raise ConfigError("an LM package is quantized into a new package folder: give -o DIR (and no --evaluate)")
        result = quantize_package(model, config, out, progress=progress)
        if report is not None:
            result.report.write(report)
        return result
    result = _quantize(model, config, evaluate=evaluate, progress=progress)
    if out is not None:
        result.save(out)
        result.report.output = str(out)
    if report is not None:
        result.report.write(report)
    return result


def load(artifact, device: str = "cpu", verify: bool = True, session=None, trust=None,
         allow_version_mismatch: bool = False, decrypt=None):
    """Load an artifact on this machine (or on an RPC ``session``'s board) -> ``tvmedge.runtime.Model``.
    ``trust``: public key(s) it must be signed by (default ``$TVMEDGE_TRUSTED_KEYS``)."""
    from .runtime import load as _load

    return _load(artifact, device=device, verify=verify, session=session, trust=trust,
                 allow_version_mismatch=allow_version_mismatch, decrypt=decrypt)


def load_lm(artifact, **load_options):
    """Load an LM artifact on this machine -> :class:`tvmedge.runtime.LanguageModel` (``.generate``, ``.stream``)."""
    from .runtime.lm import load_lm as _load_lm

    return _load_lm(artifact, **load_options)


def generate(artifact, prompt: str, *, max_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
             top_p: float = 1.0, seed: int = 0, stop: Sequence[str] = (), board: Optional[str] = None,
             on_token: Optional[Callable] = None, trust=None):
    """Generate text with an LM artifact here or on an emulated board (``board="emu:rk3588"``) ->
    :class:`~tvmedge.runtime.lm.GenerationResult`; ``on_token`` receives each
    :class:`~tvmedge.runtime.lm.GeneratedToken` as it is produced (streaming).

    Greedy by default (``temperature=0``); otherwise seeded sampling from the ``top_k`` / ``top_p`` set. On an
    emulated board the libraries and the KV cache live on the board (TVM's RPC server under qemu), the token
    loop runs here: greedy outputs equal the host's.
    """
    from .runtime.lm import LMManifest, SamplingOptions, load_lm as _load_lm

    options = SamplingOptions(max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                              stop=tuple(stop))

    def run(model):
        generation = model.stream(prompt, options)
        for token in generation:
            if on_token is not None:
                on_token(token)
        return generation.result

    if board is None:
        return run(_load_lm(artifact, trust=trust))
    from .devices.board import emulated_board_name
    from .emulator import setup_board
    from .emulator.session import board_session
    from .runtime.manifest import Manifest

    name = emulated_board_name(board)
    LMManifest.read(artifact)  # a bad folder fails before the emulator starts
    arch = Manifest.read(Path(artifact) / "decode").arch
    target_board = load_board(name)
    if target_board.arch != arch:
        raise ConfigError(f"LM artifact {artifact} is built for {arch}, board {name} is {target_board.arch}")
    emulated = setup_board(target_board)
    with board_session(emulated) as (session, where):
        return run(_load_lm(artifact, session=session, where=where, trust=trust))


def run(artifact, inputs: Optional[Mapping] = None, *, input_files: Sequence[str] = (), board: Optional[str] = None,
        repeat: int = 0, random: bool = False, seed: int = 0, rpc: Optional[str] = None,
        tracker: Optional[str] = None, key: Optional[str] = None, reference=None, output=None, trust=None,
        allow_version_mismatch: bool = False, decrypt=None, threads: Optional[int] = None,
        cores: Optional[str] = None) -> RunResult:
    """Run an artifact here, on an emulated board (``board="emu:rk3588"``) or on a remote board through TVM's
    RPC (``rpc="HOST:PORT"``, or ``tracker="HOST:PORT"`` and ``key``) -> :class:`~tvmedge.runtime.RunResult`.

    Inputs: ``inputs`` (arrays by name, or one array), ``input_files`` (``[NAME=]file.npy`` items or one
    ``.npz``, as ``--input`` takes them), else seeded random ones (also with ``random=True``). ``reference``
    (an ONNX model) is run with ONNX Runtime on the same inputs and compared (``result.comparison``);
    ``output`` saves the outputs (``.npz``, or ``.npy`` for one output). An emulated board's timings say
    nothing about the real one (``result.emulated``). ``trust`` (public key(s), default
    ``$TVMEDGE_TRUSTED_KEYS``): the artifact must be signed by one of them, checked here before it runs anywhere.

    ``threads`` and ``cores`` (``"big"``, ``"little"``, a cluster of the board YAML, or CPU numbers ``"0-3"``)
    set TVM's thread pool and the cores it runs on (:mod:`tvmedge.runtime.execution`; on this machine the run
    happens in a thread of its own, the caller's thread is left as it was). A throughput-partitioned artifact with ``repeat`` also
    streams ``repeat`` inputs through the stage pipeline (:mod:`tvmedge.runtime.pipeline`):
    ``result.stats.extra["pipeline"]`` holds the pipelined and sequential throughput.
    """
    from .runtime.inputs import random_inputs, read_inputs, write_outputs
    from .runtime.loader import RunResult, check_inputs
    from .runtime.manifest import Manifest

    from .runtime.trust import trusted_keys, verify_signature

    manifest = Manifest.read(artifact)
    keys = trusted_keys(trust)
    if keys is not None:  # before anything runs, here or on a board
        verify_signature(artifact, manifest.digest, keys, recorded_key=(manifest.provenance or {}).get("key_id"))
    if random or (inputs is None and not input_files):
        feed = random_inputs(manifest.inputs, seed)
    else:
        feed = read_inputs(input_files, manifest.inputs) if inputs is None else inputs
    if (threads or cores) and (rpc or tracker):
        raise ConfigError("--threads/--cores apply where the runtime runs: not through RPC (TVM's RPC server owns the "
                          "board's thread pool); use them with `python -m tvmedge.runtime` on the board")
    if board is None:
        session, where = (None, "host")
        if rpc or tracker:
            from .runtime.remote import connect

            session, where = connect(rpc=rpc, tracker=tracker, key=key)
        model = load(artifact, session=session, trust=keys, allow_version_mismatch=allow_version_mismatch,
                     decrypt=decrypt)
        if session is None:
            from .runtime.__main__ import timed_run

            outputs, stats = timed_run(model, feed, repeat, threads=threads, cores=cores)
        else:  # a remote board's timings are its own (emulated or not, it cannot tell us)
            outputs, stats = model.timed_run(feed, repeat=repeat)
        result = RunResult(outputs, stats, where, emulated=False)
    else:
        from .devices.board import emulated_board_name
        from .emulator import setup_board

        name = emulated_board_name(board)
        if manifest.encryption:
            raise ConfigError(f"{artifact} is encrypted; emulated boards do not take its key yet: deploy it and run "
                              "it there with --decrypt (python -m tvmedge.runtime or tvmedge-run)")
        target_board = load_board(name)
        if target_board.arch != manifest.arch:
            raise ConfigError(f"artifact {artifact} is built for {manifest.arch}, board {name} is {target_board.arch}")
        # Validate here, before the emulator starts (it costs seconds).
        feed = dict(zip((spec.name for spec in manifest.inputs), check_inputs(manifest.inputs, feed)))
        emulated = setup_board(target_board)
        kwargs = {"threads": threads, "cores": cores} if (threads or cores) else {}
        if kwargs and emulated.loader_kind != "python":
            raise ConfigError(f"--threads/--cores on {board}: its C++ loader has no thread control yet")
        outputs, stats = emulated.run_artifact(Path(artifact), feed, repeat=repeat, **kwargs)
        result = RunResult(outputs, stats, f"emu:{name}", emulated=True)
    if output:
        result.written = str(write_outputs(output, result.outputs))
    if reference is not None:
        from .peer import compare_outputs, onnxruntime_outputs

        named = dict(zip((spec.name for spec in manifest.inputs), check_inputs(manifest.inputs, feed)))
        result.comparison = compare_outputs(result.outputs, onnxruntime_outputs(reference, named))
        result.reference = str(reference)
    return result


def _feed(manifest, inputs, input_files, random: bool, seed: int) -> dict:
    """The inputs of a run, checked against the manifest: given arrays, files, or seeded random ones."""
    from .runtime.inputs import random_inputs, read_inputs
    from .runtime.loader import check_inputs

    if random or (inputs is None and not input_files):
        feed = random_inputs(manifest.inputs, seed)
    else:
        feed = read_inputs(input_files, manifest.inputs) if inputs is None else inputs
    return dict(zip((spec.name for spec in manifest.inputs), check_inputs(manifest.inputs, feed)))


def profile(artifact, inputs: Optional[Mapping] = None, *, input_files: Sequence[str] = (), board: Optional[str] = None,
            repeat: int = 10, random: bool = False, seed: int = 0, plot=None):
    """Per-kernel profile of an artifact here or on an emulated board (``board="emu:rk3588"``) ->
    :class:`~tvmedge.analysis.profile.ProfileReport`: each kernel call's median time, share, FLOPs, GFLOP/s
    against the board's peak and the ONNX layers it computes; stage totals; memory (the manifest's plus the
    measured peak RSS). ``plot`` writes a bar chart PNG there. Inputs as :func:`run` takes them.
    """
    from .analysis.profile import profile_artifact
    from .runtime.manifest import Manifest

    feed = _feed(Manifest.read(artifact), inputs, input_files, random, seed)
    return profile_artifact(artifact, feed, board=board, repeat=repeat, plot=plot)


def compare(a, b, *, inputs: Optional[Mapping] = None, input_files: Sequence[str] = (), seed: int = 0,
            min_cosine: float = 0.999, rtol: float = 1e-2, plot=None):
    """Run ``a`` and ``b`` on the same inputs and compare every tensor both return, by ONNX tensor name, layer by
    layer -> :class:`~tvmedge.analysis.compare.CompareReport` (first diverging layer, largest jump).

    A side is ``"ort:MODEL.onnx"`` (ONNX Runtime, every intermediate exposed), an artifact directory (built with
    ``expose_layers=True`` to compare every layer) or ``"DIR@emu:NAME"`` (that artifact on an emulated board);
    see :mod:`tvmedge.analysis.compare`. ``a`` is the reference.
    """
    from .analysis.compare import Side, compare as _compare, parse_side

    a, b = (s if isinstance(s, Side) else parse_side(str(s)) for s in (a, b))
    return _compare(a, b, inputs=inputs, input_files=input_files, seed=seed, min_cosine=min_cosine, rtol=rtol,
                    plot=plot)


def bundle(board: Union[str, Board], out=None, *, loader: Optional[str] = None, progress=None):
    """Write the runtime bundle a board needs (TVM's runtime, no compiler) -> ``Bundle``; ``out`` defaults to
    ``tvmedge-runtime-<board>.tar.xz`` (see :mod:`tvmedge.deploy.bundle`)."""
    from .deploy.bundle import build_bundle

    board = board if isinstance(board, Board) else load_board(board)
    return build_bundle(board, out or f"tvmedge-runtime-{board.name}.tar.xz", loader=loader, progress=progress)


def deploy(artifact, to: str, *, board: Optional[str] = None, runtime: bool = True, loader: Optional[str] = None,
           check: bool = False, progress=None, trust=None):
    """Ship an artifact (and its board's runtime bundle) to ``to`` (``emu:NAME``, a directory or
    ``user@host:path``) and verify every file there -> ``Deployment`` (see :mod:`tvmedge.deploy.ship`).
    ``board`` ships another board's runtime than the artifact's (same architecture). ``trust``: public key(s)
    the artifact must be signed by before it is shipped (default ``$TVMEDGE_TRUSTED_KEYS``)."""
    from .deploy.ship import deploy as _deploy

    return _deploy(artifact, to, board=board, runtime=runtime, loader=loader, check=check, progress=progress,
                   trust=trust)


def certify(artifact, *, board: Optional[str] = None, duration: float = 60.0, sysfs_root="/") -> dict:
    """Measure and judge an artifact here or on an emulated board (``board="emu:NAME"``) -> the report
    (:func:`tvmedge.bench.certify.certify`)."""
    from .bench.certify import certify as _certify

    return _certify(artifact, board=board, duration=duration, sysfs_root=sysfs_root)


def bench(*, board: Union[str, Board, None] = None, artifact=None, budget: float = 1.0, storage_dir=None) -> dict:
    """The 12-metric evaluation matrix: measured on this machine (``board=None``; ``artifact`` adds the model
    metrics), or as ``board`` declares it in ``targets/`` -> ``{"where", "metrics": [rows]}``."""
    if board is not None:
        from .bench.matrix import declared_board

        board = board if isinstance(board, Board) else load_board(board)
        return {"where": board.name, "metrics": declared_board(board)}
    from .bench.matrix import measure_host

    return {"where": "host", "metrics": measure_host(artifact, budget_s=budget, storage_dir=storage_dir)}


def setup_board(board: Union[str, Board], *, progress=None, force: bool = False):
    """Build (once, cached per architecture) the emulated board for ``board`` -> the emulated board."""
    from .emulator import setup_board as _setup

    return _setup(board if isinstance(board, Board) else load_board(board), progress=progress, force=force)


def serve_board(board: str, *, host: str = "127.0.0.1", port: int = 9090, tracker: Optional[str] = None,
                key: Optional[str] = None, on_start: Optional[Callable[[str], None]] = None) -> int:
    """Run TVM's RPC server on the emulated board ``board`` (``emu:NAME``) until it exits or Ctrl-C (the server is
    then stopped); returns its exit code. ``key`` (default: the board's name) is what it registers under with
    ``tracker``. ``on_start`` receives a line saying where it listens."""
    from .devices.board import emulated_board_name
    from .emulator import serve_until_stopped

    name = emulated_board_name(board, what="board")
    return serve_until_stopped(setup_board(name), host=host, port=port, tracker=tracker, key=key or name,
                               on_start=on_start)


def rack(boards, *, host: str = "127.0.0.1", port: int = 9190, progress=None,
         on_ready: Optional[Callable[[object], None]] = None) -> None:
    """Start TVM's RPC tracker on ``host:port`` and one emulated board per name in ``boards``; block until Ctrl-C
    (then stop them all). ``on_ready`` receives the running ``Rack``. TvmedgeError when a board stops."""
    from .emulator.rack import emulated_rack

    with emulated_rack(boards, host=host, tracker_port=port, progress=progress) as running:
        if on_ready:
            on_ready(running)
        running.wait()


def tracker_boards(tracker: str) -> dict:
    """What TVM's RPC tracker at ``HOST:PORT`` knows: per key free/pending counts, and each server."""
    from .runtime.remote import tracker_summary

    return tracker_summary(tracker)


def list_boards() -> list:
    """Every board in ``targets/`` (as ``Board``)."""
    from .devices.board import list_boards as _names

    return [load_board(name) for name in _names()]


def device_graph(board: Union[str, Board]):
    """A board's compute units and links as the partitioner sees them -> ``DeviceGraph``."""
    from .devices.graph import DeviceGraph

    return DeviceGraph.from_board(board)


def tuning_logs(root=None) -> list:
    """What the tuning databases under ``root`` hold, one row per target key (default: the user's records in
    ``$TVMEDGE_CACHE/tuning_logs`` or ``$TVMEDGE_TUNING_LOGS``, and the shipped ones, marked ``shipped``)."""
    from .tune.database import list_databases

    return list_databases(root)


def serve(options, *, on_ready=None):
    """Serve a directory of artifacts over HTTP until Ctrl-C (``options``: a :class:`tvmedge.serve.ServeOptions`)."""
    from .serve import serve as _serve

    return _serve(options, on_ready=on_ready)


def govern(sysfs_root="/", kind: str = "pid", *, limit_c: float = 45.0, period: float = 1.0, duration=None,
           dry_run: bool = False, on_tick=None) -> dict:
    """Keep this machine under a temperature limit by capping its CPU frequency (:func:`tvmedge.thermal.govern`)."""
    from .thermal import govern as _govern

    return _govern(sysfs_root, kind, limit_c=limit_c, period=period, duration=duration, dry_run=dry_run,
                   on_tick=on_tick)


def compare_governors(limit_c: float, seconds: float) -> list:
    """The governors compared on a simulated board for ``seconds`` of simulated time (one row each)."""
    import tempfile

    from .thermal import compare

    with tempfile.TemporaryDirectory(prefix="tvmedge-thermal-") as root:
        return compare(limit_c, seconds, root=root)
