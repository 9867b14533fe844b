"""Measure single ops on this host and learn the CPU cost correction (XGBoost), with held-out-model error.

Each distinct op workload of the given models is built alone as a one-op Relax function with the no-search
schedule that ``compile`` gives untuned tasks (parallel + vectorise, :mod:`tvmedge.tune.fallback`), run with
``time_evaluator`` on this host's CPU, and recorded with its features. The regressor learns
``log(measured / roofline)`` against the x86-host unit of ``targets/x86-host.yaml``. Error is reported per
held-out model (leave one model out: the model's ops are predicted by a regressor trained on the others).

Run (a few minutes on 2 cores)::

    python -m tvmedge.partition.learn                  # measure + train + evaluate + save cpu-v<N>
    python -m tvmedge.partition.learn --reuse          # retrain from the saved measurements only

Outputs in :func:`tvmedge.partition.cost.models_dir`: ``measurements-cpu.json`` (every measured op),
``cpu-v<N>.json`` (the XGBoost model) and ``cpu-v<N>.meta.json`` (host CPU, TVM version, schedule, the
held-out error table).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .cost import FEATURE_NAMES, FEATURE_VERSION, CostModel, features, models_dir
from .opgraph import Op, extract_ops

__all__ = ["default_models", "measure_models", "train", "evaluate_held_out", "save_model", "main"]

_XGB_PARAMS = {"objective": "reg:absoluteerror", "max_depth": 5, "eta": 0.08, "subsample": 0.8,
               "colsample_bytree": 0.8, "min_child_weight": 2, "seed": 0, "nthread": 1}
_ROUNDS = 300


def default_models() -> list:
    """The bundled tiny CNN and onnx's light_* models (shipped inside the onnx package)."""
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    repo = Path(__file__).resolve().parents[2]
    return [repo / "examples" / "models" / "tiny_cnn.onnx"] + sorted(light.glob("light_*.onnx"))


def host_unit():
    """The compute unit the measurements are normalised against (targets/x86-host.yaml)."""
    from ..devices.board import load_board

    return load_board("x86-host").compute_units[0]


# --- measuring ----------------------------------------------------------------------------------------------


def measure_models(paths, *, per_model: int = 70, progress: Callable[[str], None] = print,
                   known: Optional[dict] = None) -> list:
    """Measure up to ``per_model`` distinct workloads of each model (evenly spread over the model).

    ``known`` (signature -> measured us) skips workloads already measured (shared between models).
    Returns one record per (model, workload).
    """
    from ..devices.target import CompileTarget
    from ..frontend.onnx import import_model

    target = CompileTarget.resolve("x86-host")
    unit = target.board.compute_units[0]
    known = dict(known or {})
    records = []
    for path in paths:
        model = Path(path).stem
        graph = extract_ops(import_model(path).mod, model)
        unique: dict = {}
        for op in graph.ops:
            if not op.relax_op.startswith("call_tir:"):  # PrimFuncs of the importer: not rebuilt alone
                unique.setdefault(op.signature(), [op, 0])[1] += 1
        chosen = list(unique.values())
        if len(chosen) > per_model:
            step = len(chosen) / per_model
            chosen = [chosen[int(i * step)] for i in range(per_model)]
        start = time.perf_counter()
        for op, count in chosen:
            sig = op.signature()
            if sig not in known:
                known[sig] = _time_op(op, target)
            records.append(_record(model, op, count, known[sig], unit))
        progress(f"{model}: {len(chosen)} workloads of {len(unique)} in {time.perf_counter() - start:.0f} s")
    return records


def _single_op_module(op: Op):
    """A Relax module whose ``main`` runs only ``op.call``, every tensor argument a parameter."""
    from tvm import relax

    call = op.call
    params, args = [], []

    def param(ty):
        var = relax.Var(f"p{len(params)}", ty)
        params.append(var)
        return var

    for arg in call.args:
        if isinstance(arg, relax.Tuple):
            args.append(relax.Tuple([param(f.ty) for f in arg.fields]))
        elif isinstance(arg.ty, relax.TensorType):
            args.append(param(arg.ty))
        else:
            args.append(arg)
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit(relax.Call(call.op, args, call.attrs, call.ty_args))
            gv = bb.emit_output(out)
        bb.emit_func_output(gv)
    return bb.get(), params


