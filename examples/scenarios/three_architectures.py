"""Scenario: one model, three architectures, one lab — evaluate a real classifier on x86, ARM and RISC-V boards.

A team ships the digits CNN (examples/digits: trained on scikit-learn's handwritten digits) to a fleet of
Rockchip rk3588 (aarch64), StarFive VisionFive 2 (riscv64) and Banana Pi BPI-F3 (riscv64 with RVV vectors)
boards and wants proof, before rollout, that every board classifies the held-out images exactly as the
reference does. The boards sit behind TVM's RPC
tracker; here they are emulated ones on this machine (`tvmedge board rack`), which is the same to the code:

1. compile the same ONNX file for each board (no code changes per architecture);
2. on each board kind, through the tracker, run the held-out test images with the board's own runtime;
3. compare accuracy, predictions and logits with the x86 build and with ONNX Runtime.

    .venv/bin/python examples/scenarios/three_architectures.py            # all 540 test images
    .venv/bin/python examples/scenarios/three_architectures.py --limit 50 --json

Exits non-zero if any board disagrees with the reference beyond 1e-4 or predicts differently.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent / "digits"
# x86 runs here; the others through the tracker. bananapi-f3 is RISC-V with RVV 1.0 vectors, visionfive2 without.
BOARDS = ("x86-host", "rk3588", "visionfive2", "bananapi-f3")


def evaluate(limit: int | None = None, progress=print) -> dict:
    from tvmedge import api, runtime
    from tvmedge.emulator.rack import emulated_rack
    from tvmedge.peer import onnxruntime_outputs
    from tvmedge.runtime.remote import connect
    from tvmedge.tune.auto import TuningOptions

    data = np.load(DIGITS / "test.npz")
    images, labels = data["input"][:limit], data["labels"][:limit]
    model = DIGITS / "digits_cnn.onnx"
    reference = np.concatenate([onnxruntime_outputs(model, {"input": image[None]})["logits"] for image in images])

    rows = []
    with tempfile.TemporaryDirectory() as tmp, emulated_rack(BOARDS[1:], progress=progress) as rack:
        for board in BOARDS:
            out = Path(tmp) / board
            # the no-search schedule: the same one for every board, records are applied where they exist
            api.compile(model, board, out=out, tuning=TuningOptions(search="none"))
            started = time.perf_counter()
            if board == "x86-host":
                loaded, where = runtime.load(out), "this machine"
            else:  # the board's own runtime, reached through TVM's tracker
                session, where = connect(tracker=rack.tracker, key=board)
                loaded = runtime.load(out, session=session)
            logits = np.concatenate([loaded.run({"input": image[None]})["logits"] for image in images])
            seconds = time.perf_counter() - started
            rows.append({
                "board": board,
                "arch": loaded.manifest.arch,
                "where": where,
                "images": len(images),
                "accuracy": float(np.mean(logits.argmax(1) == labels)),
                "max_abs_diff_vs_ort": float(np.max(np.abs(logits - reference))),
                "predictions_differing_from_ort": int(np.sum(logits.argmax(1) != reference.argmax(1))),
                "seconds": round(seconds, 1),
            })
            progress(f"{board}: accuracy {rows[-1]['accuracy']:.4f} in {seconds:.1f} s ({where})")
    host = next(row for row in rows if row["board"] == "x86-host")
    ok = all(row["max_abs_diff_vs_ort"] <= 1e-4 and row["predictions_differing_from_ort"] == 0 for row in rows)
    return {"model": str(model.relative_to(HERE.parent.parent)), "rows": rows,
            "reference_accuracy": float(np.mean(reference.argmax(1) == labels)),
            "same_accuracy_everywhere": all(row["accuracy"] == host["accuracy"] for row in rows), "ok": ok}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N test images")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = evaluate(args.limit, progress=(lambda message: None) if args.json else
                      (lambda message: print(f"  {message}", file=sys.stderr)))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['model']}: ONNX Runtime accuracy {report['reference_accuracy']:.4f}")
        print(f"{'board':<12} {'arch':<8} {'images':>6} {'accuracy':>9} {'max |diff| vs ORT':>18} "
              f"{'differing':>9}  where (boards are emulated here)")
        for row in report["rows"]:
            print(f"{row['board']:<12} {row['arch']:<8} {row['images']:>6} {row['accuracy']:>9.4f} "
                  f"{row['max_abs_diff_vs_ort']:>18.2e} {row['predictions_differing_from_ort']:>9}  {row['where']}")
        print("OK: every architecture agrees with the reference" if report["ok"] else
              "FAILED: a board disagrees with the reference")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
