"""Group-wise INT4 (MatMulNBits) layers of language-model sizes: tvmedge INT4 vs ONNX Runtime vs tvmedge fp32 (issue 16).

For each layer ``y = x @ W`` (``x``: M rows of K, ``W``: K x N, random normal weights, seed 0): the float ONNX
model and its INT4 version written by ``tvmedge quantize`` (``bit_width: 4``, ``group_size: 32``, symmetric,
float32 scales: ``com.microsoft.MatMulNBits``). Both are compiled for x86-host the way ``tvmedge compile`` does
without a measured search (``--search none``: the zero-measurement predictor for the float matmul; the INT4
kernel is hand-scheduled and not searched); ONNX Runtime (CPU provider, same thread count) runs the float
model and the very same INT4 file, at the file's ``accuracy_level`` 0 (float32 arithmetic, like ours) and at 4
(ORT quantizes A to int8 on the fly: a faster, less exact mode), for reference. Timings interleave all engines
round by round in one process on the same input; the tables give medians of per-round means and ratios.

Sizes: the weight bytes of each artifact (``manifest.json``'s ``build.memory.weight_bytes``: constants in the
library) and their ratio to the float artifact's. Correctness: max |tvmedge INT4 - ORT INT4| on the input.

    .venv/bin/python benchmarks/int4_bench.py                       # writes benchmarks/int4_results.md
    .venv/bin/python benchmarks/int4_bench.py --shapes 1x768x768 --rounds 5 --json out.json
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
sys.path.insert(0, str(REPO / "tests"))  # the generated MatMul model shared with the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_ort import ort_session  # noqa: E402  (one ONNX Runtime session set-up for every benchmark)
SHAPES = ["1x768x768", "1x768x3072", "1x3072x768", "16x768x768"]
QUANT = "quantization:\n  type: weight_only\n  bit_width: 4\n  group_size: 32\n"


def with_accuracy_level(src, dst, level: int):
    import onnx

    model = onnx.load(str(src))
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            for attr in node.attribute:
                if attr.name == "accuracy_level":
                    attr.i = level
    onnx.save(model, str(dst))
    return dst


def measure(engines: dict, rounds: int, inner: int) -> dict:
    """name -> median over rounds of the mean time (ms) of ``inner`` calls; engines interleaved per round."""
    times = {name: [] for name in engines}
    for run in engines.values():  # warm up
        run()
    for _ in range(rounds):
        for name, run in engines.items():
            start = time.perf_counter()
            for _ in range(inner):
                run()
            times[name].append((time.perf_counter() - start) / inner * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_shape(shape: str, work: Path, threads: int, rounds: int, inner: int) -> dict:
    from nbits_models import matmul_model, save

    from tvmedge import api
    from tvmedge.quant import load_config, quantize
    from tvmedge.runtime.manifest import Manifest
    from tvmedge.tune.auto import TuningOptions

    m, k, n = (int(v) for v in shape.split("x"))
    folder = work / shape
    folder.mkdir(parents=True)
    float_path = save(matmul_model(k, n, m), folder / "fc.onnx")
    (folder / "int4.yaml").write_text(QUANT)
    int4_path = quantize(float_path, load_config(folder / "int4.yaml")).save(folder / "fc.int4.onnx")
    acc4_path = with_accuracy_level(int4_path, folder / "fc.int4.acc4.onnx", 4)
    none = TuningOptions(search="none", use_records=False)
    started = time.perf_counter()
    fp32 = api.compile(float_path, "x86-host", out=folder / "fp32", tuning=none)
    int4 = api.compile(int4_path, "x86-host", out=folder / "int4", tuning=none)
    compile_s = time.perf_counter() - started
    x = np.random.default_rng(1).standard_normal((1, m, k)).astype(np.float32)
    models = {"tvmedge fp32": api.load(fp32.path), "tvmedge int4": api.load(int4.path)}
    inputs = {name: model.to_device({"x": x}) for name, model in models.items()}
    sessions = {"ORT fp32": ort_session(float_path, threads), "ORT int4 (acc 0)": ort_session(int4_path, threads),
                "ORT int4 (acc 4)": ort_session(acc4_path, threads)}
    engines = {name: (lambda model=model, feed=inputs[name]: model._main(*feed.values())) for name, model in models.items()}
    engines.update({name: (lambda s=s: s.run(None, {"x": x})) for name, s in sessions.items()})
    ours = models["tvmedge int4"].run({"x": x})["y"]
    theirs = sessions["ORT int4 (acc 0)"].run(None, {"x": x})[0]
    ms = measure(engines, rounds, inner)
    weights = {name: Manifest.read(a.path).build.memory["weight_bytes"] for name, a in (("fp32", fp32), ("int4", int4))}
    tasks = (Manifest.read(int4.path).tuning or {}).get("sources", {})
    return {"shape": shape, "M": m, "K": k, "N": n, "ms": ms, "weight_bytes": weights,
            "weight_ratio": weights["int4"] / weights["fp32"], "max_abs_diff_vs_ort_int4": float(np.abs(ours - theirs).max()),
            "int4_searched_tasks": sorted(tasks), "compile_s": round(compile_s, 1),
            "int4_gb_per_s": (k * n / 2 + k * n / 32 * 4) / (ms["tvmedge int4"] * 1e-3) / 1e9}


def report(rows: list, threads: int) -> str:
    import onnxruntime
    import tvm

    from tvm.target import codegen

    lines = ["# Group-wise INT4 (MatMulNBits) layers: tvmedge vs ONNX Runtime (issue 16)", "",
             f"Measured {time.strftime('%Y-%m-%d')} by `benchmarks/int4_bench.py` on {platform.machine()} "
             f"({codegen.llvm_get_system_cpu()}, {os.cpu_count()} cores shared with other jobs: a noisy machine, "
             f"hence same-run ratios; load average {os.getloadavg()[0]:.1f} when the report was written), "
             f"{threads} thread(s) for every engine; TVM {tvm.__version__}, onnxruntime "
             f"{onnxruntime.__version__}. Weights: random normal, group_size 32, symmetric, float32 scales; "
             "tvmedge built with `--search none` (no measurement).", "",
             "| layer M x K x N | tvmedge int4 ms | ORT int4 acc0 ms | ratio | ORT int4 acc4 ms | ratio | "
             "tvmedge fp32 ms | int4 / fp32 time | ORT fp32 ms | int4 GB/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        t = row["ms"]
        ours = t["tvmedge int4"]
        lines.append(f"| {row['shape']} | {ours:.3f} | {t['ORT int4 (acc 0)']:.3f} | "
                     f"{ours / t['ORT int4 (acc 0)']:.2f}x | {t['ORT int4 (acc 4)']:.3f} | "
                     f"{ours / t['ORT int4 (acc 4)']:.2f}x | {t['tvmedge fp32']:.3f} | {ours / t['tvmedge fp32']:.2f} | "
                     f"{t['ORT fp32']:.3f} | {row['int4_gb_per_s']:.1f} |")
    lines += ["", "ratio = tvmedge time / ONNX Runtime time on the same INT4 file (below 1: tvmedge faster). "
              "acc0: float32 arithmetic, as tvmedge computes; acc4: ORT quantizes A to int8 per block "
              "(not bit-comparable). GB/s: packed weights + scales read per call / tvmedge's time.", "",
              "| layer | artifact weight bytes fp32 | int4 | int4 / fp32 | max abs diff vs ORT int4 |",
              "|---|---|---|---|---|"]
    for row in rows:
        w = row["weight_bytes"]
        lines.append(f"| {row['shape']} | {w['fp32']} | {w['int4']} | {row['weight_ratio']:.3f} "
                     f"(1/{1 / row['weight_ratio']:.1f}) | {row['max_abs_diff_vs_ort_int4']:.2e} |")
    lines += ["", "The INT4 kernel is not a search task (it is hand-scheduled: packed bytes decoded in registers, "
              "16 output columns per vector tile, rows 4 at a time); tasks the predictor scheduled in the INT4 "
              "artifacts: " + "; ".join(f"{r['shape']}: {', '.join(r['int4_searched_tasks']) or 'none'}" for r in rows)
              + ".", "",
              "What this shows, and what it does not:", "",
              "- Size: the artifact keeps the packed codes (4 bits per weight) plus one float32 scale per 32 weights: "
              "5 bits per weight, 1/6.4 of float32 (float16 scales: 1/7.1; group 128: 1/7.5). No float copy of "
              "the weights exists in the artifact or at run time (tests/frontend/test_frontend_nbits.py inspects "
              "the lowered module).",
              "- Speed: tvmedge's kernel computes in float32, as ONNX Runtime does at accuracy_level 0 (the level "
              "its quantizer writes by default); against that, the ratio column is the comparison of like with "
              "like. ONNX Runtime's accuracy_level 4 quantizes A to int8 and uses integer dot products: it is "
              "faster than tvmedge's float decode on every layer here; tvmedge has no int8-activation MatMulNBits "
              "kernel yet.",
              "- The GB/s column is far below this machine's memory bandwidth: at these sizes the kernel is bound "
              "by the decode arithmetic (mask/shift, int->float convert, subtract per weight), not by reading "
              "the weights; the issue's >= 60 % of the bandwidth bound is not reached at the layer level here, and "
              "the absolute times are inflated by the other jobs sharing the 2 cores (see the load average).",
              "- Many rows (M = 16, a prefill): each weight is decoded once per 4 rows of A, so the INT4 advantage "
              "over float shrinks as M grows (here about ONNX Runtime's time, where the single rows are "
              "about half of it).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=SHAPES, help="MxKxN layers")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inner", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "int4_results.md"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--from-json", default=None, help="re-write the report from a previous --json file")
    args = parser.parse_args(argv)
    if args.from_json:
        Path(args.out).write_text(report(json.loads(Path(args.from_json).read_text()), args.threads))
        return 0
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            print(f"{shape} ...", file=sys.stderr, flush=True)
            rows.append(bench_shape(shape, Path(tmp), args.threads, args.rounds, args.inner))
            print(json.dumps(rows[-1]["ms"]), file=sys.stderr, flush=True)
    text = report(rows, args.threads)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
