"""Recurrent ops: steps unrolled in Relax vs one TIR loop kernel, against ONNX Runtime in the same run.

For LSTM and GRU models (batch 1, 40 input features, hidden 64 or 128) and sequence lengths from 8 to 512,
both lowerings of ``tvmedge.frontend.converters.recurrent`` are built for this host with TVM's default build
(``--search naive``, so neither gets tuning the other lacks) and timed interleaved, round by round,
with ONNX Runtime (1 thread each: recurrent steps are too small to split across cores). Reported: build
time, library size, median latency, and each lowering's ratio to ORT. Results go to
benchmarks/recurrent_lowering.{md,json}; the crossover sets ``UNROLL_MAX_STEPS``.

    .venv/bin/python benchmarks/recurrent_lowering.py [--seqs 8,32,128] [--hidden 64] [--rounds 30]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def model(op, seq, hidden, features=40, seed=0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    gates = {"LSTM": 4, "GRU": 3}[op]
    rng = np.random.default_rng(seed)
    w = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)  # noqa: E731
    inits = [w("W", 1, gates * hidden, features), w("R", 1, gates * hidden, hidden), w("B", 1, 2 * gates * hidden)]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, ["X", "W", "R", "B"], outs, hidden_size=hidden)
    graph = helper.make_graph(
        [node], "rnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, 1, features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, 1, 1, hidden])]
        + [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 1, hidden]) for o in outs[1:]], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


def build(path, lowering, out):
    from tvmedge import api
    from tvmedge.frontend.converters import recurrent
    from tvmedge.tune.auto import TuningOptions

    saved = recurrent.UNROLL_MAX_STEPS
    recurrent.UNROLL_MAX_STEPS = 10**9 if lowering == "unrolled" else 0
    try:
        start = time.perf_counter()
        api.compile(path, "x86-host", out=out, tuning=TuningOptions(search="naive"))
        return time.perf_counter() - start
    finally:
        recurrent.UNROLL_MAX_STEPS = saved


def measure(op, seq, hidden, rounds, workdir):
    import onnx
    import onnxruntime as ort

    from tvmedge import api

    path = Path(workdir) / f"{op}_{seq}_{hidden}.onnx"
    onnx.save(model(op, seq, hidden), path)
    x = np.random.default_rng(1).standard_normal((seq, 1, 40)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    engines = {"ort": lambda: session.run(None, {"X": x})}
    row = {"op": op, "seq": seq, "hidden": hidden}
    reference = session.run(None, {"X": x})[0]
    for lowering in ("unrolled", "loop"):
        out = Path(workdir) / f"{op}_{seq}_{hidden}_{lowering}"
        row[f"{lowering}_build_s"] = round(build(path, lowering, out), 2)
        row[f"{lowering}_lib_kib"] = round((out / "model.so").stat().st_size / 1024)
        loaded = api.load(out)
        got = loaded.run({"X": x})["Y"]
        row[f"{lowering}_max_abs_diff"] = float(np.max(np.abs(got - reference)))
        engines[lowering] = (lambda m: lambda: m.run({"X": x}))(loaded)
    times = {name: [] for name in engines}
    for fn in engines.values():
        fn()  # warm-up
    for _ in range(rounds):  # interleaved, so noise hits every engine alike
        for name, fn in engines.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    for name, values in times.items():
        row[f"{name}_ms"] = round(statistics.median(values), 4)
    for lowering in ("unrolled", "loop"):
        row[f"{lowering}_x_ort"] = round(row[f"{lowering}_ms"] / row["ort_ms"], 2)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", default="LSTM,GRU")
    parser.add_argument("--seqs", default="8,32,128,512")
    parser.add_argument("--hidden", default="64,128")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "recurrent_lowering"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tvmedge-rnn-bench-") as workdir:
        for op in args.ops.split(","):
            for hidden in (int(h) for h in args.hidden.split(",")):
                for seq in (int(s) for s in args.seqs.split(",")):
                    row = measure(op, seq, hidden, args.rounds, workdir)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    import onnxruntime

    env = {"date": _dt.date.today().isoformat(), "cpu": _cpu(), "onnxruntime": onnxruntime.__version__,
           "python": platform.python_version()}
    Path(args.out + ".json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    Path(args.out + ".md").write_text(_markdown(env, rows))
    print(f"wrote {args.out}.md and .json")


def _cpu():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _markdown(env, rows):
    lines = ["# Recurrent ops: unrolled steps vs loop kernel (same run, vs ONNX Runtime)", "",
             f"`benchmarks/recurrent_lowering.py`, {env['date']}, {env['cpu']}, onnxruntime {env['onnxruntime']}, "
             "ORT on 1 thread, batch 1, 40 input features, TVM's default build (`--search naive`) for both "
             "lowerings (the loop kernel runs its parallel loops on the 2 cores). Ratio = median latency / ONNX Runtime's median in the same run (lower is better).", "",
             "| op | hidden | seq | ORT ms | unrolled ms (x ORT) | loop ms (x ORT) | build s unrolled / loop | "
             "library KiB unrolled / loop |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['hidden']} | {r['seq']} | {r['ort_ms']:.3f} | {r['unrolled_ms']:.3f} "
                     f"({r['unrolled_x_ort']}) | {r['loop_ms']:.3f} ({r['loop_x_ort']}) | {r['unrolled_build_s']} / "
                     f"{r['loop_build_s']} | {r['unrolled_lib_kib']} / {r['loop_lib_kib']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
