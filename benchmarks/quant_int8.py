"""INT8 integer path vs float, and tvmedge vs ONNX Runtime on the same QDQ model, in one run (issue 15).

For each model: the float ONNX model and its INT8 QDQ version written by ONNX Runtime's own quantizer
(``quantize_static``: uint8 activations, int8 per-channel weights, the x86 default), both compiled for x86-host
with the same schedule budget (``--search`` value, default ``none``; ``quick`` runs the quick search for each
into one fresh private database), and both run by ONNX Runtime (CPU provider, same thread count). Timings
interleave the four engines round by round in one process on the same input; the table gives medians and ratios.

Correctness: max |tvmedge int8 - ORT int8| on the benchmark input, in steps of the output's quantization scale.
Accuracy (digits only): top-1 on the 540 held-out test images, float model vs tvmedge INT8 artifact.
light_* models have synthetic weights and are calibrated on random inputs: latency only.

    .venv/bin/python benchmarks/quant_int8.py                               # digits + light_squeezenet, none
    .venv/bin/python benchmarks/quant_int8.py --search quick --models digits --json out.json
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
sys.path.insert(0, str(REPO / "tests"))  # the ORT quantizer helper shared with the tests
DIGITS = REPO / "examples" / "digits"
LIGHT = Path(__import__("onnx").__file__).parent / "backend" / "test" / "data" / "light"
MODELS = {"digits": DIGITS / "digits_cnn.onnx", "light_squeezenet": LIGHT / "light_squeezenet.onnx",
          "light_resnet50": LIGHT / "light_resnet50.onnx"}


def calibration(name: str, spec) -> list:
    if name == "digits":
        data = np.load(DIGITS / "calib.npz")["input"]
        return [{spec.name: data[i:i + 1]} for i in range(64)]
    rng = np.random.default_rng(0)
    return [{spec.name: rng.random(spec.shape, np.float32)} for _ in range(4)]


def ort_session(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build(path, out, search, workdir, board="x86-host"):
    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    if search == "quick":
        options = TuningOptions(search="quick", log_root=str(workdir / "fresh-logs"))
    else:
        options = TuningOptions(search=search, use_records=False)
    start = time.perf_counter()
    artifact = api.compile(path, board, out=out, tuning=options)
    return artifact, round(time.perf_counter() - start, 1)


def dot_product_instructions(library: Path) -> dict:
    import subprocess

    code = subprocess.run(["objdump", "-d", str(library)], capture_output=True, text=True).stdout
    return {op: code.count(op) for op in ("vpdpbusd", "vpmaddubsw", "vpmaddwd")}


def bench(name, search, rounds, threads, board="x86-host"):
    import onnx

    from quantized_models import ort_quantize
    from tvmedge import api
    from tvmedge.frontend.onnx import input_specs
    from tvmedge.runtime.inputs import random_inputs

    with tempfile.TemporaryDirectory(prefix="tvmedge-int8-") as tmp:
        tmp = Path(tmp)
        source = _prepared(MODELS[name], tmp / f"{name}.onnx")
        spec = input_specs(onnx.load(source))[0]
        qdq = ort_quantize(source, tmp / f"{name}.qdq.onnx", "qdq", "uint8", calibration(name, spec))
        info, engines = {}, {}
        for variant, path in (("float", source), ("int8", qdq)):
            artifact, seconds = build(path, tmp / variant, search, tmp, board)
            info[variant] = {"build_s": seconds, "tuning": artifact.manifest.tuning,
                             "library_bytes": (artifact.path / "model.so").stat().st_size,
                             "dot_product_instructions": dot_product_instructions(artifact.path / "model.so")}
            if variant == "int8":
                info[variant]["integer"] = artifact.manifest.build.quantization["integer"]
            engines[f"tvmedge {variant}"] = api.load(artifact.path)
        model = engines["tvmedge float"]
        feed = random_inputs(model.inputs, seed=0) if name != "digits" else \
            {spec.name: np.load(DIGITS / "test.npz")["input"][:1]}
        sessions = {"ort float": ort_session(source, threads), "ort int8": ort_session(qdq, threads)}
        runs = {key: (lambda m: (lambda: m.run(feed)))(m) for key, m in engines.items()}
        runs.update({key: (lambda s: (lambda: s.run(None, feed)))(s) for key, s in sessions.items()})
        ours = list(engines["tvmedge int8"].run(feed).values())[0]
        theirs = sessions["ort int8"].run(None, feed)[0]
        step = _output_scale(qdq)
        correctness = {"max_abs_diff_vs_ort_int8": float(np.abs(ours - theirs).max()), "output_scale": step,
                       "steps": float(np.abs(ours - theirs).max() / step),
                       "exact_fraction": float(np.mean(ours == theirs))}
        accuracy = _accuracy(engines) if name == "digits" else None
        times = {key: [] for key in runs}
        for run in runs.values():
            run()
        for _ in range(rounds):
            for key, run in runs.items():
                start_round = time.perf_counter()
                for _ in range(20):
                    start = time.perf_counter()
                    run()
                    times[key].append((time.perf_counter() - start) * 1e3)
                    if time.perf_counter() - start_round > 1.0:
                        break
    ms = {key: statistics.median(values) for key, values in times.items()}
    return {"model": name, "search": search, "ms": ms, "runs": {k: len(v) for k, v in times.items()},
            "int8_vs_float": ms["tvmedge int8"] / ms["tvmedge float"],
            "int8_vs_ort_int8": ms["tvmedge int8"] / ms["ort int8"],
            "float_vs_ort_float": ms["tvmedge float"] / ms["ort float"],
            "ort_int8_vs_ort_float": ms["ort int8"] / ms["ort float"],
            "correctness": correctness, "accuracy": accuracy, "builds": info}


def _prepared(path, out) -> Path:
    """The float model as ONNX Runtime's quantizer needs it: opset >= 13, constants folded (the light models build their
    weights with ConstantOfShape) and initializers that are not graph inputs (IR >= 4), else it quantizes the
    weights at run time as if they were inputs."""
    import onnx

    from tvmedge.frontend.onnx import fold_onnx

    model = onnx.load(path)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:  # per-channel DequantizeLinear (axis) needs opset 13; ORT's own upgrade goes to 11 only
        model = onnx.version_converter.convert_version(model, 13)
    model = fold_onnx(model)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 7)
    onnx.save(model, out)
    return out


def _output_scale(path) -> float:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    last = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    return float(numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == last.input[1])))


def _accuracy(engines) -> dict:
    test = np.load(DIGITS / "test.npz")
    result = {}
    for key in ("tvmedge float", "tvmedge int8"):
        model = engines[key]
        outputs = np.concatenate([list(model.run({"input": test["input"][i:i + 1]}).values())[0]
                                  for i in range(len(test["labels"]))])
        result[key] = float((outputs.argmax(1) == test["labels"]).mean())
    result["ratio"] = result["tvmedge int8"] / result["tvmedge float"]
    return result


def table(rows, meta) -> str:
    lines = [f"Measured {meta['date']} on {meta['cpu']}, tvmedge compiling for {meta.get('board', 'x86-host')} "
             f"({meta['threads']} threads for both engines; ORT "
             f"{meta['onnxruntime']}, TVM {meta['tvm']}); medians of interleaved rounds.", "",
             "| model | schedule | tvmedge float | tvmedge int8 | int8 / float | ORT float | ORT int8 | "
             "tvmedge int8 / ORT int8 | tvmedge float / ORT float | int8 vs ORT int8 (output steps) | vpdpbusd |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ms = row["ms"]
        lines.append(f"| {row['model']} | {row['search']} | {ms['tvmedge float']:.3f} ms | {ms['tvmedge int8']:.3f} ms | "
                     f"**{row['int8_vs_float']:.2f}x** | {ms['ort float']:.3f} ms | {ms['ort int8']:.3f} ms | "
                     f"**{row['int8_vs_ort_int8']:.2f}x** | {row['float_vs_ort_float']:.2f}x | "
                     f"{row['correctness']['steps']:.0f} | "
                     f"{row['builds']['int8']['dot_product_instructions']['vpdpbusd']} |")
    for row in rows:
        if row["accuracy"]:
            a = row["accuracy"]
            lines.append("")
            lines.append(f"Accuracy ({row['model']}, {row['search']}): float {a['tvmedge float']:.4f}, INT8 "
                         f"{a['tvmedge int8']:.4f} ({100 * a['ratio']:.1f} % of float).")
    return "\n".join(lines)


def main(argv=None):
    import onnxruntime
    import tvm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,light_squeezenet")
    parser.add_argument("--search", default="none", help="none | quick | naive (same for float and int8)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--board", default="x86-host",
                        help="what tvmedge compiles for (a board, or a TVM target JSON this CPU runs, e.g. "
                             "'{\"kind\": \"llvm\", \"mcpu\": \"haswell\"}': the AVX2 code of a CPU without VNNI)")
    args = parser.parse_args(argv)
    threads = os.cpu_count() or 1
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu": tvm.target.codegen.llvm_get_system_cpu(), "board": args.board,
            "machine": platform.machine(), "threads": threads, "onnxruntime": onnxruntime.__version__,
            "tvm": tvm.__version__}
    rows = []
    for search in args.search.split(","):
        for name in args.models.split(","):
            print(f"{name} ({search}) ...", file=sys.stderr, flush=True)
            rows.append(bench(name, search, args.rounds, threads, args.board))
    print(table(rows, meta))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
