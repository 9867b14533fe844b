"""Measure the smart-home pack from the artifacts ``run.sh`` built, and write ``results.json`` + the plot.

Reads ``OUT/`` (default ``examples/smart-home/out``): ``model.int8.onnx`` (``tvmedge quantize``) and the
artifacts ``fp32-x86-host``, ``int8-x86-host``, ``int8-<board>`` (``tvmedge compile``). Measures, on the
held-out-voice test set (``data/test.npz``):

- accuracy of the float and the INT8 artifact on this host (tvmedge's runtime), and ONNX Runtime's on the
  float model as a check;
- host latency and fps of the INT8 artifact (median, single input), with ONNX Runtime on the INT8 QDQ model
  in the same run as the reference;
- the cost model's predicted latency of the float model on rk3588 and the RISC-V board (``tvmedge
  partition``; it has no int8 rate for the RISC-V board's cores): predictions;
- the INT8 artifacts on the emulated boards (qemu, through TVM's RPC tracker) against the host's INT8 artifact
  on ``emulated_clips`` clips: same predictions, max |logit difference|.

With ``--build SEARCH`` (``run.sh --ci``) it first does run.sh's steps 2-4 in this process with tvmedge's
library (quantize, partition, the four compiles): the calls the verbs make, with TVM imported once.

    python examples/smart-home/measure.py [--out DIR] [--limit N] [--clips N] [--no-emulated] [--build SEARCH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from audio import bench  # noqa: E402

CLASSES = ("on", "off", "up", "down", "lights", "music", "stop", "heating", "open", "close", "_unknown_", "_silence_")


def build(out: Path, search: str, progress=print) -> None:
    """run.sh's steps 2-4 in this process: INT8 model, partition plans, artifacts (names as run.sh writes them)."""
    import yaml

    from tvmedge import api

    pack = yaml.safe_load((HERE / "pack.yaml").read_text())
    out.mkdir(parents=True, exist_ok=True)
    api.quantize(HERE / "model.onnx", HERE / "quant.yaml", out=out / "model.int8.onnx",
                 evaluate=HERE / "data" / "test.npz", report=out / "quant_report.json")
    progress("quantized: static INT8, front end float")
    for board in pack["boards"]:  # the float graph: no int8 rate for the VisionFive 2's U74 cores
        d = bench.partition_json(HERE / "model.onnx", board, out / f"partition-{board}.json",
                                 plot=out / f"plan-{board}.png", explain=True)
        progress(f"partition {board}: predicted {d['predicted']['latency_ms']:.3f} ms")
    api.compile(HERE / "model.onnx", pack["host"], search=search, out=out / f"fp32-{pack['host']}")
    for board in [pack["host"]] + pack["boards"]:
        api.compile(out / "model.int8.onnx", board, search=search, out=out / f"int8-{board}")
        progress(f"compiled INT8 for {board} (search: {search})")


