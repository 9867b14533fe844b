"""tvmedge vs ONNX Runtime on this machine, as latency ratios measured in one run.

For each model: ONNX Runtime (CPU provider, same thread count) and tvmedge artifacts built with
  naive    — TVM's default build (no schedule),
  fallback — the no-search schedule (parallelise + vectorise) for every task, nothing measured,
  zero     — ``--search none`` with no tuning records at all (an empty TVMEDGE_TUNING_LOGS): every schedule is
             predicted by the shipped cost model, nothing is measured — what a board we cannot run on gets,
  quick    — the default compile with no records: the quick search measures the predicted candidates
             (its tuning time is reported),
  logs     — the shipped tuning_logs/ for this CPU (or a sibling CPU's, transferred), no search.
Models marked held out (HELD_OUT) were not looked at while the zero-measurement scheduler was designed; the
table reports them separately.
Timings interleave the engines round by round (same process, same inputs) so that machine noise hits all
of them alike; the ratio is tvmedge median / ORT median. Results go to benchmarks/results.{md,json}.

    .venv/bin/python benchmarks/compare_ort.py                      # default models and variants
    .venv/bin/python benchmarks/compare_ort.py --models light_resnet50 --variants logs,naive
    .venv/bin/python benchmarks/compare_ort.py --variants zero --work /tmp/b --build-only   # build now ...
    .venv/bin/python benchmarks/compare_ort.py --variants zero --work /tmp/b                # ... time when quiet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LIGHT = Path(__import__("onnx").__file__).parent / "backend" / "test" / "data" / "light"
MODELS = {
    "tiny_cnn": REPO / "examples" / "models" / "tiny_cnn.onnx",
    "light_squeezenet": LIGHT / "light_squeezenet.onnx",
    "light_shufflenet": LIGHT / "light_shufflenet.onnx",
    "light_inception_v1": LIGHT / "light_inception_v1.onnx",
    "light_resnet50": LIGHT / "light_resnet50.onnx",
    "light_bvlc_alexnet": LIGHT / "light_bvlc_alexnet.onnx",
    "light_vgg19": LIGHT / "light_vgg19.onnx",
    "light_densenet121": LIGHT / "light_densenet121.onnx",
    "light_inception_v2": LIGHT / "light_inception_v2.onnx",
    "light_zfnet512": LIGHT / "light_zfnet512.onnx",
}
HELD_OUT = ("light_densenet121", "light_inception_v2", "light_zfnet512")
VARIANTS = ("naive", "fallback", "zero", "quick", "logs")


def ort_session(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build(name, path, variant, workdir, board):
    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    empty = workdir / f"no-records-{variant}"  # TVMEDGE_TUNING_LOGS=<empty folder>: no records, shipped included
    empty.mkdir(parents=True, exist_ok=True)
    env = {"TVMEDGE_TUNING_LOGS": str(empty)}
    if variant == "naive":
        options = TuningOptions(search="naive")
    elif variant == "fallback":
        options = TuningOptions(search="none", predict=False)
    elif variant == "zero":
        options = TuningOptions(search="none")
    elif variant == "quick":
        options = TuningOptions(search="quick")
    else:
        from tvmedge.tune.database import transfer_source

        key = _key(board)
        folders = [p.name for p in (REPO / "tuning_logs").iterdir() if p.is_dir()]
        source = key if key in folders else transfer_source(key, folders)  # a sibling CPU's records
        if source is None:
            return None, {"error": f"no shipped logs for {key}"}
        shipped = REPO / "tuning_logs" / source
        options, env = TuningOptions(search="none", records=str(shipped)), {}
    start = time.perf_counter()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        artifact = api.compile(path, board, out=workdir / f"{name}-{variant}", tuning=options)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    info = {"build_s": round(time.perf_counter() - start, 1), "tuning": artifact.manifest.tuning}
    return api.load(artifact.path), info


def _key(board):
    from tvmedge import api
    from tvmedge.tune.database import target_key

    return target_key(api.load_board(board).tvm_target())


def reuse_or_build(name, path, variant, workdir, board):
    """:func:`build`, or the artifact and build info a previous run left in ``workdir`` (``--work``): builds can
    then run while the machine is busy and the timing later, when it is quiet."""
    from tvmedge import api

    saved = workdir / f"{name}-{variant}.json"
    if saved.is_file() and (workdir / f"{name}-{variant}" / "manifest.json").is_file():
        print(f"[bench] {name} {variant}: reusing the build in {workdir}", file=sys.stderr, flush=True)
        return api.load(workdir / f"{name}-{variant}"), json.loads(saved.read_text())
    model, info = build(name, path, variant, workdir, board)
    if model is not None:
        saved.write_text(json.dumps(info, default=str))
    return model, info


def bench(model_name, path, variants, rounds, per_round, board, threads, work=None):
    from tvmedge.runtime.inputs import random_inputs

    with tempfile.TemporaryDirectory(prefix="tvmedge-bench-") as tmp:
        workdir = Path(work or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        runners, infos = {}, {}
        for variant in variants:
            model, info = reuse_or_build(model_name, path, variant, workdir, board)
            infos[variant] = info
            if model is not None:
                runners[variant] = model
        any_model = next(iter(runners.values()))
        feed = random_inputs(any_model.inputs, seed=0)
        session = ort_session(path, threads)
        engines = {"ort": lambda: session.run(None, feed)}
        for variant, model in runners.items():
            engines[variant] = (lambda m: (lambda: m.run(feed)))(model)
        reference = session.run(None, feed)
        for variant, model in runners.items():
            out = list(model.run(feed).values())
            infos[variant]["max_abs_diff_vs_ort"] = float(max(np.max(np.abs(a - b)) for a, b in zip(out, reference)))
        times = {name: [] for name in engines}
        for run in engines.values():  # warm up
            run()
        for _ in range(rounds):
            for name, run in engines.items():
                # let the other engine's pool go idle first: ORT's and TVM's workers spin-wait after a run, and
                # spinning threads of one engine would steal the 2 cores from the next one's first calls
                time.sleep(0.05)
                round_start = time.perf_counter()
                for _ in range(per_round):  # at most per_round runs, or ~2 s, whichever comes first
                    start = time.perf_counter()
                    run()
                    times[name].append((time.perf_counter() - start) * 1e3)
                    if time.perf_counter() - round_start > 2.0:
                        break
    ort_ms = statistics.median(times["ort"])
    row = {"model": model_name, "ort_ms": ort_ms, "variants": {}}
    for variant in variants:
        entry = dict(infos[variant])
        if variant in times:
            entry["ms"] = statistics.median(times[variant])
            entry["ratio"] = entry["ms"] / ort_ms
        row["variants"][variant] = entry
    return row


def render(rows, variants, meta) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['cpu']} ({meta['threads']} threads for both engines), "
        f"onnxruntime {meta['onnxruntime']}, TVM {meta['tvm']}. Ratio = tvmedge median latency / ONNX Runtime "
        f"median latency in the same run (lower is better; < 1 means tvmedge is faster).",
        "",
        "| model | ORT (ms) | " + " | ".join(f"{v} (x ORT)" for v in variants) + " |",
        "|---|---:|" + "---:|" * len(variants),
    ]
    for row in sorted(rows, key=lambda r: r["model"] in HELD_OUT):
        cells = []
        for variant in variants:
            entry = row["variants"].get(variant, {})
            if "ratio" not in entry:
                cells.append("—")
                continue
            cell = f"{entry['ratio']:.2f}"
            if variant in ("quick", "zero"):
                cell += f" ({entry['build_s']:.0f} s" + (f", {entry['tuning']['trials']} trials)"
                                                         if variant == "quick" else ")")
            cells.append(cell)
        label = row["model"] + (" (held out)" if row["model"] in HELD_OUT else "")
        lines.append(f"| {label} | {row['ort_ms']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--board", default="x86-host")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="path prefix for .md and .json")
    parser.add_argument("--merge", action="store_true", help="keep the other models' rows of an earlier run")
    parser.add_argument("--work", help="keep the builds in this folder and reuse the ones already there")
    parser.add_argument("--build-only", action="store_true", help="build (into --work) and stop: time them later")
    args = parser.parse_args(argv)
    if args.build_only and not args.work:
        parser.error("--build-only needs --work DIR")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS] + [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        parser.error(f"unknown model/variant: {', '.join(unknown)}")
    threads = os.cpu_count() or 1
    os.environ["TVM_NUM_THREADS"] = str(threads)  # tvmedge's pool as ORT's, set before TVM starts one
    import onnxruntime
    import tvm

    meta = {"date": time.strftime("%Y-%m-%d"), "cpu": f"{_cpu_name()} ({tvm.target.codegen.llvm_get_system_cpu()})",
            "threads": threads, "onnxruntime": onnxruntime.__version__, "tvm": tvm.__version__,
            "python": platform.python_version()}
    rows = []
    previous = {}
    if args.merge and Path(args.out + ".json").exists():  # keep rows of models not re-run this time
        previous = {r["model"]: r for r in json.loads(Path(args.out + ".json").read_text())["rows"]}
    for name in args.models.split(","):
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        if args.build_only:
            for variant in variants:
                reuse_or_build(name, MODELS[name], variant, Path(args.work), args.board)
            continue
        rows.append(bench(name, MODELS[name], variants, args.rounds, args.per_round, args.board, threads, args.work))
        print(render(rows[-1:], variants, meta).splitlines()[-1], file=sys.stderr, flush=True)
    if args.build_only:
        return 0
    done = {r["model"] for r in rows}
    rows += [r for m, r in previous.items() if m not in done]  # a variant a row lacks shows as a dash
    text = render(rows, variants, meta)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    print(text)
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
