"""Quantized vs float artifacts on this machine: size, latency (same-run ratios) and accuracy (issue 6).

For each model, artifacts for x86-host built the same way (``--search none`` by default: the no-search
schedule, nothing measured; ``naive``: TVM's default build; ``quick``: 8 measured candidates per task into
a private database) from
  float  — the float model,
  int8   — static INT8 (examples/digits/quant.yaml; light models: weight-only INT8),
  mixed  — INT8/INT4 by sensitivity (examples/digits/quant_mixed.yaml; light models: size target 0.17).
Latency: the artifacts run round by round in one process on the same input, so machine noise hits all
alike; the ratio is variant median / float median. Accuracy: the digits test split (540 held-out images)
through each artifact. light_* models have synthetic weights: size and latency only.

    .venv/bin/python benchmarks/quant_bench.py                          # digits + light_squeezenet
    .venv/bin/python benchmarks/quant_bench.py --models digits --search naive --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"
LIGHT = Path(__import__("onnx").__file__).parent / "backend" / "test" / "data" / "light"
MODELS = {"digits": DIGITS / "digits_cnn.onnx", "light_squeezenet": LIGHT / "light_squeezenet.onnx",
          "light_shufflenet": LIGHT / "light_shufflenet.onnx", "light_resnet50": LIGHT / "light_resnet50.onnx"}


def configs(name: str, workdir: Path) -> dict:
    """variant -> QuantConfig (None for float)."""
    from tvmedge.quant import load_config, parse_config

    if name == "digits":
        return {"float": None, "int8": load_config(DIGITS / "quant.yaml"),
                "mixed": load_config(DIGITS / "quant_mixed.yaml")}
    calib = workdir / f"{name}-calib"  # synthetic inputs: these models' weights are synthetic too
    calib.mkdir(exist_ok=True)
    from tvmedge.quant.quantize import input_specs

    import onnx

    spec = input_specs(onnx.load(MODELS[name]))[0]
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(calib / f"{i}.npy", rng.random([d if isinstance(d, int) else 1 for d in spec.dims], np.float32))
    return {"float": None,
            "int8": parse_config({"quantization": {"type": "weight_only", "bit_width": 8}}),
            "mixed": parse_config({"quantization": {"type": "weight_only", "bit_width": "mixed",
                                                    "calibration_dataset": str(calib), "max_samples": 2,
                                                    "mixed": {"target_size_ratio": 0.17}}})}


def build(path, quant, out, search, workdir):
    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    if search == "quick":  # measured candidates into a private database (never the repository's logs)
        options = TuningOptions(search="quick", log_root=str(workdir / "tuning_logs"))
    else:
        options = TuningOptions(search=search, use_records=False)
    start = time.perf_counter()
    artifact = api.compile(path, "x86-host", out=out, tuning=options, quant=quant)
    return artifact, time.perf_counter() - start


def stripped_bytes(library: Path) -> int:
    """Size without debug sections (``strip --strip-debug`` on a copy): code + constants only."""
    import shutil
    import subprocess

    copy = library.with_suffix(".stripped.so")
    shutil.copy(library, copy)
    subprocess.run(["strip", "--strip-debug", str(copy)], check=True)
    return copy.stat().st_size


def latency(models: dict, feed: dict, rounds: int, per_round: int) -> dict:
    """Median ms per variant, interleaved round by round."""
    times = {name: [] for name in models}
    for model in models.values():
        model.run(feed)  # warm-up
    for _ in range(rounds):
        for name, model in models.items():
            for _ in range(per_round):
                start = time.perf_counter()
                model.run(feed)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def accuracy(model) -> float:
    test = np.load(DIGITS / "test.npz")
    predicted = [next(iter(model.run({"input": x[None]}).values())).argmax() for x in test["input"]]
    return float((np.array(predicted) == test["labels"]).mean())


def bench(name: str, search: str, rounds: int, per_round: int, workdir: Path) -> dict:
    from tvmedge import api
    from tvmedge.runtime.inputs import random_inputs

    rows, loaded = {}, {}
    for variant, quant in configs(name, workdir).items():
        artifact, seconds = build(MODELS[name], quant, workdir / f"{name}-{variant}", search, workdir)
        record = artifact.manifest.build.quantization or {}
        rows[variant] = {"so_bytes": artifact.summary()["library_bytes"], "compile_s": round(seconds, 1),
                         "stripped_bytes": stripped_bytes(artifact.path / artifact.manifest.library),
                         "weights": record.get("weight_bytes"), "layers": record.get("layers"),
                         "artifact_weights": record.get("artifact_weights")}
        loaded[variant] = api.load(artifact.path)
        print(f"  built {name} {variant}: {rows[variant]['so_bytes']:,} B in {seconds:.1f} s", file=sys.stderr)
    feed = random_inputs(loaded["float"].inputs, 0)
    medians = latency(loaded, feed, rounds, per_round)
    for variant, row in rows.items():
        row["median_ms"] = round(medians[variant], 4)
        row["latency_ratio"] = round(medians[variant] / medians["float"], 3)
        row["size_ratio"] = round(row["so_bytes"] / rows["float"]["so_bytes"], 4)
        row["stripped_ratio"] = round(row["stripped_bytes"] / rows["float"]["stripped_bytes"], 4)
        if name == "digits":
            row["accuracy"] = round(accuracy(loaded[variant]), 4)
    return rows


def render(results: dict, search: str) -> str:
    lines = [f"Quantized vs float artifacts, x86-host, --search {search}, {platform.processor() or platform.machine()}",
             "", "| model | variant | model.so | size vs float | without debug info | median latency | latency vs float "
                 "| accuracy |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        for variant, row in rows.items():
            acc = f"{row['accuracy']:.4f}" if "accuracy" in row else "-"
            lines.append(f"| {name} | {variant} | {row['so_bytes'] / 1024:,.0f} KiB | {100 * row['size_ratio']:.1f} % | "
                         f"{100 * row['stripped_ratio']:.1f} % | {row['median_ms']:.3f} ms | "
                         f"{row['latency_ratio']:.2f}x | {acc} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,light_squeezenet", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--search", default="none", choices=["none", "naive", "quick"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="tvmedge-quant-bench-") as tmp:
        for name in args.models.split(","):
            results[name] = bench(name, args.search, args.rounds, args.per_round, Path(tmp))
    print(render(results, args.search))
    if args.json:
        Path(args.json).write_text(json.dumps({"search": args.search, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