def measure(out: Path, *, limit=None, clips=None, emulated=True, results=HERE / "results.json", rounds=30,
            search=None, progress=print) -> dict:
    import onnx
    import yaml

    import onnxruntime as ort

    pack = yaml.safe_load((HERE / "pack.yaml").read_text())
    search = search or pack["tuning"]["search"]
    data = np.load(HERE / "data" / "test.npz")
    audio, labels = data["audio"][:limit], data["labels"][:limit]
    feeds = [{"audio": a[None]} for a in audio]

    def accuracy(outputs):
        predictions = np.array([o["logits"].argmax() for o in outputs])
        return float(np.mean(predictions == labels)), predictions

    acc_fp32, _ = accuracy(bench.run_all(out / "fp32-x86-host", feeds))
    acc_int8, pred_int8 = accuracy(bench.run_all(out / "int8-x86-host", feeds))
    session = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])
    acc_ort, _ = accuracy([dict(zip(["logits"], session.run(None, f))) for f in feeds])
    session = ort.InferenceSession(str(out / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    acc_ort_int8, pred_ort_int8 = accuracy([dict(zip(["logits"], session.run(None, f))) for f in feeds])
    agree_int8 = float(np.mean(pred_ort_int8 == pred_int8))
    progress(f"accuracy on {len(labels)} held-out clips: fp32 {acc_fp32:.4f} (ONNX Runtime {acc_ort:.4f}), int8 {acc_int8:.4f}")
    plot = bench.confusion_plot(labels, pred_int8, CLASSES, Path(results or HERE / "results.json").parent / "confusion.png",
                                f"smart-home KWS, INT8 artifact on this host: {acc_int8:.1%} on {len(labels)} "
                                "clips of held-out voices")
    lat = bench.latency(out / "int8-x86-host", out / "model.int8.onnx", feeds[0], rounds=rounds)
    lat_fp32 = bench.latency(out / "fp32-x86-host", HERE / "model.onnx", feeds[0], rounds=rounds)
    progress(f"host latency int8 {lat['median_ms']} ms ({lat['fps']} fps; {lat['ratio_vs_ort']}x ONNX Runtime int8), "
             f"fp32 {lat_fp32['median_ms']} ms ({lat_fp32['ratio_vs_ort']}x ONNX Runtime)")
    # float graph: the cost model has no int8 rate for the U74 (visionfive2), so both boards are priced in float
    predictions = {board: bench.predicted(HERE / "model.onnx", board, out / f"partition-{board}.json") for board in pack["boards"]}

    match, emulated_report = None, {}
    if emulated:
        n = clips or pack["emulated_clips"]
        host = bench.run_all(out / "int8-x86-host", feeds[:n])
        jobs = {b: {"kws": (out / f"int8-{b}", feeds[:n])} for b in pack["boards"]}
        boards = bench.on_emulated_boards(jobs, progress=progress)
        for board, named in boards.items():
            outputs = named["kws"]
            diff = max(float(np.max(np.abs(o["logits"] - h["logits"]))) for o, h in zip(outputs, host))
            same = int(sum(o["logits"].argmax() == h["logits"].argmax() for o, h in zip(outputs, host)))
            emulated_report[board] = {"clips": n, "same_predictions": same, "max_abs_logit_diff": diff}
            progress(f"emulated {board}: {same}/{n} predictions as the host's, max |logit diff| {diff:.2e}")
        match = all(r["same_predictions"] == r["clips"] and r["max_abs_logit_diff"] <= 1e-4
                    for r in emulated_report.values())

    params = sum(int(np.prod(t.dims)) for t in onnx.load(HERE / "model.onnx").graph.initializer
                 if not t.name.startswith("frontend."))
    rk, rv = predictions.get("rk3588"), predictions.get(pack["riscv_board"])
    report = {
        "pack": "smart-home", "task": pack["task"], "model": "model.onnx", "params": params,
        "size_kb_fp32": bench.kib(HERE / "model.onnx"), "size_kb_int8": bench.kib(out / "model.int8.onnx"),
        "accuracy_fp32": round(acc_fp32, 4), "accuracy_int8": round(acc_int8, 4),
        "host_latency_ms": lat["median_ms"], "host_fps": lat["fps"],
        "predicted_rk3588_ms": rk["cpu_ms"] if rk else None, "predicted_riscv_ms": rv["cpu_ms"] if rv else None,
        "riscv_board": pack["riscv_board"], "emulated_outputs_match": bool(match),
        "notes": (f"{len(labels)} test clips spoken by voices held out of training; INT8 static, front end float; "
                  f"host = this machine (schedule search: {search}), {lat['ratio_vs_ort']}x ONNX Runtime int8 in "
                  "the same run; board figures "
                  "are cost-model predictions for the float model on the CPU (not measured)"),
        "details": {
            "test_clips": int(len(labels)), "accuracy_onnxruntime_fp32": round(acc_ort, 4),
            "accuracy_onnxruntime_int8": round(acc_ort_int8, 4),
            "int8_predictions_equal_to_onnxruntime": round(agree_int8, 4),
            "host_latency": {k: v for k, v in lat.items() if k != "times_ms"},
            "host_latency_fp32": {k: v for k, v in lat_fp32.items() if k != "times_ms"},
            "artifact_kb": {p.name: bench.kib(p) for p in sorted(out.glob("*-*")) if p.is_dir()},
            "predicted": predictions, "emulated": emulated_report, "plot": Path(plot).name,
        },
    }
    if results:
        Path(results).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where run.sh put the artifacts")
    parser.add_argument("--limit", type=int, help="only the first N test clips")
    parser.add_argument("--clips", type=int, help="clips compared on the emulated boards (default: pack.yaml)")
    parser.add_argument("--no-emulated", action="store_true", help="skip the emulated boards")
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--build", metavar="SEARCH", help="first quantize, partition and compile in this process")
    parser.add_argument("--search", help="the schedule search the artifacts were built with, for the notes "
                                         "(default: --build's, else pack.yaml's)")
    parser.add_argument("--rounds", type=int, default=30, help="latency rounds (5 calls each, both runtimes)")
    args = parser.parse_args(argv)
    if args.build:
        build(args.out, args.build, progress=lambda m: print(m, file=sys.stderr, flush=True))
    report = measure(args.out, limit=args.limit, clips=args.clips, emulated=not args.no_emulated,
                     results=args.results, rounds=args.rounds, search=args.search or args.build,
                     progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps({k: v for k, v in report.items() if k != "details"}, indent=2))
    return 0 if report["emulated_outputs_match"] or args.no_emulated else 1


if __name__ == "__main__":
    sys.exit(main())
