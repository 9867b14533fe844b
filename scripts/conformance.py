#!/usr/bin/env python
"""ONNX conformance of tvmedge on this x86 host: import, build, run and compare onnx's own test cases.

Sources (all shipped inside the ``onnx`` package, nothing is downloaded):

* ``node``    operator cases generated in memory by ``onnx.backend.test.case.node.collect_testcases``;
* ``pytorch`` ``onnx/backend/test/data/pytorch-converted/*/model.onnx`` with their ``test_data_set_*``;
* ``light``   ``onnx/backend/test/data/light/light_*.onnx`` (only with ``--light``: slow to compile), fed
  with the inputs onnx's own runner generates (``Runner.generate_dummy_data``) and compared with the
  shipped ``light_*_output_0.pb``.

Every case goes through tvmedge's own pipeline: ``tvmedge.frontend.onnx.import_model`` (input shapes fixed
from the test inputs where the model leaves them symbolic), ``tvmedge.compiler.artifact.build_artifact`` into
a temporary folder, ``tvmedge.runtime.load(...).run(...)``; outputs are compared with ``np.allclose`` at the
case's own tolerance (onnx's runner uses rtol=1e-3, atol=1e-7 for all of these; densenet121 rtol=2e-3).

Each case runs in a worker process (one at a time) with a timeout; a worker that crashes or hangs is
replaced and the case is counted as ``crash`` / ``timeout``.

``--fold-const-inputs`` is a *different mode*: small int64 graph inputs whose name says they carry
shape/axes data (``shape``, ``axes``, ``starts``, ...) become initializers holding the case's values
before import, as real models carry them. Figures from that mode are labelled as such; the default
figures never fold anything.

Also imported by ``tests/test_conformance.py`` (load this file with importlib): the case loaders,
``run_case``, ``ort_outputs`` and ``compare`` live here only.

Usage::

    .venv/bin/python scripts/conformance.py                      # node + pytorch-converted
    .venv/bin/python scripts/conformance.py --light --source light
    .venv/bin/python scripts/conformance.py --filter conv --limit 20 --json out.json
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as _dt
import json
import multiprocessing
import os
import platform
import re
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # running from a checkout without the editable install
    sys.path.insert(0, str(REPO))

SOURCES = ("node", "pytorch", "light")
DEFAULT_TIMEOUT = {"node": 60.0, "pytorch": 60.0, "light": 900.0}
# onnx's runner: TestCase.rtol / atol, 1e-3 / 1e-7 unless a data.json says otherwise.
RUNNER_RTOL, RUNNER_ATOL = 1e-3, 1e-7
# A looser second tolerance, reported next to the strict one (never instead of it).
LOOSE_RTOL, LOOSE_ATOL = 1e-3, 1e-5

# --fold-const-inputs: int64 inputs of at most this many elements, named like shape/axes data.
FOLD_MAX_ELEMENTS = 16
FOLD_NAMES = frozenset({
    "shape", "new_shape", "output_shape", "image_shape", "block_shape", "size", "sizes",
    "axes", "axis", "starts", "ends", "steps", "pads", "split", "repeats", "k", "perm",
})

STATUSES = ("match", "mismatch", "import_unsupported", "import_error", "build_error", "run_error",
            "timeout", "crash")


def onnx_test_dir() -> Path:
    import onnx.backend.test

    return Path(onnx.backend.test.__file__).resolve().parent


# ----------------------------------------------------------------------------------------------- cases


@dataclasses.dataclass
class Case:
    """One conformance case: a model and one or more (inputs, expected outputs) data sets."""

    source: str
    name: str
    model_bytes: bytes
    data_sets: list  # of (inputs: list of np.ndarray in graph-input order, outputs: list in graph-output order)
    rtol: float = RUNNER_RTOL
    atol: float = RUNNER_ATOL
    kind: str = "ndarray"  # how onnx ships the data: ndarray, numpy-scalar, TensorProto

    def model(self):
        import onnx

        return onnx.load_model_from_string(self.model_bytes)


@dataclasses.dataclass
class Skipped:
    source: str
    name: str
    reason: str


def _tensor_kind(value) -> Optional[str]:
    """'ndarray' / 'numpy-scalar' / 'TensorProto' for a tensor value, None for sequences, optionals, maps."""
    import onnx

    if isinstance(value, np.ndarray):
        return "ndarray"
    if isinstance(value, np.generic):
        return "numpy-scalar"
    if isinstance(value, onnx.TensorProto):
        return "TensorProto"
    return None


def _as_array(value) -> np.ndarray:
    """As onnx's runner does (``_normalize_tensor``): TensorProto -> numpy; numpy scalars -> 0-d arrays."""
    import onnx
    from onnx import numpy_helper

    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def _matches(name: str, filters: Optional[Iterable[str]]) -> bool:
    return not filters or any(f.lower() in name.lower() for f in filters)


