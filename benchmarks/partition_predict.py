"""Predicted partition plans for a board (default rk3588) on onnx's light models, as markdown tables.

Nothing here runs on the board: every number is the cost model's prediction (see benchmarks/partition.md).

    .venv/bin/python benchmarks/partition_predict.py [--board rk3588] [--models resnet50,shufflenet,squeezenet]
        [--plots DIR]
"""

import argparse
import time
from pathlib import Path

import onnx

from tvmedge.devices.graph import DeviceGraph
from tvmedge.frontend.onnx import import_model
from tvmedge.partition.cost import CORRECTIONS, CostModel
from tvmedge.partition.opgraph import extract_ops
from tvmedge.partition.report import partition_ops

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="rk3588")
    parser.add_argument("--models", default="resnet50,shufflenet,squeezenet")
    parser.add_argument("--plots", type=Path, default=None, help="write one plan plot per model (learned costs)")
    args = parser.parse_args()
    devices = DeviceGraph.from_board(args.board)
    for name in args.models.split(","):
        ops = extract_ops(import_model(LIGHT / f"light_{name}.onnx").mod, f"light_{name}")
        print(f"\n### light_{name} ({len(ops.ops)} ops, {ops.total_flops() / 1e9:.2f} GFLOP)\n")
        print("| costs | plan | latency ms | x best single | inputs/s | x best single | transfers | units |")
        print("|---|---|---:|---:|---:|---:|---:|---|")
        for correction in CORRECTIONS:
            start = time.perf_counter()
            latency = partition_ops(ops, devices, objective="latency", cost_model=CostModel(correction))
            for row in latency.comparison():
                if "error" in row:
                    print(f"| {correction} | {row['plan']} | no plan: {row['error']} |||||")
                    continue
                units = ", ".join(row["units"]) + (f" ({row['vendor_ops']} ops vendor)" if row["vendor_ops"] else "")
                print(f"| {correction} | {row['plan']} | {row['latency_ms']:.2f} | {row['latency_speedup']:.2f} | "
                      f"{row['throughput_ips']:.1f} | {row['throughput_speedup']:.2f} | {row['transfers']} | {units} |")
            if args.plots and correction == "learned":
                args.plots.mkdir(parents=True, exist_ok=True)
                partition_ops(ops, devices, objective="throughput", cost_model=CostModel(correction)).plot(
                    args.plots / f"partition-{args.board}-{name}-throughput.png")
                latency.plot(args.plots / f"partition-{args.board}-{name}-latency.png")
            print(f"<!-- {correction}: {time.perf_counter() - start:.1f} s -->")


if __name__ == "__main__":
    main()
