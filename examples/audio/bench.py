"""Measurements shared by the audio packs' ``measure.py`` scripts, all through tvmedge's own API.

- :func:`run_all`: a host artifact over many inputs (``tvmedge.runtime``), for accuracy;
- :func:`latency`: host latency of an artifact and ONNX Runtime on the same input, interleaved round by round in
  one process, so the ratio holds on a noisy machine even where the milliseconds do not;
- :func:`predicted`: the cost model's figure for a board (``tvmedge partition``) — a prediction, never a
  measurement;
- :func:`on_emulated_boards`: the boards' artifacts run under qemu through TVM's RPC tracker
  (``tvmedge board rack``), for output equality with the host (emulated timings mean nothing);
- :func:`confusion_plot`;
- :func:`partition_json`: what ``tvmedge partition --json [--explain] [--plot]`` writes, from the library (the
  packs' ``run.sh --ci`` builds everything in one Python process instead of one per verb).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np

__all__ = ["run_all", "latency", "predicted", "on_emulated_boards", "confusion_plot", "kib", "partition_json"]


def kib(path) -> float:
    """Size of a file, or of every file under a folder, in KiB (1 decimal)."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return round(size / 1024, 1)


def run_all(model, feeds: list) -> list:
    """``[model.run(feed) for feed in feeds]`` for a loaded ``tvmedge.runtime`` model (or a path to load)."""
    from tvmedge import runtime

    model = runtime.load(model) if isinstance(model, (str, Path)) else model
    return [model.run(feed) for feed in feeds]


def latency(artifact, onnx_model, feed: dict, rounds: int = 30, per_round: int = 5) -> dict:
    """Median host latency (ms) of the artifact and of ONNX Runtime (one thread each, as TVM's pool has on a
    2-vCPU machine) on ``feed``, alternating between them every ``per_round`` runs; fps = 1000 / median."""
    import onnxruntime as ort

    from tvmedge import runtime

    model = runtime.load(artifact)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_model), options, providers=["CPUExecutionProvider"])
    ours, theirs = [], []
    model.run(feed), session.run(None, feed)  # warm-up: lazy allocation on both sides
    for _ in range(rounds):
        for times, call in ((ours, lambda: model.run(feed)), (theirs, lambda: session.run(None, feed))):
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1e3)
    median, ort_median = float(np.median(ours)), float(np.median(theirs))
    return {"median_ms": round(median, 3), "p90_ms": round(float(np.percentile(ours, 90)), 3),
            "fps": round(1000.0 / median, 1), "ort_median_ms": round(ort_median, 3),
            "ratio_vs_ort": round(median / ort_median, 2), "runs": len(ours), "times_ms": ours}


def partition_json(onnx_model, board: str, path, *, plot=None, explain: bool = False) -> dict:
    """``tvmedge partition ONNX --target BOARD --json [--explain] [--plot PLOT] > PATH`` in this process -> the
    summary (what :func:`predicted` reads back)."""
    import json

    from tvmedge import api

    report = api.partition(onnx_model, board)
    data = report.summary()
    if explain:
        data["explain"] = report.explain()
    if plot:
        data["plot"] = report.plot(plot)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
    return data


def predicted(onnx_model, board: str, saved=None) -> dict:
    """The cost model's latency for ``board`` (``tvmedge partition``): the single-CPU figure (what a plain
    artifact runs on) and the chosen plan's over every unit (accelerators priced at data-sheet peak).
    ``saved``: the ``tvmedge partition --json`` output run.sh wrote for this model and board, if it exists."""
    import json

    if saved is not None and Path(saved).is_file():
        summary = json.loads(Path(saved).read_text())
    else:
        from tvmedge import api

        summary = api.partition(onnx_model, board).summary()
    single = next((r for r in summary["comparison"] if r["plan"] == "single-unit" and "error" not in r), None)
    return {"board": board, "cpu_ms": round(single["latency_ms"], 3) if single else None,
            "cpu_unit": ",".join(single["units"]) if single else None,
            "plan_ms": round(summary["predicted"]["latency_ms"], 3), "plan": summary["algorithm"],
            "plan_units": sorted({s["unit"] for s in summary["stages"]}), "notes": summary["notes"]}


def on_emulated_boards(jobs: dict, progress=print) -> dict:
    """Run artifacts on emulated boards (qemu) with each board's own runtime, reached through TVM's RPC tracker
    as a real rack would be: ``jobs`` = ``{board: {name: (artifact, [feed, ...])}}`` -> ``{board: {name:
    [outputs per feed]}}``. One rack (tracker + one emulated board per name) serves every job."""
    from tvmedge import runtime
    from tvmedge.emulator.rack import emulated_rack
    from tvmedge.runtime.remote import connect

    results = {}
    with emulated_rack(list(jobs), progress=progress) as rack:
        for board, named in jobs.items():
            for name, (artifact, feeds) in named.items():
                # a session per artifact: every artifact's library is uploaded as model.so, and a second one in
                # the same session would be dlopen'ed from the same path as the first (found by the assistant pack)
                session, where = connect(tracker=rack.tracker, key=board)
                model = runtime.load(artifact, session=session)
                started = time.perf_counter()
                try:
                    results.setdefault(board, {})[name] = [model.run(feed) for feed in feeds]
                except TypeError:  # tvmedge's RPC path cannot return a tuple of outputs yet: run it on the board directly
                    from tvmedge import api

                    where = "tvmedge run --board (RPC returns no tuple outputs yet)"
                    results[board][name] = [api.run(artifact, feed, board=f"emu:{board}").outputs for feed in feeds[:2]]
                progress(f"{board}: {name}, {len(feeds)} inputs in {time.perf_counter() - started:.1f} s "
                         f"({where}, emulated)")
                model = session = None  # closes the session: the board takes one at a time
                gc.collect()
    return results


def confusion_plot(labels, predictions, classes, path, title: str) -> str:
    """A confusion matrix (rows: true class, columns: predicted), counts written in the cells -> ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    matrix = np.zeros((n, n), int)
    for true, pred in zip(labels, predictions):
        matrix[true, pred] += 1
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.55 * n + 2))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, matrix[i, j], ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("spoken")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