def node_cases(filters=None) -> tuple:
    """onnx's operator cases generated in memory -> ``(cases, skipped)``.

    Cases whose inputs/outputs are sequences, optionals or None are skipped (and returned as ``skipped``);
    numpy scalars and TensorProtos are tensors and are converted as onnx's runner converts them.
    """
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow-cast on purpose
        collected = collect_testcases(None)
    cases, skipped = [], []
    for test in collected:
        if not _matches(test.name, filters):
            continue
        values = [v for inputs, outputs in test.data_sets for v in list(inputs) + list(outputs)]
        kinds = [_tensor_kind(v) for v in values]
        if None in kinds:
            what = sorted({type(v).__name__ for v, k in zip(values, kinds) if k is None})
            skipped.append(Skipped("node", test.name, "non-tensor data (" + ", ".join(what) + ")"))
            continue
        kind = "TensorProto" if "TensorProto" in kinds else "numpy-scalar" if "numpy-scalar" in kinds else "ndarray"
        data_sets = [([_as_array(v) for v in inputs], [_as_array(v) for v in outputs])
                     for inputs, outputs in test.data_sets]
        cases.append(Case("node", test.name, test.model.SerializeToString(), data_sets,
                          rtol=test.rtol, atol=test.atol, kind=kind))
    return cases, skipped


def _read_pb(path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    tensor = onnx.TensorProto()
    tensor.ParseFromString(Path(path).read_bytes())
    return numpy_helper.to_array(tensor)


def pytorch_cases(filters=None) -> tuple:
    """``data/pytorch-converted/*`` -> ``(cases, skipped)``; tolerances from ``data.json`` as the loader reads them."""
    cases, skipped = [], []
    for folder in sorted((onnx_test_dir() / "data" / "pytorch-converted").iterdir()):
        if not (folder / "model.onnx").is_file() or not _matches(folder.name, filters):
            continue
        rtol, atol = RUNNER_RTOL, RUNNER_ATOL
        if (folder / "data.json").is_file():
            meta = json.loads((folder / "data.json").read_text())
            rtol, atol = meta.get("rtol", rtol), meta.get("atol", atol)
        data_sets = []
        for data_dir in sorted(folder.glob("test_data_set_*")):
            inputs = [_read_pb(data_dir / f"input_{i}.pb") for i in range(len(list(data_dir.glob("input_*.pb"))))]
            outputs = [_read_pb(data_dir / f"output_{i}.pb") for i in range(len(list(data_dir.glob("output_*.pb"))))]
            data_sets.append((inputs, outputs))
        if not data_sets:
            skipped.append(Skipped("pytorch", folder.name, "no test_data_set_*"))
            continue
        cases.append(Case("pytorch", folder.name, (folder / "model.onnx").read_bytes(), data_sets, rtol, atol))
    return cases, skipped


def light_cases(filters=None) -> tuple:
    """``data/light/light_*.onnx`` with the runner's own dummy inputs and the shipped expected outputs."""
    import onnx
    from onnx.backend.test.runner import Runner

    cases, skipped = [], []
    base = onnx_test_dir() / "data"
    for path in sorted((base / "light").glob("light_*.onnx")):
        name = path.stem  # light_resnet50
        if not _matches(name, filters):
            continue
        model = onnx.load(str(path))
        inits = {init.name for init in model.graph.initializer}
        inputs = [Runner.generate_dummy_data(value, seed=0, name=name[len("light_"):], random=False)
                  for value in model.graph.input if value.name not in inits]
        expected = [base / "light" / f"{name}_output_{i}.pb" for i in range(len(model.graph.output))]
        if not all(p.is_file() for p in expected):
            skipped.append(Skipped("light", name, "no shipped expected output"))
            continue
        rtol, atol = RUNNER_RTOL, RUNNER_ATOL
        meta_file = base / "real" / f"test_{name[len('light_'):]}" / "data.json"
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text())
            rtol, atol = meta.get("rtol", rtol), meta.get("atol", atol)
        cases.append(Case("light", name, path.read_bytes(), [(inputs, [_read_pb(p) for p in expected])], rtol, atol))
    return cases, skipped


