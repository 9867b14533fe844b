"""Load benchmark of ``tvmedge serve`` on loopback: throughput, latency p50/p99, RSS on unload, offline vs full.

Builds three artifacts (the tiny CNN twice, and a 64 MB-weight MLP so that memory moves visibly), starts real
servers (``tvmedge serve``, runtime-only TVM) and drives them from client threads in this process for a bounded
time each. Client and server share this machine's cores, so the figures are a floor for the service, not a
ceiling. Results: benchmarks/serve_results.md (and .json).

    .venv/bin/python benchmarks/serve_load.py                       # ~1 minute
    .venv/bin/python benchmarks/serve_load.py --seconds 10 --clients 1,2,4,8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TVMEDGE = Path(sys.executable).parent / "tvmedge"
MiB = 2**20


def build_models(work: Path) -> Path:
    """``work/models/{tiny_cnn, tiny_cnn_b, mlp}``: naive builds (compile speed, not model speed, is not measured)."""
    sys.path.insert(0, str(REPO / "tests" / "serve"))
    import onnx

    from test_serve_registry import _mlp  # the test's model generator, at benchmark size

    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    models, naive = work / "models", TuningOptions(search="naive")
    api.compile(REPO / "examples" / "models" / "tiny_cnn.onnx", "x86-host", out=models / "tiny_cnn", tuning=naive)
    shutil.copytree(models / "tiny_cnn", models / "tiny_cnn_b")
    onnx.save(_mlp(width=2048, layers=4), work / "mlp.onnx")  # 4 x 2048 x 2048 float32 = 64 MiB of weights
    api.compile(work / "mlp.onnx", "x86-host", out=models / "mlp", tuning=naive)
    return models


def start_server(models: Path, *args) -> tuple:
    start = time.perf_counter()
    process = subprocess.Popen([str(TVMEDGE), "serve", "--models", str(models), "--port", "0", "--json", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))
    lines, text = queue.Queue(), ""
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    while not text.rstrip().endswith("}") or not text.startswith("{"):
        text += lines.get(timeout=120)
    summary = json.loads(text)
    summary["ready_s"] = time.perf_counter() - start
    return process, summary


def stop_server(process) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def drive(url: str, model: str, body: str, clients: int, seconds: float, churn: str | None = None) -> dict:
    """``clients`` threads posting to ``model`` for ``seconds``; optionally unload/load ``churn`` meanwhile."""
    x = np.random.default_rng(0).random((1, 3, 32, 32)).astype("float32")
    payload = {"content": npy(x), "headers": {"content-type": "application/x-npy"}} if body == "npy" \
        else {"json": {"inputs": {"input": x.tolist()}}}
    latencies, statuses, errors, cycles, first_refusal = [], [], [], [0], []
    deadline = time.monotonic() + seconds

    def client():
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < deadline:
                begin = time.perf_counter()
                try:
                    reply = http.post(f"/v1/models/{model}/infer", **payload)
                    status = reply.status_code
                    if status != 200 and not first_refusal:
                        first_refusal.append(reply.text)
                except httpx.HTTPError as err:
                    errors.append(repr(err))
                    continue
                latencies.append((time.perf_counter() - begin) * 1e3)
                statuses.append(status)

    def churner():
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < deadline:
                http.post(f"/v1/models/{churn}/unload")
                http.post(f"/v1/models/{churn}/load")
                cycles[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)] + ([threading.Thread(target=churner)] if churn else [])
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    ok = [lat for lat, status in zip(latencies, statuses) if status == 200]
    codes = {str(code): statuses.count(code) for code in sorted(set(statuses))}
    return {"statuses": codes, "model": model, "body": body, "clients": clients, "churn": churn, "churn_cycles": cycles[0], "first_refusal": first_refusal[:1],
            "requests": len(statuses), "ok": len(ok), "refused": len(statuses) - len(ok), "errors": len(errors),
            "throughput_rps": len(ok) / elapsed, "p50_ms": float(np.percentile(ok, 50)) if ok else None,
            "p99_ms": float(np.percentile(ok, 99)) if ok else None}


def unload_cycles(url: str, name: str, cycles: int = 3) -> list:
    """Server-reported RSS around each unload of ``name`` (and what its load added)."""
    rows = []
    with httpx.Client(base_url=url, timeout=120) as http:
        http.post(f"/v1/models/{name}/unload")  # loaded at start-up; measure fresh loads
        for _ in range(cycles):
            loaded = http.post(f"/v1/models/{name}/load").json()
            unloaded = http.post(f"/v1/models/{name}/unload").json()
            rows.append({"load_added_mib": (loaded["rss_after_bytes"] - loaded["rss_before_bytes"]) / MiB,
                         "unload_freed_mib": unloaded["rss_freed_bytes"] / MiB,
                         "rss_after_unload_mib": unloaded["rss_after_bytes"] / MiB})
    return rows


_UNPINNED = """
import json, sys, tvm, tvm_ffi
# What tvmedge.runtime.loader would do with the library un-pinned (issue 7 report): the Model owns the library.
tvm.runtime.load_module = lambda path: tvm_ffi.load_module(path, keep_module_alive=False)
from tvmedge.serve.registry import ModelRegistry
registry, rows = ModelRegistry(sys.argv[1]), []
for _ in range(3):
    loaded = registry.load(sys.argv[2]); unloaded = registry.unload(sys.argv[2])
    rows.append({"load_added_mib": (loaded["rss_after_bytes"] - loaded["rss_before_bytes"]) / 2**20,
                 "unload_freed_mib": unloaded["rss_freed_bytes"] / 2**20, "rss_after_unload_mib": unloaded["rss_after_bytes"] / 2**20})
