"""The pack steps that are not tvmedge verbs, for run.sh: make data, compare outputs, send a request, measure.

    python examples/packlib/cli.py data examples/industrial-qc [--calib N] [--test N]
    python examples/packlib/cli.py boards examples/industrial-qc            # "NAME ARM RISCV SEARCH"
    python examples/packlib/cli.py build examples/industrial-qc --out OUT [--search S] [--measure [--limit N]
                                                                            [--results DIR]]  # one process
    python examples/packlib/cli.py check HOST.npz BOARD.npz ...             # exit 1 unless equal within 1e-4
    python examples/packlib/cli.py plan PARTITION.json ...                  # what `tvmedge partition --json` wrote
    python examples/packlib/cli.py request URL FILE.npy                     # POST an .npy, print the reply
    python examples/packlib/cli.py measure examples/industrial-qc --build OUT [--limit N] [--search S] [--no-emulated]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packlib.measure import MATCH_TOL, PackConfig, measure  # noqa: E402
from packlib.pack import write_data  # noqa: E402


def _check(files) -> int:
    import numpy as np

    host = np.load(files[0])
    worst = 0.0
    for name in files[1:]:
        other = np.load(name)
        for key in host.files:
            diff = float(np.max(np.abs(host[key] - other[key])))
            worst = max(worst, diff)
            same = int(host[key].argmax()) == int(other[key].argmax())
            print(f"{Path(name).name}: {key} max |diff| vs {Path(files[0]).name} = {diff:.2e}, "
                  f"class {'the same' if same else 'DIFFERENT'}")
            if not same:
                worst = float("inf")
    ok = worst <= MATCH_TOL
    print("outputs match the host's" if ok else f"outputs DIFFER from the host's (tolerance {MATCH_TOL})")
    return 0 if ok else 1


def _plan(files) -> int:
    """A few lines per `tvmedge partition --json` output: the predicted plans and, with --explain, the ops."""
    for name in files:
        d = json.loads(Path(name).read_text())
        print(f"{d['board']}: predicted (cost model, nothing measured) -- plan, latency ms, units:")
        for row in d["comparison"]:
            if "error" not in row:
                print(f"  {row['plan'] + (' *' if row['chosen'] else ''):<12} {row['latency_ms']:8.3f}  "
                      f"{','.join(row['units'])}")
        if d.get("explain"):
            print(f"  per op ({len(d['explain'])} ops; full table in {name}):")
            for row in sorted(d["explain"], key=lambda r: -r["mflops"])[:5]:
                print(f"    {row['op']:<14} {row['mflops']:7.2f} MFLOP on {row['unit']}: {row['why']}")
        if d.get("plot"):
            print(f"  plot: {d['plot']}")
    return 0


def _build(pack: str, out: Path, search: str = None) -> int:
    """run.sh's quantize, partition and compile steps with tvmedge's library in one Python process (``run.sh
    --ci``): the same calls the CLI verbs make, without importing TVM once per verb (~10 s each)."""
    import time

    from tvmedge import api
    from tvmedge.errors import PartitionError

    cfg = PackConfig.read(pack)
    search = search or cfg.search
    model, quant = cfg.folder / cfg.model, cfg.folder / cfg.quant
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def say(message):
        print(f"  [{time.perf_counter() - started:5.1f} s] {message}", flush=True)

    say("quantize: static INT8, calibrated on data/calib.npz, evaluated on data/test.npz")
    result = api.quantize(model, quant, out=out / "model.int8.onnx", evaluate=cfg.folder / "data" / "test.npz",
                          report=out / "quant_report.json")
    accuracy = result.report.accuracy
    say(f"INT8 model written; accuracy on the test split: {json.dumps(accuracy) if accuracy is not None else '-'}")
    for board in (cfg.arm, cfg.riscv):
        try:
            report, priced = api.partition(out / "model.int8.onnx", board), "INT8"
        except PartitionError as err:  # no int8 rate for this CPU in its board YAML: price the float model
            say(f"no INT8 prediction for {board} ({err}): predicting the float model instead")
            report, priced = api.partition(model, board), "float"
        data = report.summary()
        if board == cfg.arm:
            data["explain"] = report.explain()
            data["plot"] = report.plot(out / f"partition_{board}.png")
        (out / f"partition_{board}.json").write_text(json.dumps(data, indent=2) + "\n")
        say(f"partition {board} ({priced}): predicted {data['predicted']['latency_ms']:.3f} ms")
    for board, folder in ((cfg.arm, out / cfg.arm), (cfg.riscv, out / cfg.riscv), ("x86-host", out / "models" / cfg.pack)):
        api.compile(model, board, quant=quant, search=search, out=folder)
        say(f"compiled INT8 (search: {search}) for {board} -> {folder}")
    return 0


def _measure(args) -> int:
    report = measure(args.pack, args.build, results_dir=args.results, limit=args.limit,
                     emulated=not args.no_emulated, search=args.search,
                     progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    print(json.dumps(report["results"], indent=2))
    if args.no_emulated:
        return 0
    match = report["results"]["emulated_outputs_match"]
    print("emulated boards: outputs match the host's" if match else "emulated boards: outputs DIFFER from the host's")
    return 0 if match else 1


def _request(url: str, path: str) -> int:
    import urllib.request

    body = Path(path).read_bytes()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/x-npy"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as reply:
        data = json.loads(reply.read())
    print(json.dumps(data)[:400])
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("data")
    p.add_argument("pack")
    p.add_argument("--calib", type=int)
    p.add_argument("--test", type=int)
    p = sub.add_parser("boards")
    p.add_argument("pack")
    p = sub.add_parser("build")
    p.add_argument("pack")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--search", help="schedule search (default: pack.yaml's tuning.search)")
    p.add_argument("--measure", action="store_true", help="then measure in the same process (as `measure`)")
    p.add_argument("--results", help="with --measure: where results.json and the plots go")
    p.add_argument("--limit", type=int, help="with --measure: test images measured")
    p = sub.add_parser("check")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("plan")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("request")
    p.add_argument("url")
    p.add_argument("file")
    p = sub.add_parser("measure")
    p.add_argument("pack")
    p.add_argument("--build", required=True)
    p.add_argument("--results", help="where results.json and the plots go (default: the pack folder)")
    p.add_argument("--limit", type=int)
    p.add_argument("--search", help="the schedule search the builds used (default: pack.yaml's tuning.search)")
    p.add_argument("--no-emulated", action="store_true")
    args = parser.parse_args(argv)
    if args.step == "data":
        folder = write_data(args.pack, calib=args.calib, test=args.test)
        import numpy as np

        test = np.load(folder / "test.npz")
        np.save(folder / "sample.npy", test["input"][:1])
        np.savez(folder / "sample.npz", input=test["input"][:1])
        return 0
    if args.step == "boards":
        cfg = PackConfig.read(args.pack)
        print(cfg.pack, cfg.arm, cfg.riscv, cfg.search)
        return 0
    if args.step == "build":
        code = _build(args.pack, args.out, args.search)
        if code or not args.measure:
            return code
        args.build, args.no_emulated = args.out, False
        return _measure(args)
    if args.step == "check":
        return _check(args.files)
    if args.step == "plan":
        return _plan(args.files)
    if args.step == "request":
        return _request(args.url, args.file)
    return _measure(args)


if __name__ == "__main__":
    sys.exit(main())