LOADERS = {"node": node_cases, "pytorch": pytorch_cases, "light": light_cases}


# ------------------------------------------------------------------------------------- one case, in process


def _graph_inputs(model) -> list:
    inits = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in inits]


def fold_const_inputs(model, inputs: list) -> tuple:
    """Turn small int64 shape/axes-named inputs into initializers holding ``inputs``' values.

    Returns ``(model, remaining inputs, folded names)``; the model is a copy.
    """
    import onnx
    from onnx import numpy_helper

    folded_model = onnx.ModelProto()
    folded_model.CopyFrom(model)
    remaining, folded = [], []
    for value, array in zip(_graph_inputs(model), inputs):
        if (value.name in FOLD_NAMES and array.dtype == np.int64 and array.size <= FOLD_MAX_ELEMENTS):
            folded_model.graph.initializer.append(numpy_helper.from_array(array, value.name))
            folded.append(value.name)
        else:
            remaining.append(array)
    if folded:
        kept = [v for v in folded_model.graph.input if v.name not in folded]
        del folded_model.graph.input[:]
        folded_model.graph.input.extend(kept)
    return folded_model, remaining, folded


def _symbolic(value) -> bool:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return True
    return any(not d.HasField("dim_value") or d.dim_value <= 0 for d in tensor.shape.dim)


def _clean(message: str, path) -> str:
    """The error's first line without temp paths (kept as ``message``)."""
    text = str(message).replace(str(path.parent) + os.sep, "").replace(str(path), "model.onnx")
    text = re.sub(r"/tmp/[^\s:'\"]+", "<tmp>", text)
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _reason(message: str) -> str:
    """A short reason that aggregates across cases: tensor names and shape hints replaced."""
    text = re.sub(r"\b(output|input) '[^']*'", r"\1 '<name>'", message)
    text = re.sub(r"input shape needed: \S+ (\([^)]*\)).*", r"input shape needed: <name> \1", text)
    return text[:80]


def compare(outputs: list, expected: list, rtol: float, atol: float) -> dict:
    """Compare outputs with expected ones as onnx's runner does (count, shape, dtype, allclose).

    Returns ``{"match", "loose_match", "max_abs_diff", "reason"}``; ``loose_match`` uses rtol=1e-3 atol=1e-5.
    """
    if len(outputs) != len(expected):
        return {"match": False, "loose_match": False, "max_abs_diff": None,
                "reason": f"{len(outputs)} outputs, expected {len(expected)}"}
    match = loose = True
    worst, reason = 0.0, ""
    for i, (out, ref) in enumerate(zip(outputs, expected)):
        out, ref = np.asarray(out), np.asarray(ref)
        if out.shape != ref.shape:
            return {"match": False, "loose_match": False, "max_abs_diff": None,
                    "reason": f"output {i}: shape {out.shape}, expected {ref.shape}"}
        if out.dtype != ref.dtype:
            return {"match": False, "loose_match": False, "max_abs_diff": None,
                    "reason": f"output {i}: dtype {out.dtype}, expected {ref.dtype}"}
        if ref.dtype == object or ref.dtype.kind in "US":
            ok = bool(np.array_equal(out, ref))
            match, loose = match and ok, loose and ok
            continue
        case_rtol = max(rtol, 2**-6) if ref.dtype.name == "bfloat16" else rtol  # as the runner: two bf16 ULPs
        a, b = out.astype(np.float64), ref.astype(np.float64)
        if a.size:
            finite = np.isfinite(a) & np.isfinite(b)
            diff = float(np.max(np.abs(a - b)[finite])) if finite.any() else 0.0
            worst = max(worst, diff)
        ok = bool(np.allclose(a, b, rtol=case_rtol, atol=atol, equal_nan=True))
        ok_loose = bool(np.allclose(a, b, rtol=LOOSE_RTOL, atol=LOOSE_ATOL, equal_nan=True))
        if not ok and not reason:
            reason = "values differ" + (" (within rtol=1e-3 atol=1e-5)" if ok_loose else "")
        match, loose = match and ok, loose and ok_loose
    if not match and not reason:
        reason = "values differ"
    return {"match": match, "loose_match": loose, "max_abs_diff": worst, "reason": reason}


