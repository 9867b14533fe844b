"""The shipped schedule cost model: MetaSchedule's XGBoost model, trained offline on measured tuning records.

A board that cannot be measured on (a cross target, a CI job) still needs fast code. MetaSchedule already has
what it takes to choose a schedule without running it — its per-store features and its XGBoost cost model —
but it trains that model *during* a search, from measurements. Here the same model is trained once, offline,
from the records in ``tuning_logs/`` (and any others given to ``train``), and shipped as a file in
``tvmedge/tune/models/`` (versioned ``schedule-vN.npz`` + ``schedule-vN.meta.json``), like partition/models/.

The file holds an ensemble of boosters, each trained on a bootstrap resample of the *workloads* (so the
spread says how much the prediction depends on which workloads were seen). A candidate's score is
``mean - risk * std`` over the ensemble; ``risk`` is read from the model's meta (0 = the mean).

Labels are MetaSchedule's own: within one workload, ``best run time / run time`` (1 = the fastest measured
candidate), so the model learns to rank candidates of one workload, not to predict absolute time.

    python -m tvmedge.tune.costmodel train [--logs FOLDER ...] [--members 5] [--hold-out NAME ...]
    python -m tvmedge.tune.costmodel evaluate [--logs FOLDER ...]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import TuningError, first_line

__all__ = ["ScheduleModel", "load_schedule_model", "featurize", "train", "evaluate", "MODELS_DIR"]

MODELS_DIR = Path(__file__).resolve().parent / "models"
_FILE = re.compile(r"schedule-v(\d+)\.npz$")


@dataclass
class Group:
    """The measured candidates of one workload: per-candidate feature matrices and mean run times."""

    workload: str  # structural hash (hex) of the workload
    features: list  # one (blocks x features) float32 array per candidate
    costs: np.ndarray  # seconds, one per candidate
    source: str = ""  # the records folder it came from

    @property
    def labels(self) -> np.ndarray:
        return self.costs.min() / self.costs


@dataclass
class ModelMeta:
    version: int
    members: int
    risk: float = 0.0
    trained_on: list = field(default_factory=list)  # records folders (names) and their sizes
    workloads: int = 0
    candidates: int = 0
    held_out: dict = field(default_factory=dict)  # evaluation on workloads not used for training
    created: str = ""


def _packsum_predict(boosters, features: list) -> np.ndarray:
    """Each booster's score per candidate, shape (boosters, candidates) (MetaSchedule's pack-sum: a candidate's
    score is the sum over its blocks). Candidates without features score 0.

    The blocks of all candidates are stacked once and scored with ``inplace_predict`` (no DMatrix: building one
    per call cost ~20 ms, a third of a zero-measurement compile's prediction time)."""
    sizes = [len(f) for f in features]
    if not any(sizes):
        return np.zeros((len(boosters), len(features)))
    ids = np.repeat(np.arange(len(features)), sizes)
    blocks = np.ascontiguousarray(np.concatenate([f for f in features if len(f)], axis=0), dtype=np.float32)
    return np.stack([np.bincount(ids, weights=b.inplace_predict(blocks), minlength=len(features)) for b in boosters])


def _predict_features(boosters, features: list, risk: float) -> np.ndarray:
    scores = _packsum_predict(boosters, features)
    return scores.mean(axis=0) - risk * scores.std(axis=0)


def _make_cost_model_class():
    """Defined lazily: MetaSchedule's ``derived_object`` needs TVM, which importing this module must not load."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.cost_model import PyCostModel
    from tvm.s_tir.meta_schedule.feature_extractor import PerStoreFeature

    @derived_object
    class FrozenEnsemble(PyCostModel):
        """A MetaSchedule cost model that predicts with the shipped boosters and never learns (``update`` is a
        no-op: nothing is measured when it is used)."""

        def __init__(self, boosters, risk: float):
            super().__init__()
            self.boosters = boosters
            self.risk = risk
            self.extractor = PerStoreFeature()
            self.scores = {}  # Schedule -> score of every candidate scored since the last ``forget()``

        def forget(self) -> None:
            self.scores = {}

        def load(self, path: str) -> None:
            raise TuningError("the shipped schedule model is loaded with tvmedge.tune.costmodel.load_schedule_model")

        def save(self, path: str) -> None:
            raise TuningError("the shipped schedule model is written by `python -m tvmedge.tune.costmodel train`")

        def update(self, context, candidates, results) -> None:
            return None

        def predict(self, context, candidates) -> np.ndarray:
            features = [x.numpy().astype("float32") for x in self.extractor.extract_from(context, candidates)]
            scores = _predict_features(self.boosters, features, self.risk).astype("float64")
            # kept by schedule object (FFI objects hash and compare by handle; the dict keeps them alive, so no
            # handle is reused): the search returns some of these very objects, and their features are the
            # costliest part of a prediction to compute again
            self.scores.update(zip((c.sch for c in candidates), scores))
            return scores

    return FrozenEnsemble


class ScheduleModel:
    """The shipped ensemble: ``predict(features)`` for offline use, ``cost_model()`` for MetaSchedule."""

    def __init__(self, boosters: list, meta: ModelMeta, path: Optional[Path] = None):
        self.boosters = boosters
        self.meta = meta
        self.path = path
        self._cost_model = None

    @property
    def label(self) -> str:
        return f"schedule-v{self.meta.version}"

    def predict(self, features: list) -> np.ndarray:
        return _predict_features(self.boosters, features, self.meta.risk)

    def cost_model(self):
        if self._cost_model is None:
            self._cost_model = _make_cost_model_class()(self.boosters, self.meta.risk)
        return self._cost_model

    def save(self, path: Path) -> Path:
        """Writes ``path`` (.npz of the boosters' UBJSON) and ``path`` with ``.meta.json``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blobs = {f"member{i}": np.frombuffer(bytes(b.save_raw("ubj")), dtype=np.uint8)
                 for i, b in enumerate(self.boosters)}
        with open(path, "wb") as out:
            np.savez_compressed(out, **blobs)
        path.with_suffix(".meta.json").write_text(json.dumps(self.meta.__dict__, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "ScheduleModel":
        import xgboost as xgb

        path = Path(path)
        meta_path = path.with_suffix(".meta.json")
        try:
            meta = ModelMeta(**json.loads(meta_path.read_text()))
            with np.load(path) as blobs:
                names = sorted(blobs.files, key=lambda n: int(n.removeprefix("member")))
                boosters = []
                for name in names:
                    booster = xgb.Booster()
                    booster.load_model(bytearray(blobs[name].tobytes()))
                    # one thread: a prediction scores a few hundred rows, where a second thread only adds
                    # synchronisation (measured 4 ms vs 35 ms per call on this 2-core machine under load)
                    booster.set_param({"nthread": 1})
                    boosters.append(booster)
        except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError, xgb.core.XGBoostError) as err:
            raise TuningError(f"schedule cost model {path} cannot be read: {first_line(err, 160)}") from err
        if not boosters:
            raise TuningError(f"schedule cost model {path} holds no boosters")
        return cls(boosters, meta, path)


def model_files(folder: Path = MODELS_DIR) -> list:
    """The shipped model files, oldest version first."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("schedule-v*.npz") if (m := _FILE.search(p.name))]
    return [p for _, p in sorted(found)]


_LOADED: dict = {}


def load_schedule_model(path=None) -> Optional[ScheduleModel]:
    """The newest shipped model (cached per process), a given file, or None when none is shipped."""
    if path is None:
        files = model_files()
        if not files:
            return None
        path = files[-1]
    path = Path(path)
    if path not in _LOADED:
        _LOADED[path] = ScheduleModel.load(path)
    return _LOADED[path]


# -- training data ----------------------------------------------------------------------------------------
def featurize(folder, *, progress=None) -> list:
    """Per-workload feature groups of every measured record in a tuning-records folder.

    Each record's trace is replayed on its workload (MetaSchedule's ``as_measure_candidate``) and featurized
    with the same extractor the search uses, so training and prediction see identical features.
    """
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.feature_extractor import PerStoreFeature
    from tvm.s_tir.meta_schedule.utils import shash2hex

    from .database import TuningDatabase
    from .tasks import load_tensor_intrinsics

    load_tensor_intrinsics()
    database = TuningDatabase(folder, create=False, read_only=True)
    records = database.ms_database.get_all_tuning_records()
    by_workload: dict = {}
    for record in records:
        if record.run_secs:
            secs = [float(s) for s in record.run_secs]
            if all(s > 0 for s in secs) and max(secs) < 1e8:  # 1e9/1e10 mark failed or placeholder records
                by_workload.setdefault(shash2hex(record.workload.mod), []).append((record, float(np.mean(secs))))
    extractor, groups = PerStoreFeature(), []
    for index, (workload, items) in enumerate(by_workload.items()):
        if len(items) < 2:
            continue  # one candidate ranks nothing
        record = items[0][0]
        context = ms.TuneContext(mod=record.workload.mod, target=record.target, num_threads=1)
        candidates, costs = [], []
        for rec, cost in items:
            try:
                candidates.append(rec.as_measure_candidate())
                costs.append(cost)
            except Exception:  # a trace this TVM cannot replay any more: skip the record, keep the rest
                continue
        if len(candidates) < 2:
            continue
        features = [x.numpy().astype("float32") for x in extractor.extract_from(context, candidates)]
        keep = [i for i, f in enumerate(features) if len(f)]
        groups.append(Group(workload, [features[i] for i in keep], np.array([costs[i] for i in keep]),
                            source=Path(folder).name))
        if progress:
            progress(index + 1, len(by_workload))
    return groups


def _train_booster(groups: list, seed: int):
    from tvm.s_tir.meta_schedule.cost_model import XGBModel
    from tvm.s_tir.meta_schedule.cost_model.xgb_model import XGBConfig

    model = XGBModel(config=XGBConfig(seed=seed, nthread=2), num_warmup_samples=0, verbose_eval=0,
                     early_stopping_rounds=30)
    xs = [f for g in groups for f in g.features]
    ys = np.concatenate([g.labels for g in groups]).astype("float32")
    model._train(xs, ys)  # MetaSchedule's own training (pack-sum objective, early stopping on p-rmse)
    return model.booster


def train(groups: list, *, members: int = 5, seed: int = 0, risk: float = 0.0, version: int = 1) -> ScheduleModel:
    """An ensemble of ``members`` boosters, each on a bootstrap resample of the workloads (the first on all)."""
    if not groups:
        raise TuningError("no measured records to train on (need workloads with at least two records)")
    rng = np.random.default_rng(seed)
    boosters = []
    for member in range(members):
        if member == 0:
            sample = groups
        else:
            sample = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        boosters.append(_train_booster(sample, seed + member))
    meta = ModelMeta(version=version, members=members, risk=risk, workloads=len(groups),
                     candidates=sum(len(g.costs) for g in groups), created=time.strftime("%Y-%m-%d"))
    return ScheduleModel(boosters, meta)


def evaluate(model: ScheduleModel, groups: list) -> dict:
    """How good the model's pick is, per workload: run time of its top-1 (and best of its top-8) over the best
    measured. ``geomean_top1`` = 1.0 means it always picks the fastest measured candidate."""
    top1, top8 = [], []
    for group in groups:
        order = np.argsort(-model.predict(group.features))
        best = group.costs.min()
        top1.append(group.costs[order[0]] / best)
        top8.append(group.costs[order[:8]].min() / best)
    if not groups:
        return {"workloads": 0}
    return {"workloads": len(groups), "geomean_top1": float(np.exp(np.mean(np.log(top1)))),
            "geomean_top8": float(np.exp(np.mean(np.log(top8)))), "worst_top1": float(np.max(top1))}


# -- command line -----------------------------------------------------------------------------------------
def _default_logs() -> list:
    from .database import shipped_log_root

    root = shipped_log_root()
    return sorted(p for p in root.iterdir() if p.is_dir()) if root and root.is_dir() else []


def _load_groups(folders: list) -> list:
    groups = []
    for folder in folders:
        start = time.monotonic()
        found = featurize(folder)
        print(f"  {folder}: {len(found)} workloads, {sum(len(g.costs) for g in found)} candidates "
              f"({time.monotonic() - start:.0f} s)", file=sys.stderr)
        groups += found
    return groups


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tvmedge.tune.costmodel", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train the shipped schedule model from tuning-records folders")
    p_train.add_argument("--logs", action="append", type=Path, help="records folder (default: the shipped ones)")
    p_train.add_argument("--members", type=int, default=5)
    p_train.add_argument("--risk", type=float, default=0.0)
    p_train.add_argument("--hold-out", type=float, default=0.2,
                         help="share of workloads kept out to report the model's pick quality (then retrained on all)")
    p_train.add_argument("--out", type=Path, help="model file (default: the next version in tvmedge/tune/models/)")
    p_eval = sub.add_parser("evaluate", help="pick quality of the shipped model on records folders")
    p_eval.add_argument("--logs", action="append", type=Path)
    p_eval.add_argument("--model", type=Path)
    args = parser.parse_args(argv)
    folders = args.logs or _default_logs()
    try:
        groups = _load_groups(folders)
        if args.command == "evaluate":
            model = load_schedule_model(args.model)
            if model is None:
                raise TuningError("no schedule model is shipped; train one first")
            print(json.dumps(evaluate(model, groups), indent=1))
            return 0
        rng = np.random.default_rng(0)
        order = rng.permutation(len(groups))
        cut = int(len(groups) * args.hold_out)
        held = [groups[i] for i in order[:cut]]
        trial = train([groups[i] for i in order[cut:]], members=args.members, risk=args.risk)
        held_out = evaluate(trial, held) if held else {}
        print(f"held-out workloads: {json.dumps(held_out)}", file=sys.stderr)
        files = model_files()
        version = (int(_FILE.search(files[-1].name).group(1)) + 1) if files else 1
        model = train(groups, members=args.members, risk=args.risk, version=version)
        model.meta.held_out = held_out
        model.meta.trained_on = [{"records": Path(f).name,
                                  "candidates": sum(len(g.costs) for g in groups if g.source == Path(f).name)}
                                 for f in folders]
        out = model.save(args.out or MODELS_DIR / f"schedule-v{version}.npz")
        print(f"wrote {out} ({model.meta.workloads} workloads, {model.meta.candidates} candidates)")
        return 0
    except TuningError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
