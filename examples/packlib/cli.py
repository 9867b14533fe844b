"""The pack steps that are not tvmedge verbs, for run.sh: make data, compare outputs, send a request, measure.

    python examples/packlib/cli.py data examples/industrial-qc [--calib N] [--test N]
    python examples/packlib/cli.py boards examples/industrial-qc            # "NAME ARM RISCV SEARCH"
    python examples/packlib/cli.py check HOST.npz BOARD.npz ...             # exit 1 unless equal within 1e-4
    python examples/packlib/cli.py plan PARTITION.json ...                  # what `tvmedge partition --json` wrote
    python examples/packlib/cli.py request URL FILE.npy                     # POST an .npy, print the reply
    python examples/packlib/cli.py measure examples/industrial-qc --build OUT [--limit N] [--no-emulated]
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
    if args.step == "check":
        return _check(args.files)
    if args.step == "plan":
        return _plan(args.files)
    if args.step == "request":
        return _request(args.url, args.file)
    report = measure(args.pack, args.build, results_dir=args.results, limit=args.limit,
                     emulated=not args.no_emulated, progress=lambda m: print(f"  {m}", file=sys.stderr))
    print(json.dumps(report["results"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