def _time_op(op: Op, target) -> Optional[float]:
    """Median microseconds of ``op`` alone on this host, or None when it does not build."""
    import tvm
    from tvm import relax

    from ..tune.auto import TuningOptions, auto_schedule

    try:
        mod, params = _single_op_module(op)
        scheduled, _ = auto_schedule(mod, target, TuningOptions(search="none", use_records=False))
        with tvm.transform.PassContext(opt_level=3):
            executable = tvm.compile(scheduled, target=target.tvm_target)
    except Exception:  # an op TVM cannot build alone is skipped, not fatal
        return None
    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    rng = np.random.default_rng(0)
    inputs = []
    for p in params:
        shape = [int(d) for d in p.ty.shape.values]
        dtype = str(p.ty.dtype)
        data = rng.random(shape, dtype=np.float32).astype(dtype) if "float" in dtype else \
            rng.integers(0, 4, shape).astype(dtype)
        inputs.append(tvm.runtime.tensor(data, dev))
    timer = vm.time_evaluator("main", dev, number=1, repeat=5, min_repeat_ms=5)
    return float(np.median(timer(*inputs).results) * 1e6)


def _record(model: str, op: Op, count: int, measured_us, unit) -> dict:
    roof = CostModel(correction="none").roofline(op, unit)
    return {
        "model": model, "op": op.name, "kind": op.kind, "relax_op": op.relax_op, "signature": op.signature(),
        "count": count, "measured_us": measured_us, "roofline_us": roof.roofline_us,
        "fields": {"dtype": op.dtype, "out_shape": list(op.out_shape), "in_shapes": [list(s) for s in op.in_shapes],
                   "flops": op.flops, "bytes_in": op.bytes_in, "bytes_weights": op.bytes_weights,
                   "bytes_out": op.bytes_out, "attrs": op.attrs},
    }


def _op_from_record(rec: dict) -> Op:
    f = rec["fields"]
    return Op(name=rec["op"], index=0, var="", relax_op=rec["relax_op"], kind=rec["kind"], dtype=f["dtype"],
              out_shape=tuple(f["out_shape"]), in_shapes=[tuple(s) for s in f["in_shapes"]], flops=f["flops"],
              bytes_in=f["bytes_in"], bytes_weights=f["bytes_weights"], bytes_out=f["bytes_out"], attrs=f["attrs"])


# --- learning -----------------------------------------------------------------------------------------------


def _dataset(records, unit):
    rows = [r for r in records if r["measured_us"]]
    x = np.asarray([features(_op_from_record(r), unit) for r in rows], dtype=np.float32)
    y = np.asarray([math.log(r["measured_us"] / r["roofline_us"]) for r in rows], dtype=np.float32)
    return rows, x, y


def train(records, unit=None):
    """An XGBoost booster predicting ``log(measured / roofline)`` from the records' op features."""
    import xgboost as xgb

    unit = unit or host_unit()
    _, x, y = _dataset(records, unit)
    data = xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES))
    return xgb.train(_XGB_PARAMS, data, num_boost_round=_ROUNDS)


def evaluate_held_out(records, unit=None) -> dict:
    """Leave-one-model-out error: each model's ops predicted by a regressor trained on the other models.

    Reports the median absolute percentage error per model and overall, for the learned model and for two
    references: the bare roofline and a per-kind constant factor (the median ratio of the training ops).
    Workloads of the held-out model that also occur in a training model are excluded from that model's
    training set, so "held out" means unseen shapes too.
    """
    import xgboost as xgb

    unit = unit or host_unit()
    rows, x, y = _dataset(records, unit)
    models = sorted({r["model"] for r in rows})
    per_model, errors, roof_errors, kind_errors = {}, [], [], []
    for model in models:
        test = [i for i, r in enumerate(rows) if r["model"] == model]
        test_sigs = {rows[i]["signature"] for i in test}
        train_idx = [i for i, r in enumerate(rows) if r["model"] != model and r["signature"] not in test_sigs]
        if not train_idx:
            per_model[model] = {"ops": len(test), "skipped": "no training op with an unseen shape"}
            continue
        booster = xgb.train(_XGB_PARAMS, xgb.DMatrix(x[train_idx], label=y[train_idx],
                                                     feature_names=list(FEATURE_NAMES)), num_boost_round=_ROUNDS)
        pred = booster.predict(xgb.DMatrix(x[test], feature_names=list(FEATURE_NAMES)))
        kind_factor = {}
        for kind in {rows[i]["kind"] for i in test}:
            ys = [y[i] for i in train_idx if rows[i]["kind"] == kind]
            kind_factor[kind] = float(np.median(ys)) if ys else float(np.median(y[train_idx]))
        ape = np.abs(np.exp(pred - y[test]) - 1.0)
        roof = np.abs(np.exp(-y[test]) - 1.0)
        kind = np.abs(np.exp(np.asarray([kind_factor[rows[i]["kind"]] for i in test]) - y[test]) - 1.0)
        measured = np.asarray([rows[i]["measured_us"] * rows[i]["count"] for i in test])
        predicted = np.exp(pred) * np.asarray([rows[i]["roofline_us"] * rows[i]["count"] for i in test])
        per_model[model] = {
            "ops": len(test), "median_ape": float(np.median(ape)), "roofline_median_ape": float(np.median(roof)),
            "per_kind_factor_median_ape": float(np.median(kind)),
            "sum_measured_ms": float(measured.sum() / 1e3), "sum_predicted_ms": float(predicted.sum() / 1e3),
        }
        errors.extend(ape)
        roof_errors.extend(roof)
        kind_errors.extend(kind)
    if not errors:
        return {"per_model": per_model, "median_ape": None, "roofline_median_ape": None,
                "per_kind_factor_median_ape": None, "ops": 0}
    return {"per_model": per_model, "median_ape": float(np.median(errors)),
            "roofline_median_ape": float(np.median(roof_errors)),
            "per_kind_factor_median_ape": float(np.median(kind_errors)), "ops": len(errors)}