print(json.dumps(rows))
"""


def unload_cycles_unpinned(models: Path, name: str) -> list:
    out = subprocess.run([sys.executable, "-c", _UNPINNED, str(models), name], capture_output=True, text=True, check=True,
                         env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"), timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def resident(summary) -> dict:
    return {"loaded": summary["loaded"], "rss_mib": summary["rss_bytes"] / MiB, "ready_s": summary["ready_s"],
            "load_s": summary["load_s"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load run")
    parser.add_argument("--clients", default="1,4", help="client thread counts, comma-separated")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "serve_results.md"))
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="tvmedge-serve-bench-") as tmp:
        models = build_models(Path(tmp))
        process, full = start_server(models)
        try:
            url = full["url"]
            runs = [drive(url, "tiny_cnn", body, n, args.seconds) for body in ("npy", "json") for n in clients]
            runs.append(drive(url, "tiny_cnn", "npy", max(clients), args.seconds, churn="tiny_cnn_b"))
            runs.append(drive(url, "tiny_cnn_b", "npy", max(clients), args.seconds, churn="tiny_cnn_b"))
            pinned = unload_cycles(url, "mlp")
        finally:
            stop_server(process)
        (models / "offline.json").write_text(json.dumps({"models": ["tiny_cnn"]}))
        process, offline = start_server(models, "--offline")
        stop_server(process)
        (models / "empty.json").write_text(json.dumps({"models": []}))
        process, empty = start_server(models, "--offline", "--profile", str(models / "empty.json"))
        stop_server(process)
        unpinned = unload_cycles_unpinned(models, "mlp")
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
               "seconds": args.seconds, "runs": runs, "unload_pinned": pinned, "unload_unpinned": unpinned,
               "full": resident(full), "offline": resident(offline), "empty": resident(empty)}
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    Path(args.out).write_text(render(results))
    print(render(results))
    return 0


def render(r: dict) -> str:
    lines = ["# `tvmedge serve` load benchmark\n", f"Machine: {r['machine']}; each run {r['seconds']:g} s; "
             "clients are threads in the benchmark process (httpx, one connection each) on the same cores as the server.\n",
             "| model | body | clients | churn (unload+load cycles) | requests | ok | refused (409/503) | errors | throughput (req/s) | p50 (ms) | p99 (ms) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        churn = f"{x['churn']} ({x['churn_cycles']})" if x["churn"] else "-"
        lat = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {x['model']} | {x['body']} | {x['clients']} | {churn} | {x['requests']} | {x['ok']} | {x['refused']} | "
                     f"{x['errors']} | {x['throughput_rps']:.0f} | {lat(x['p50_ms'])} | {lat(x['p99_ms'])} |")
    lines += ["", "## RSS around unload (MLP, 64 MiB of weights)\n", "| loader | cycle | load added (MiB) | unload freed (MiB) | RSS after unload (MiB) |",
              "|---|---|---|---|---|"]
    for label, rows in (("current (library pinned)", r["unload_pinned"]), ("library un-pinned", r["unload_unpinned"])):
        for i, row in enumerate(rows, 1):
            lines.append(f"| {label} | {i} | {row['load_added_mib']:.1f} | {row['unload_freed_mib']:.1f} | {row['rss_after_unload_mib']:.1f} |")
    lines += ["", "## Offline profile vs loading everything\n", "| start-up | models loaded | RSS when ready (MiB) | loading (s) | ready after (s) |",
              "|---|---|---|---|---|"]
    for label in ("full", "offline", "empty"):
        x = r[label]
        lines.append(f"| {label} | {', '.join(x['loaded']) or 'none'} | {x['rss_mib']:.1f} | {x['load_s']:.2f} | {x['ready_s']:.2f} |")
    full, offline, empty = r["full"]["rss_mib"], r["offline"]["rss_mib"], r["empty"]["rss_mib"]
    pinned, unpinned = r["unload_pinned"][-1], r["unload_unpinned"][-1]
    lines += ["", "## Reading these figures\n",
              f"- Offline (profile: tiny_cnn) vs full: {1 - offline / full:.0%} less RSS here ({offline:.0f} vs {full:.0f} MiB). "
              "The saving is exactly the models left out (the MLP's weights dominate); `--offline` itself changes no other "
              f"resource. Of the offline figure, {empty:.0f} MiB is Python + FastAPI + uvicorn + numpy with no model "
              f"(TVM's runtime is imported at the first load) and {offline - empty:.0f} MiB is TVM's runtime library plus "
              "the tiny CNN. The seed's -30 % is neither confirmed nor refuted in general: it depends on the directory.",
              f"- Unload with the current runtime loader frees {pinned['unload_freed_mib']:.1f} MiB and every reload adds "
              f"{pinned['load_added_mib']:.0f} MiB more: `tvm.runtime.load_module` pins each library for the life of the "
              "process (tvm_ffi's `keep_module_alive=True`). With the library un-pinned and owned by the Model "
              f"(`tvm_ffi.load_module(path, keep_module_alive=False)`), unload frees {unpinned['unload_freed_mib']:.0f} MiB "
              f"(weights + the mapped .so) and RSS returns to {unpinned['rss_after_unload_mib']:.0f} MiB every cycle.",
              "- Churn (unload + load of tiny_cnn_b in a loop) costs the other model little; requests to the churned model are "
              "answered 409 (not loaded) or 503 (loading / unloading) in between, never lost (errors = 0).",
              "- JSON bodies cost ~4x .npy: 3,072 floats parsed and 10 printed per request, under the GIL.",
              "- On a machine shared with other work (see the load average above) repeats of one row can differ by 2-3x: "
              "compare rows of one run with each other, not with another run's."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