def host_board(spec: str = "x86-host"):
    """The board to compile for, resolved once (a ``CompileTarget``): ``targets/x86-host.yaml``, else a plain
    ``{"kind": "llvm"}`` board."""
    from tvmedge.devices.board import load_board
    from tvmedge.devices.target import CompileTarget
    from tvmedge.errors import ConfigError

    try:
        return CompileTarget.resolve(load_board(spec))
    except ConfigError:
        return CompileTarget.resolve('{"kind": "llvm"}')


@dataclasses.dataclass
class Prepared:
    """A case's model after the optional preprocessing modes, with named inputs per data set."""

    model: object  # onnx.ModelProto
    names: list  # graph inputs still fed at run time, in order
    feeds: list  # one dict name -> array per data set
    expected: list  # one list of arrays per data set (graph-output order)
    folded: list  # input names turned into initializers (--fold-const-inputs)
    upgraded_from: Optional[int]  # original default-domain opset when --upgrade-opset converted the model
    note: str = ""


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def prepare(case: Case, *, fold: bool = False, upgrade_opset: int = 0) -> Prepared:
    """Apply the (opt-in, labelled) preprocessing modes to ``case``; both off = the shipped model as is.

    ``fold``: see ``fold_const_inputs``; only inputs whose value is the same in every data set are folded.
    ``upgrade_opset``: models whose default-domain opset is below it are converted with
    ``onnx.version_converter`` (semantics-preserving; onnx's own tool). A failed conversion keeps the
    original model and says so in ``note``.
    """
    from onnx import version_converter

    model = case.model()
    note, upgraded_from = "", None
    if upgrade_opset and 0 < _opset(model) < upgrade_opset:
        try:
            converted = version_converter.convert_version(model, upgrade_opset)
            upgraded_from, model = _opset(model), converted
        except Exception as err:  # the converter asserts when it has no adapter for an op
            note = f"opset upgrade to {upgrade_opset} failed ({_first_line(err)[:80]}); model kept as is"
    names = [v.name for v in _graph_inputs(model)]
    folded = []
    if fold:
        first = case.data_sets[0][0]
        model_folded, _, candidates = fold_const_inputs(model, first)
        same = [n for n in candidates
                if all(np.array_equal(dict(zip(names, inputs))[n], dict(zip(names, first))[n])
                       for inputs, _ in case.data_sets)]
        if same == candidates:
            model, folded = model_folded, candidates
        elif candidates:
            note = (note + "; " if note else "") + "not folded: values differ between data sets"
    kept = [n for n in names if n not in folded]
    feeds = [{n: a for n, a in zip(names, inputs) if n not in folded} for inputs, _ in case.data_sets]
    return Prepared(model, kept, feeds, [list(outputs) for _, outputs in case.data_sets], folded,
                    upgraded_from, note)


def _first_line(err) -> str:
    text = str(err).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)


