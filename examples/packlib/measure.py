"""Measure a scenario pack through tvmedge and write its ``results.json`` and plots.

What is measured (on this machine, through tvmedge's own runtime) and what is predicted (tvmedge's cost model,
no board involved) are kept apart:

- measured: accuracy on the pack's test split of the float model (ONNX Runtime, the reference) and of the
  INT8 artifact built for this host (tvmedge's runtime); the host latency of the INT8 artifact, one image per
  call (median; fps = 1000 / median); ONNX Runtime's latency on the float model in the same run, for scale; ONNX file sizes; whether the INT8 artifacts built for the
  pack's ARM and RISC-V boards, run on the emulated boards (qemu-user), give the host's outputs.
- predicted: the latency ``tvmedge partition`` predicts for the INT8 model on each board: the CPU-only plan
  (what ``tvmedge compile`` builds) and the plan the partitioner chooses over all the board's units.

Emulated timings say nothing about a board's speed and are not reported.

``pack.yaml`` (next to the model) says what the pack is::

    pack: industrial-qc
    task: ...
    classes: [ok, scratch, dent, spot]
    boards: {arm: rk3588, riscv: visionfive2}
    tuning: {search: none}
    emulated_check_images: 16
    data: {train: 3000, calib: 256, test: 800}
    training: {epochs: 10}
    latency_budget_ms: 10      # optional
    claim: {accuracy: 0.97, fps: 15}   # optional: the figures a pack is measured against
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

__all__ = ["PackConfig", "measure", "RESULT_KEYS"]

RESULT_KEYS = ("pack", "task", "model", "params", "size_kb_fp32", "size_kb_int8", "accuracy_fp32", "accuracy_int8",
               "host_latency_ms", "host_fps", "predicted_rk3588_ms", "predicted_riscv_ms", "riscv_board",
               "emulated_outputs_match", "notes")
MATCH_TOL = 1e-4  # |emulated - host| on the logits


@dataclass(frozen=True)
class PackConfig:
    """The contents of a pack's ``pack.yaml``."""

    folder: Path
    pack: str
    task: str
    classes: tuple
    boards: dict
    search: str = "none"
    emulated_check_images: int = 16
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    latency_budget_ms: Optional[float] = None
    claim: dict = field(default_factory=dict)
    model: str = "model.onnx"
    quant: str = "quant.yaml"

    @classmethod
    def read(cls, folder) -> "PackConfig":
        import yaml

        folder = Path(folder).resolve()
        data = yaml.safe_load((folder / "pack.yaml").read_text())
        known = {"pack", "task", "classes", "boards", "tuning", "emulated_check_images", "data", "training",
                 "latency_budget_ms", "claim", "model", "quant"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{folder / 'pack.yaml'}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        tuning = data.pop("tuning", {}) or {}
        return cls(folder=folder, classes=tuple(data.pop("classes")), search=str(tuning.get("search", "none")),
                   **data)

    @property
    def arm(self) -> str:
        return self.boards["arm"]

    @property
    def riscv(self) -> str:
        return self.boards["riscv"]


def _say(progress, message):
    if progress:
        progress(message)


def _host_artifact(model, out: Path, search: str, quant=None) -> Path:
    """The artifact for this machine (reused when run.sh already built it)."""
    from tvmedge import api

    if not (out / "manifest.json").is_file():
        api.compile(model, "x86-host", quant=quant, search=search, out=out)
    return out


def _run_all(loaded, images) -> tuple:
    """Logits of every image (one call each) and the wall time of each call in ms."""
    logits, times = [], []
    for image in images:
        started = time.perf_counter()
        out = loaded.run({"input": image[None]})["logits"]
        times.append((time.perf_counter() - started) * 1e3)
        logits.append(np.asarray(out).reshape(-1))
    return np.stack(logits), np.array(times)


def _ort_run(model, images) -> tuple:
    """ONNX Runtime's logits of every image (one call each) and the wall time of each call in ms."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    logits, times = [], []
    for image in images:
        started = time.perf_counter()
        out = session.run(None, {"input": image[None]})[0]
        times.append((time.perf_counter() - started) * 1e3)
        logits.append(out.reshape(-1))
    return np.stack(logits), np.array(times)


def _predict(model, board: str, cached: Path, plot: Optional[Path] = None, float_model=None) -> dict:
    """The cost model's latency for ``board``: CPU-only plan and the partitioner's chosen plan (predictions).
    ``cached``: what ``tvmedge partition --json`` wrote for this model and board (run.sh), else computed here."""
    from tvmedge import api

    if cached.is_file():  # run.sh falls back to the float model where INT8 cannot be priced: "model" says which
        summary = json.loads(cached.read_text())
        if plot is not None and summary.get("plot") and Path(summary["plot"]).is_file():
            if Path(summary["plot"]).resolve() != Path(plot).resolve():  # run.sh --ci draws it in place
                shutil.copyfile(summary["plot"], plot)
            plot = None
    else:
        from tvmedge.errors import PartitionError

        try:
            report = api.partition(model, board)
        except PartitionError:  # e.g. no INT8 rate declared for the board's CPU: price the float model
            model = float_model
            report = api.partition(model, board)
        summary = report.summary()
        if plot is not None:
            report.plot(plot)
    rows = {row["plan"]: row for row in summary["comparison"] if "error" not in row}
    single = rows.get("host-only") or rows["single-unit"]  # host-only: every op on the board's main CPU
    chosen = next(row for row in summary["comparison"] if row.get("chosen"))
    priced = "INT8" if "int8" in Path(str(summary.get("model", model))).name else "float"
    result = {"board": board, "model_priced": priced, "cpu_only_ms": single["latency_ms"],
              "cpu_only_unit": single["units"][0],
              "chosen_plan": chosen["plan"], "chosen_ms": chosen["latency_ms"], "chosen_units": chosen["units"],
              "cost_sources": summary["cost_sources"], "notes": summary["notes"]}
    return result


def _emulated_check(artifacts: dict, images, host_logits, progress) -> dict:
    """Run ``images`` on each emulated board through TVM's tracker and compare with the host's logits."""
    from tvmedge import runtime
    from tvmedge.emulator.rack import emulated_rack
    from tvmedge.runtime.remote import connect

    rows = {}
    with emulated_rack(list(artifacts), progress=progress) as rack:
        for board, artifact in artifacts.items():
            session, _ = connect(tracker=rack.tracker, key=board)
            loaded = runtime.load(artifact, session=session)
            logits = np.stack([np.asarray(loaded.run({"input": image[None]})["logits"]).reshape(-1)
                               for image in images])
            diff = float(np.max(np.abs(logits - host_logits[:len(images)])))
            rows[board] = {"images": len(images), "max_abs_diff_vs_host": diff,
                           "predictions_differing": int(np.sum(logits.argmax(1) != host_logits[:len(images)].argmax(1))),
                           "match": diff <= MATCH_TOL}
            _say(progress, f"emu:{board}: {len(images)} images, max |diff| vs host {diff:.2e}")
    return rows


def _plots(cfg: PackConfig, labels, preds, times_int8, times_ort, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cfg.classes)
    matrix = np.zeros((n, n), int)
    np.add.at(matrix, (labels, preds), 1)
    fig, ax = plt.subplots(figsize=(2.6 + 0.6 * n, 1.4 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(n), cfg.classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), cfg.classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{cfg.pack}: INT8 artifact on this host, accuracy {np.mean(labels == preds):.3f}\n"
                 f"({len(labels)} synthetic test images)", fontsize=9)
    fig.tight_layout()
    confusion = out / "confusion.png"
    fig.savefig(confusion, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    top = np.percentile(np.concatenate([times_int8, times_ort]), 99)
    if cfg.latency_budget_ms:
        top = max(top, cfg.latency_budget_ms)
    bins = np.linspace(0, top * 1.05, 50)
    for times, name in ((times_int8, "tvmedge INT8 artifact"), (times_ort, "ONNX Runtime, float model")):
        ax.hist(np.clip(times, 0, bins[-1]), bins=bins, alpha=0.55, label=f"{name} (median {np.median(times):.3f} ms)")
    if cfg.latency_budget_ms:
        ax.axvline(cfg.latency_budget_ms, color="red", linestyle="--", label=f"budget {cfg.latency_budget_ms} ms")
    ax.set_xlabel("ms per image, one image per call (measured on this host)")
    ax.set_ylabel("calls")
    ax.set_title(f"{cfg.pack}: host latency ({len(times_int8)} images each)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    histogram = out / "latency.png"
    fig.savefig(histogram, dpi=110)
    plt.close(fig)
    return {"confusion_matrix": matrix.tolist(), "plots": [confusion.name, histogram.name]}


def measure(pack_dir, build_dir, *, results_dir=None, limit: Optional[int] = None, emulated: bool = True,
            predict: bool = True, search: Optional[str] = None, progress: Optional[Callable[[str], None]] = print) -> dict:
    """Measure the pack in ``pack_dir`` using (and completing) the builds under ``build_dir``; write
    ``results.json``, ``measurements.json`` and the plots into ``results_dir`` (default: the pack folder).

    ``search`` is the schedule search the builds used (default: pack.yaml's; ``run.sh --ci`` builds with
    ``naive``, TVM's default schedules, and the notes say so). ``limit`` keeps the first N test images; ``emulated=False`` skips the emulated boards (the result then says
    ``emulated_outputs_match: false`` and why in ``notes``); ``predict=False`` skips the cost model.
    """
    import onnx

    from tvmedge import api

    cfg = PackConfig.read(pack_dir)
    search = search or cfg.search
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    out = Path(results_dir) if results_dir else cfg.folder
    out.mkdir(parents=True, exist_ok=True)
    model, quant = cfg.folder / cfg.model, cfg.folder / cfg.quant
    test = np.load(cfg.folder / "data" / "test.npz")
    images, labels = test["input"][:limit], test["labels"][:limit]

    int8_onnx = build / "model.int8.onnx"
    if not int8_onnx.is_file():
        _say(progress, "quantize (INT8)")
        api.quantize(model, quant, out=int8_onnx)
    _say(progress, "INT8 artifact for this host")
    int8_dir = _host_artifact(model, build / "models" / cfg.pack, search, quant=quant)

    _say(progress, f"accuracy and latency on this host ({len(images)} images)")
    logits_fp32, times_ort = _ort_run(model, images)
    logits_int8, times_int8 = _run_all(api.load(int8_dir), images)
    preds = logits_int8.argmax(1)
    details = _plots(cfg, labels, preds, times_int8, times_ort, out)

    predictions = {}
    if predict:
        for kind in ("arm", "riscv"):
            board = cfg.boards[kind]
            _say(progress, f"cost-model prediction for {board}")
            predictions[board] = _predict(int8_onnx, board, build / f"partition_{board}.json",
                                          plot=out / f"partition_{board}.png" if kind == "arm" else None,
                                          float_model=model)
            if kind == "arm":
                details["plots"].append(f"partition_{board}.png")

    emulated_rows = {}
    if emulated:
        artifacts = {}
        for kind in ("arm", "riscv"):
            board = cfg.boards[kind]
            artifacts[board] = build / board
            if not (artifacts[board] / "manifest.json").is_file():
                _say(progress, f"compile INT8 for {board}")
                api.compile(model, board, quant=quant, search=search, out=artifacts[board])
        count = min(cfg.emulated_check_images, len(images))
        emulated_rows = _emulated_check(artifacts, images[:count], logits_int8, progress)

    median_int8 = float(np.median(times_int8))
    arm, riscv = predictions.get(cfg.arm), predictions.get(cfg.riscv)
    notes = [f"synthetic data ({len(images)} test images); accuracy_fp32: ONNX Runtime on the float model, "
             f"accuracy_int8: tvmedge's INT8 artifact on this host; host = this machine (x86, 2 shared cores, "
             f"noisy): INT8 artifact (schedule search: {search}), one image per call, median of {len(images)} calls",
             f"ONNX Runtime float on the same images: median {np.median(times_ort):.3f} ms"]
    if arm:
        notes.append(f"{cfg.arm} figure is a cost-model PREDICTION of the CPU-only {arm['model_priced']} model on "
                     f"{arm['cpu_only_unit']} "
                     f"(chosen {arm['chosen_plan']} plan over {'+'.join(arm['chosen_units'])}: "
                     f"{arm['chosen_ms']:.3f} ms, not built: compile does not combine partition with quant yet)")
    if riscv:
        notes.append(f"{cfg.riscv} figure is a cost-model PREDICTION of the {riscv['model_priced']} model on "
                     f"{riscv['cpu_only_unit']}" + ("" if riscv["model_priced"] == "INT8" else
                                                   " (tvmedge partition cannot price INT8 there: no int8 rate "
                                                   "declared for that CPU)"))
    if emulated:
        notes.append(f"emulated check: {', '.join(emulated_rows)} (qemu-user), first "
                     f"{min(cfg.emulated_check_images, len(images))} test images, logits within {MATCH_TOL} of the host's")
    else:
        notes.append("emulated boards not run in this measurement")
    results = {
        "pack": cfg.pack, "task": cfg.task, "model": cfg.model,
        "params": int(sum(int(np.prod(t.dims)) for t in onnx.load(str(model)).graph.initializer)),
        "size_kb_fp32": round(model.stat().st_size / 1024, 1),
        "size_kb_int8": round(int8_onnx.stat().st_size / 1024, 1),
        "accuracy_fp32": round(float(np.mean(logits_fp32.argmax(1) == labels)), 4),
        "accuracy_int8": round(float(np.mean(preds == labels)), 4),
        "host_latency_ms": round(median_int8, 4),
        "host_fps": round(1000.0 / median_int8, 1),
        "predicted_rk3588_ms": round(arm["cpu_only_ms"], 4) if arm and cfg.arm == "rk3588" else None,
        "predicted_riscv_ms": round(riscv["cpu_only_ms"], 4) if riscv else None,
        "riscv_board": cfg.riscv,
        "emulated_outputs_match": bool(emulated_rows) and all(row["match"] for row in emulated_rows.values()),
        "notes": "; ".join(notes),
    }
    measurements = {
        "results": results, "test_images": len(images),
        "host_latency_ms": {name: {"median": float(np.median(t)), "p90": float(np.percentile(t, 90)),
                                   "mean": float(np.mean(t))}
                            for name, t in (("tvmedge_int8", times_int8), ("onnxruntime_fp32", times_ort))},
        "predictions": predictions, "emulated": emulated_rows, "latency_budget_ms": cfg.latency_budget_ms,
        "claim": cfg.claim, **details,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "measurements.json").write_text(json.dumps(measurements, indent=2) + "\n")
    if (out / "README.md").is_file():
        _update_readme(out / "README.md", render_results(cfg, measurements))
    return measurements


START = "<!-- pack-results:start (written by the measurement, examples/packlib/measure.py; do not edit) -->"
END = "<!-- pack-results:end -->"


def render_results(cfg: PackConfig, m: dict) -> str:
    """The pack README's results section, from what :func:`measure` wrote."""
    r, lat = m["results"], m["host_latency_ms"]
    lines = [
        "| figure | value | how |",
        "|---|---|---|",
        f"| accuracy, float model | {r['accuracy_fp32']:.1%} | measured: ONNX Runtime, {m['test_images']} synthetic "
        "test images |",
        f"| accuracy, INT8 artifact | {r['accuracy_int8']:.1%} | measured: tvmedge's INT8 artifact on this host, "
        "same images |",
        f"| model size | {r['size_kb_fp32']:.1f} KB float -> {r['size_kb_int8']:.1f} KB INT8 ({r['params']:,} "
        "parameters) | ONNX files |",
        f"| host latency / fps | {r['host_latency_ms']:.3f} ms / {r['host_fps']:,.0f} fps | measured: INT8 "
        f"artifact, one image per call, median (p90 {lat['tvmedge_int8']['p90']:.3f} ms); ONNX Runtime float: "
        f"{lat['onnxruntime_fp32']['median']:.3f} ms; this host is x86 with 2 shared, busy cores |",
    ]
    for board, p in m["predictions"].items():
        lines.append(f"| {board} latency / fps | {p['cpu_only_ms']:.3f} ms / {1000 / p['cpu_only_ms']:,.0f} fps | "
                     f"PREDICTED by tvmedge's cost model ({p['model_priced']} model, CPU only, on {p['cpu_only_unit']}"
                     + ("" if p["model_priced"] == "INT8" else "; the cost model has no INT8 rate for this CPU")
                     + "); "
                     f"{p['chosen_plan']} plan over {'+'.join(p['chosen_units'])}: {p['chosen_ms']:.3f} ms |")
    for board, e in m["emulated"].items():
        lines.append(f"| emulated {board} = host | {'yes' if e['match'] else 'NO'} | measured: {e['images']} test "
                     f"images under qemu-user, max abs logit difference {e['max_abs_diff_vs_host']:.1e}, "
                     f"{e['predictions_differing']} predictions differing |")
    if m.get("latency_budget_ms"):
        budget = m["latency_budget_ms"]
        verdicts = [f"host {r['host_latency_ms']:.3f} ms (measured) {'within' if r['host_latency_ms'] <= budget else 'OVER'}"]
        verdicts += [f"{b} {p['cpu_only_ms']:.3f} ms (predicted) {'within' if p['cpu_only_ms'] <= budget else 'OVER'}"
                     for b, p in m["predictions"].items()]
        lines.append(f"| latency budget | {budget} ms per call | {'; '.join(verdicts)} |")
    if m.get("claim"):
        c = m["claim"]
        per = int(c.get("patches_per_frame", 1))
        speeds = [f"{1000 / (per * r['host_latency_ms']):,.1f} on this host (measured)"]
        speeds += [f"{1000 / (per * p['cpu_only_ms']):,.1f} on {b} (predicted)" for b, p in m["predictions"].items()
                   if b == "rk3588"]
        lines.append(f"| the seed's figures | {c['accuracy']:.0%} at {c['fps']} fps | reached here: "
                     f"{r['accuracy_int8']:.1%} accuracy (measured, synthetic data); frames/s"
                     + (f" of {per} patches per frame, one call each" if per > 1 else "") + ": "
                     + ", ".join(speeds) + " |")
    return "\n".join(lines)


def _update_readme(readme: Path, section: str) -> None:
    text = readme.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        readme.write_text(head + START + "\n" + section + "\n" + END + rest.split(END, 1)[1])


def copy_pack(pack_dir, dest) -> Path:
    """Copy a pack (and this library) to ``dest`` so a run can write its data and results there."""
    pack_dir = Path(pack_dir)
    target = Path(dest) / pack_dir.name
    shutil.copytree(pack_dir, target, ignore=shutil.ignore_patterns("data", "out", "__pycache__"))
    shutil.copytree(Path(__file__).parent, Path(dest) / "packlib", ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)  # several packs may share one destination
    return target