def save_model(booster, records, evaluation: dict, folder: Optional[Path] = None, kind: str = "cpu") -> Path:
    """Write ``<kind>-v<N>.json`` + ``.meta.json`` with the next free version number; returns the model path."""
    import platform

    import tvm

    folder = Path(folder or models_dir())
    folder.mkdir(parents=True, exist_ok=True)
    versions = [int(p.stem.split("-v")[-1]) for p in folder.glob(f"{kind}-v*.json")
                if not p.name.endswith(".meta.json") and p.stem.split("-v")[-1].isdigit()]
    version = max(versions, default=0) + 1
    path = folder / f"{kind}-v{version}.json"
    booster.save_model(str(path))
    meta = {
        "name": f"{kind}-v{version}", "unit_kind": kind, "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES), "target": "log(measured_us / roofline_us)",
        "normalised_against": "targets/x86-host.yaml unit 'cpu' (fp32 80 GOP/s, 20 GB/s)",
        "host_cpu": tvm.target.codegen.llvm_get_system_cpu(), "host_machine": platform.machine(),
        "tvm_version": tvm.__version__,
        "schedule": "no-search default (AutoInline + ParallelizeVectorizeUnroll), one op per function, unfused",
        "models": sorted({r["model"] for r in records}), "samples": sum(1 for r in records if r["measured_us"]),
        "held_out": evaluation, "xgboost_params": _XGB_PARAMS, "rounds": _ROUNDS,
        "created": time.strftime("%Y-%m-%d"),
    }
    path.with_name(path.stem + ".meta.json").write_text(json.dumps(meta, indent=1))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="retrain from the saved measurements, measure nothing")
    parser.add_argument("--per-model", type=int, default=70, help="distinct workloads measured per model")
    parser.add_argument("--out", type=Path, default=None, help="folder for the measurements and the model")
    parser.add_argument("--dry-run", action="store_true", help="evaluate but do not save a model")
    args = parser.parse_args(argv)
    folder = Path(args.out or models_dir())
    data_path = folder / "measurements-cpu.json"
    if args.reuse:
        records = json.loads(data_path.read_text())["records"]
    else:
        start = time.perf_counter()
        records = measure_models(default_models(), per_model=args.per_model)
        folder.mkdir(parents=True, exist_ok=True)
        import tvm

        data_path.write_text(json.dumps({"host_cpu": tvm.target.codegen.llvm_get_system_cpu(),
                                         "seconds": round(time.perf_counter() - start), "records": records}))
        print(f"measured {len(records)} workloads in {time.perf_counter() - start:.0f} s -> {data_path}")
    evaluation = evaluate_held_out(records)
    for model, row in evaluation["per_model"].items():
        if "skipped" in row:
            print(f"  {model:24s} skipped: {row['skipped']}")
            continue
        print(f"  {model:24s} ops {row['ops']:3d}  median APE {row['median_ape']:6.1%}  "
              f"(roofline {row['roofline_median_ape']:8.1%}, per-kind factor {row['per_kind_factor_median_ape']:6.1%})"
              f"  sum measured {row['sum_measured_ms']:8.2f} ms predicted {row['sum_predicted_ms']:8.2f} ms")
    if evaluation["median_ape"] is None:
        print("no held-out error: every model's ops also occur in the other models")
    else:
        print(f"held-out median APE {evaluation['median_ape']:.1%} over {evaluation['ops']} ops "
              f"(roofline alone {evaluation['roofline_median_ape']:.1%}, per-kind factor "
              f"{evaluation['per_kind_factor_median_ape']:.1%})")
    if not args.dry_run:
        path = save_model(train(records), records, evaluation, folder)
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