def run_case(case: Case, board, *, fold: bool = False, upgrade_opset: int = 0, freeze: bool = False, workdir=None,
             keep_outputs: bool = False) -> dict:
    """Import, build, run and compare one case in this process; returns a JSON-able result dict.

    ``status`` is one of ``STATUSES`` (except timeout/crash, which only the worker pool reports);
    ``reason`` is short and aggregates across cases; ``message`` keeps more of the error.
    With ``keep_outputs`` the result also holds ``outputs``: per data set, the outputs in manifest order.
    With ``freeze``, inputs the importer names as setting shapes (``ShapeInputError``) are frozen with the
    case's own values (``--freeze-input``, as a user gives them) when every data set holds the same values.
    """
    import onnx

    from tvmedge.compiler.artifact import build_artifact
    from tvmedge.compiler.stages import single_stage
    from tvmedge.tune.auto import TuningOptions
    from tvmedge.errors import ModelError, ShapeInputError, UnsupportedOpError
    from tvmedge.frontend.onnx import import_model
    from tvmedge.runtime import load

    result = {"source": case.source, "name": case.name, "kind": case.kind, "fold_const_inputs": fold,
              "upgrade_opset": upgrade_opset, "freeze": freeze, "frozen": [], "folded": [], "upgraded_from": None,
              "note": "",
              "status": None, "stage": None, "reason": "", "message": "",
              "max_abs_diff": None, "loose_match": None, "times": {}}
    with tempfile.TemporaryDirectory(prefix="tvmedge-conf-", dir=workdir) as tmp:
        prepared = prepare(case, fold=fold, upgrade_opset=upgrade_opset)
        result.update(folded=prepared.folded, upgraded_from=prepared.upgraded_from, note=prepared.note)
        model = prepared.model
        # Fix the shapes the model leaves symbolic (or unset) from the first data set's inputs.
        shapes = {value.name: tuple(int(d) for d in np.shape(prepared.feeds[0][value.name]))
                  for value in _graph_inputs(model) if value.name in prepared.feeds[0] and _symbolic(value)}
        result["input_shapes"] = {k: list(v) for k, v in shapes.items()}
        model_path = Path(tmp) / "model.onnx"
        onnx.save_model(model, str(model_path))

        # ---- import
        result["stage"] = "import"
        start = time.perf_counter()
        try:
            try:
                imported = import_model(model_path, shapes)
            except ShapeInputError as err:
                if not freeze:
                    raise
                values = _frozen_values(err.inputs, prepared.feeds)
                imported = import_model(model_path, {k: v for k, v in shapes.items() if k not in values},
                                        frozen_inputs=values)
                result["frozen"] = sorted(values)
        except UnsupportedOpError as err:
            ops = ", ".join(sorted(err.ops)) or "?"
            result.update(status="import_unsupported", reason=f"unsupported op: {ops}"[:80],
                          message=_clean(err, model_path)[:400])
            return result
        except ModelError as err:
            message = _clean(err, model_path)
            short = re.sub(r"^model\.onnx:\s*", "", message)
            short = re.sub(r"^TVM's ONNX importer failed:\s*", "", short)
            result.update(status="import_error", reason=_reason(short), message=message[:400])
            return result
        except Exception as err:  # ConfigError (shape fixing) or a bug in tvmedge's frontend
            message = _clean(f"{type(err).__name__}: {err}", model_path)
            result.update(status="import_error", reason=_reason(message), message=message[:400],
                          traceback=traceback.format_exc()[-2000:])
            return result
        finally:
            result["times"]["import_s"] = round(time.perf_counter() - start, 3)

        # ---- build
        result["stage"] = "build"
        start = time.perf_counter()
        artifact_dir = Path(tmp) / "artifact"
        try:
            build_artifact(imported, single_stage(imported, board), artifact_dir, tuning=TuningOptions(search="naive"))
        except Exception as err:  # BuildError, ToolchainError, ArtifactError, or anything TVM raises
            message = _clean(f"{type(err).__name__}: {err}", model_path)
            short = re.sub(r"^BuildError: TVM could not build the model for .*?: ", "BuildError: ", message)
            result.update(status="build_error", reason=_reason(short), message=message[:400])
            return result
        finally:
            result["times"]["build_s"] = round(time.perf_counter() - start, 3)

        # ---- run
        result["stage"] = "run"
        start = time.perf_counter()
        all_outputs = []
        try:
            runtime_model = load(artifact_dir)
            wanted = {spec.name for spec in runtime_model.inputs}  # folding may have dropped unused inputs
            for feed in prepared.feeds:
                outputs = runtime_model.run({n: a for n, a in feed.items() if n in wanted})
                all_outputs.append(list(outputs.values()))
        except Exception as err:
            message = _clean(f"{type(err).__name__}: {err}", model_path)
            result.update(status="run_error", reason=_reason(message), message=message[:400])
            return result
        finally:
            result["times"]["run_s"] = round(time.perf_counter() - start, 3)

    # ---- compare (every data set must match)
    result["stage"] = "compare"
    verdicts = [compare(outputs, expected, case.rtol, case.atol)
                for outputs, expected in zip(all_outputs, prepared.expected)]
    diffs = [v["max_abs_diff"] for v in verdicts if v["max_abs_diff"] is not None]
    result["max_abs_diff"] = max(diffs) if diffs else None
    result["loose_match"] = all(v["loose_match"] for v in verdicts)
    failed = [v for v in verdicts if not v["match"]]
    if failed:
        result.update(status="mismatch", reason=f"mismatch: {failed[0]['reason']}"[:80])
    else:
        result["status"] = "match"
    if keep_outputs:
        result["outputs"] = all_outputs
    return result


def _frozen_values(names, feeds) -> dict:
    """``--freeze-input`` values for ``names`` from the case's inputs; ModelError when data sets disagree."""
    from tvmedge.errors import ModelError

    values = {}
    for name in names:
        arrays = [feed[name] for feed in feeds if name in feed]
        if not arrays or any(not np.array_equal(a, arrays[0]) for a in arrays):
            raise ModelError(f"input '{name}' sets shapes and differs between data sets: cannot freeze it")
        values[name] = arrays[0].reshape(-1).tolist()
    return values


def ort_outputs(case: Case, data_set: int = 0, *, fold: bool = False, upgrade_opset: int = 0,
                freeze: bool = False) -> list:
    """The case's model (same preprocessing as ``run_case``) run by ONNX Runtime through ``tvmedge.peer``
    on the same inputs -> outputs in graph-output order (``freeze`` changes nothing here: ORT gets the
    frozen inputs' values as inputs)."""
    import onnx

    from tvmedge.peer import onnxruntime_outputs

    prepared = prepare(case, fold=fold, upgrade_opset=upgrade_opset)
    with tempfile.TemporaryDirectory(prefix="tvmedge-ort-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(prepared.model, str(path))
        outputs = onnxruntime_outputs(path, prepared.feeds[data_set], threads=1)
    return [outputs[value.name] for value in prepared.model.graph.output]


# ----------------------------------------------------------------------------------------------- worker


def _worker_main(conn, board_spec: str, log_path: Optional[str]) -> None:
    """Worker loop: receive (case, options for ``run_case``), send back the result dict; stops on None."""
    if log_path:  # TVM and onnxslim print; keep the parent's progress lines readable
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    warnings.simplefilter("ignore")
    board = host_board(board_spec)
    conn.send({"ready": True, "target": board.spec, "board": board.name})
    while True:
        job = conn.recv()
        if job is None:
            return
        case, options = job
        try:
            result = run_case(case, board, **options)
        except Exception as err:  # a bug in this script (or in prepare); keep going
            result = {"source": case.source, "name": case.name, "kind": case.kind, **options,
                      "status": "run_error", "stage": "harness", "times": {},
                      "reason": f"harness: {type(err).__name__}: {err}"[:80],
                      "traceback": traceback.format_exc()[-2000:]}
        conn.send(result)


class WorkerPool:
    """One worker process at a time; replaced after a crash, a timeout, or ``recycle`` cases."""

    def __init__(self, board_spec: str = "x86-host", log_path: Optional[str] = None, recycle: int = 200):
        self._ctx = multiprocessing.get_context("spawn")
        self.board_spec, self.log_path, self.recycle = board_spec, log_path, recycle
        self.proc = self.conn = None
        self.served = 0
        self.info = {}

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_worker_main, args=(child, self.board_spec, self.log_path), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        if not self.conn.poll(300):
            self._kill()
            raise RuntimeError("conformance worker did not start within 300 s")
        self.info = self.conn.recv()
        self.served = 0

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()  # only our own worker, by its handle
            self.proc.join(10)
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None

    def run(self, case: Case, options: dict, timeout: float) -> dict:
        """``run_case(case, board, **options)`` in the worker, with a timeout; never raises for the case."""
        if self.proc is None or not self.proc.is_alive() or self.served >= self.recycle:
            if self.proc is not None:
                self.close()
            self._start()
        self.served += 1
        start = time.perf_counter()
        self.conn.send((case, options))
        base = {"source": case.source, "name": case.name, "kind": case.kind, **options}
        if self.conn.poll(timeout):
            try:
                result = self.conn.recv()
                result["times"]["total_s"] = round(time.perf_counter() - start, 3)
                return result
            except (EOFError, OSError):
                pass
        else:
            self._kill()
            return {**base, "status": "timeout", "stage": None, "reason": f"timeout after {timeout:.0f} s",
                    "times": {"total_s": round(time.perf_counter() - start, 3)}}
        self.proc.join(5)
        code = self.proc.exitcode
        self._kill()
        what = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return {**base, "status": "crash", "stage": None, "reason": f"worker crashed ({what})",
                "times": {"total_s": round(time.perf_counter() - start, 3)}}

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (OSError, BrokenPipeError):
                pass
        self._kill()


# ----------------------------------------------------------------------------------------------- report


IMPORTED = ("match", "mismatch", "build_error", "run_error")  # timeouts and crashes count as not imported
BUILT = ("match", "mismatch", "run_error")


def summarize(results: list, skipped: list, source: str, top: int = 10) -> dict:
    """Per source: total, import ok, build ok, match, statuses and the most common failure reasons."""
    rows = [r for r in results if r["source"] == source]
    status = collections.Counter(r["status"] for r in rows)
    import_ok = sum(1 for r in rows if r["status"] in IMPORTED)
    build_ok = sum(1 for r in rows if r["status"] in BUILT)
    reasons = collections.Counter(f"[{r['status']}] {r['reason']}" for r in rows if r["status"] != "match")
    summary = {
        "source": source,
        "total": len(rows),
        "skipped": len([s for s in skipped if s.source == source]),
        "import_ok": import_ok,
        "build_ok": build_ok,
        "match": status["match"],
        "loose_match": sum(1 for r in rows if r["status"] == "match" or (r["status"] == "mismatch" and r.get("loose_match"))),
        "status": dict(status),
        "top_reasons": reasons.most_common(top),
    }
    if source == "node":  # the subset design.md counts: inputs and outputs all plain numpy arrays
        plain = [r for r in rows if r.get("kind") == "ndarray"]
        summary["ndarray_only"] = {"total": len(plain), "match": sum(1 for r in plain if r["status"] == "match"),
                                   "import_ok": sum(1 for r in plain if r["status"] in IMPORTED)}
    return summary


def format_summary(summary: dict, mode: str) -> str:
    s = summary
    lines = [f"== {s['source']} ({mode}) ==",
             f"  total {s['total']} (skipped {s['skipped']} non-tensor)  import ok {s['import_ok']}  "
             f"build ok {s['build_ok']}  match {s['match']}  "
             f"(match at rtol=1e-3 atol=1e-5: {s['loose_match']})",
             "  by status: " + ", ".join(f"{k} {v}" for k, v in sorted(s["status"].items(), key=lambda kv: -kv[1]))]
    if "ndarray_only" in s:
        n = s["ndarray_only"]
        lines.append(f"  ndarray-only subset: total {n['total']}  import ok {n['import_ok']}  match {n['match']}")
    lines.append("  top failure reasons:")
    lines += [f"    {count:5d}  {reason}" for reason, count in s["top_reasons"]]
    return "\n".join(lines)


def environment() -> dict:
    import onnx

    try:
        from importlib.metadata import version

        tvm_version = version("apache-tvm")
    except Exception:
        tvm_version = "?"
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "tvm": tvm_version,
            "onnx": onnx.__version__, "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def describe_mode(fold: bool, upgrade_opset: int, freeze: bool = False) -> str:
    """How the figures were produced, printed next to every table."""
    parts = []
    if freeze:
        parts.append("--freeze-shape-inputs (inputs the importer names as setting shapes frozen to the case's values)")
    if fold:
        parts.append("--fold-const-inputs (small int64 shape/axes inputs folded to initializers)")
    if upgrade_opset:
        parts.append(f"--upgrade-opset {upgrade_opset} (older models converted by onnx.version_converter)")
    return "MODIFIED: " + " + ".join(parts) if parts else "default (models and inputs as shipped)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", choices=SOURCES,
                        help="source(s) to run (default: node and pytorch, plus light with --light)")
    parser.add_argument("--light", action="store_true", help="also run the light_* models (slow)")
    parser.add_argument("--fold-const-inputs", action="store_true",
                        help="MODE: fold small int64 shape/axes-named inputs into initializers before import")
    parser.add_argument("--freeze-shape-inputs", action="store_true",
                        help="MODE: freeze the inputs the importer names as setting shapes (tvmedge's --freeze-input) "
                             "to the case's values")
    parser.add_argument("--upgrade-opset", type=int, default=0, metavar="N",
                        help="MODE: convert models with a default-domain opset below N with onnx.version_converter")
    parser.add_argument("--limit", type=int, default=0, help="at most N cases per source")
    parser.add_argument("--filter", action="append", help="only cases whose name contains SUBSTR (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="per-case timeout in s (default 60, light 900)")
    parser.add_argument("--json", metavar="PATH", help="write the per-case results here")
    parser.add_argument("--board", default="x86-host", help="board (default x86-host; plain llvm if missing)")
    parser.add_argument("--worker-log", default=None, help="worker stdout/stderr (default: a temp file)")
    parser.add_argument("--recycle", type=int, default=200, help="restart the worker every N cases")
    args = parser.parse_args(argv)

    sources = args.source or ["node", "pytorch"] + (["light"] if args.light else [])
    if args.light and "light" not in sources:
        sources.append("light")
    mode = describe_mode(args.fold_const_inputs, args.upgrade_opset, args.freeze_shape_inputs)
    options = {"fold": args.fold_const_inputs, "upgrade_opset": args.upgrade_opset, "freeze": args.freeze_shape_inputs}
    log_path = args.worker_log or tempfile.mktemp(prefix="tvmedge-conformance-", suffix=".log")
    env = environment()
    print(f"conformance: sources {', '.join(sources)}; mode {mode}; onnx {env['onnx']}, tvm {env['tvm']}, "
          f"{env['cpu']} x{env['cores']}; worker log {log_path}", flush=True)

    pool = WorkerPool(args.board, log_path, args.recycle)
    results, skipped, summaries, timings = [], [], [], {}
    started = time.perf_counter()
    try:
        for source in sources:
            cases, skip = LOADERS[source](args.filter)
            skipped += skip
            if args.limit:
                cases = cases[: args.limit]
            timeout = args.timeout or DEFAULT_TIMEOUT[source]
            print(f"[{source}] {len(cases)} cases, {len(skip)} skipped (non-tensor data), timeout {timeout:.0f} s",
                  flush=True)
            t0 = time.perf_counter()
            for i, case in enumerate(cases, 1):
                result = pool.run(case, options, timeout)
                results.append(result)
                if source == "light" or i % 50 == 0 or i == len(cases):
                    done = [r for r in results if r["source"] == source]
                    elapsed = time.perf_counter() - t0
                    extra = (f" {case.name}: {result['status']} in {result['times'].get('total_s', 0):.1f} s"
                             if source == "light" else "")
                    print(f"[{source}] {i}/{len(cases)}  match {sum(r['status'] == 'match' for r in done)}  "
                          f"elapsed {elapsed:.0f} s ({elapsed / i:.2f} s/case){extra}", flush=True)
            timings[source] = {"seconds": round(time.perf_counter() - t0, 1), "cases": len(cases)}
            summaries.append(summarize(results, skipped, source))
    finally:
        pool.close()

    print()
    print(f"mode: {mode}; target {pool.info.get('target')}")
    for summary in summaries:
        print(format_summary(summary, mode))
        t = timings[summary["source"]]
        print(f"  time {t['seconds']:.0f} s for {t['cases']} cases")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "environment": env, "mode": mode, "target": pool.info.get("target"), "sources": sources,
            "filters": args.filter, "limit": args.limit, "summaries": summaries, "timings": timings,
            "skipped": [dataclasses.asdict(s) for s in skipped], "results": results}, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
