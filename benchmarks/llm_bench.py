"""Language-model benchmark (issue 16): decode and prefill speed of a >= 100 M-parameter GPT (random seeded
weights, examples/llm/gpt.py) compiled by tvmedge vs ONNX Runtime running the same two ONNX graphs, in the same
run; the memory-bandwidth bound; peak RSS vs weight bytes; held-out perplexity of the trained character model.

    nice -n 10 python benchmarks/llm_bench.py            # writes benchmarks/llm_results.md (+ .json)

Artifacts and packages are cached in --work (default /tmp/tvmedge-llm-bench) so a rerun skips the compiles.
Each engine's generation runs in a subprocess of its own, so its peak RSS (VmHWM of /proc/self/status: loading
included) is its own; tvmedge's runs with TVM's runtime library only (``TVM_USE_RUNTIME_LIB=1``, as on a board).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "llm"))
import gpt  # noqa: E402

BIG = gpt.GPTConfig(vocab=96, context=256, prefill=128, layers=15, dim=768, heads=12)
THREADS = 2
RUNS = 5  # generations per engine after the warm-up; the best counts (the machine is shared)

# One engine's generation, run in a subprocess: prints one JSON line (timings, tokens, peak RSS).
_WORKER = r"""
import json, resource, sys, time
import numpy as np
engine, path, prompt_len, new_tokens, threads, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
lm = json.load(open(path + "/lm.json"))
vocab = lm["tokenizer"]["vocab"]
prompt = "".join(vocab[(7 * i + 3) % len(vocab)] for i in range(prompt_len))
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def rss_now():
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return int(status["VmRSS"].split()[0]) * 1024
if engine == "tvm":
    import tvm  # TVM's runtime library only (TVM_USE_RUNTIME_LIB=1, as on a board)
    from tvmedge.runtime.lm import load_lm
    base_rss = rss_now()  # the runtime itself (Python, numpy, TVM), before any model
    t = time.perf_counter(); model = load_lm(path); load_s = time.perf_counter() - t
    model.generate(prompt, max_tokens=4)  # warm-up
    runs = [model.generate(prompt, max_tokens=new_tokens) for _ in range(repeat)]
    best = min(runs, key=lambda r: r.decode_ms)
    out = {"tokens": best.tokens, "ttft_ms": min(r.ttft_ms for r in runs), "decode_ms": best.decode_ms,
           "decode_steps": best.decode_steps, "load_s": load_s}
else:
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    base_rss = rss_now()
    t = time.perf_counter()
    pre = ort.InferenceSession(path + "/" + lm["prefill"], so, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(path + "/" + lm["decode"], so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t
    index = {c: i for i, c in enumerate(vocab)}
    ids = [index[c] for c in prompt]
    P, pairs = lm["prefill_length"], lm["cache"]
    pnames, dnames = [o.name for o in pre.get_outputs()], [o.name for o in dec.get_outputs()]
    def run(n):
        t0 = time.perf_counter()
        toks = np.zeros((1, P), np.int64); toks[0, :len(ids)] = ids
        out = dict(zip(pnames, pre.run(None, {"tokens": toks, "length": np.array([len(ids)])})))
        tok = int(np.argmax(out["logits"])); ttft = (time.perf_counter() - t0) * 1e3
        gen, pos, t1 = [tok], len(ids), time.perf_counter()
        while len(gen) < n:
            feed = {"tokens": np.array([[tok]], np.int64), "position": np.array([pos])}
            feed.update({a: out[b] for a, b in pairs})
            out = dict(zip(dnames, dec.run(None, feed))); pos += 1
            tok = int(np.argmax(out["logits"])); gen.append(tok)
        return gen, ttft, (time.perf_counter() - t1) * 1e3
    run(4)
    runs = [run(new_tokens) for _ in range(repeat)]
    best = min(runs, key=lambda r: r[2])
    out = {"tokens": best[0], "ttft_ms": min(r[1] for r in runs), "decode_ms": best[2], "decode_steps": new_tokens - 1,
           "load_s": load_s}
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["peak_rss_bytes"] = int(status["VmHWM"].split()[0]) * 1024  # the high-water mark of resident memory
out["start_rss_bytes"] = rss0 * 1024
out["base_rss_bytes"] = base_rss
print(json.dumps(out))
"""


def worker(engine: str, path: Path, prompt_len: int, new_tokens: int) -> dict:
    env = dict(os.environ, TVM_NUM_THREADS=str(THREADS), PYTHONPATH=str(REPO))
    if engine == "tvm":
        env["TVM_USE_RUNTIME_LIB"] = "1"  # what a board runs: no compiler library in the process
    proc = subprocess.run([sys.executable, "-c", _WORKER, engine, str(path), str(prompt_len), str(new_tokens),
                           str(THREADS), str(RUNS)], capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def read_bandwidth(mib: int = 256, repeat: int = 20) -> float:
    """GB/s of reading ``mib`` MiB (numpy sums, one per thread over its half; best of ``repeat``): a decode step
    reads its weights and writes almost nothing, and on this host reading streams faster than copying."""
    from concurrent.futures import ThreadPoolExecutor

    data = np.ones(mib * 2 ** 20 // 8)
    halves = np.array_split(data, THREADS)
    best = float("inf")
    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(repeat):
            start = time.perf_counter()
            list(pool.map(np.sum, halves))  # numpy releases the GIL in the sum
            best = min(best, time.perf_counter() - start)
    return round(data.nbytes / best / 1e9, 2)


def bandwidth() -> dict:
    """The bound's bandwidth: the higher of ``tvmedge bench --host``'s copy figure and a read figure (the higher
    one makes the stricter bound)."""
    from tvmedge import api

    rows = {r["metric"] if "metric" in r else r.get("name"): r for r in api.bench(budget=2.0)["metrics"]}
    row = rows.get("memory_bandwidth")
    copy, read = row["value"], read_bandwidth()
    method = (f"the higher of `tvmedge bench --host` ({row.get('method') or row.get('note')}: {copy} GB/s) and a "
              f"{THREADS}-thread read of 256 MiB (numpy sums, best of 20: {read} GB/s)")
    return {"gbps": max(copy, read), "copy_gbps": copy, "read_gbps": read, "method": method}


def compile_lm(package: Path, out: Path, search: str, quant=None, gemv: bool = True) -> tuple:
    from tvmedge import api
    from tvmedge.tune.auto import TuningOptions

    if (out / "lm.json").is_file():
        return out, None
    start = time.perf_counter()
    tuning = TuningOptions(search=search, gemv=None if gemv else False)  # None: an LM compile's default (GEMV)
    api.compile(package, "x86-host", out=out, tuning=tuning, quant=quant, progress=lambda m: print("  ", m, flush=True))
    return out, time.perf_counter() - start


def weight_bytes(artifact: Path, graph: str = "decode") -> int:
    manifest = json.loads((artifact / graph / "manifest.json").read_text())
    return int(manifest["build"]["memory"]["weight_bytes"])


def stored_weight_bytes(artifact: Path) -> dict:
    """What the artifact stores: the shared weights file (format 2) and the libraries."""
    lm = json.loads((artifact / "lm.json").read_text())
    libraries = {g: (artifact / g / "model.so").stat().st_size for g in ("prefill", "decode")}
    return {"weights_file": (lm.get("weights") or {}).get("bytes"), "libraries": libraries}


def big_package(work: Path) -> Path:
    package = work / "gpt-100m"
    if not (package / "lm.json").is_file():
        print(f"writing the {BIG.parameters() / 1e6:.1f} M-parameter package (random weights, seed 0)", flush=True)
        vocab = [chr(c) for c in range(32, 127)] + ["\n"]
        gpt.write_package(gpt.random_weights(BIG, 0), BIG, vocab, package, meta={"weights": "random seed 0"})
    return package


def speed(work: Path, search: str, variant: str = "fp32") -> dict:
    """Decode/prefill speed of the big model: ``fp32``, or ``int4`` (both graphs quantized once with
    examples/llm/quant_int4.yaml into MatMulNBits; tvmedge compiles that package, ONNX Runtime runs it).
    ``-nogemv`` (``fp32-nogemv``): compiled without the GEMV schedule (what it is compared with)."""
    package = big_package(work)
    base, _, flag = variant.partition("-")
    if flag not in ("", "nogemv") or base not in ("fp32", "int4"):
        raise ValueError(f"unknown variant {variant}")
    if base == "int4":
        from tvmedge import api

        quantized = work / "gpt-100m-int4"
        if not (quantized / "lm.json").is_file():
            print("quantizing the big package to INT4 (group 32)", flush=True)
            api.quantize(package, REPO / "examples" / "llm" / "quant_int4.yaml", out=quantized)
        package = quantized
    artifact, compile_s = compile_lm(package, work / f"gpt-100m-{variant}-{search}", search, gemv=flag != "nogemv")
    prompt_len, new_tokens = BIG.prefill, 33
    tvm = worker("tvm", artifact, prompt_len, new_tokens)
    ort = worker("ort", package, prompt_len, new_tokens)
    bw = bandwidth()
    w = BIG.parameters() * 4
    embeddings = (BIG.vocab + BIG.context) * BIG.dim * 4
    decode_weights = weight_bytes(artifact)
    read_per_token = decode_weights - embeddings + 2 * BIG.layers * BIG.context * BIG.dim * 4
    bound = bw["gbps"] * 1e9 / read_per_token
    rows = {}
    for name, r in (("tvmedge", tvm), ("onnxruntime", ort)):
        tps = r["decode_steps"] / (r["decode_ms"] / 1e3)
        rows[name] = {"decode_tokens_per_s": tps, "fraction_of_bound": tps / bound, "ttft_ms": r["ttft_ms"],
                      "prefill_tokens_per_s": prompt_len / (r["ttft_ms"] / 1e3), "peak_rss_bytes": r["peak_rss_bytes"],
                      "base_rss_bytes": r["base_rss_bytes"], "load_s": r["load_s"]}
    return {"variant": variant, "gemv": flag != "nogemv", "config": BIG.__dict__, "parameters": BIG.parameters(), "weight_bytes_fp32": w,
            "artifact_weight_bytes": {g: weight_bytes(artifact, g) for g in ("prefill", "decode")},
            "stored": stored_weight_bytes(artifact),
            "package_onnx_bytes": sum(p.stat().st_size for p in package.glob("*.onnx*")),
            "bytes_read_per_decode_token": read_per_token, "bandwidth": bw, "bound_tokens_per_s": bound,
            "search": search, "compile_s": compile_s, "runs": RUNS, "prompt_tokens": prompt_len, "new_tokens": new_tokens,
            "same_greedy_tokens": tvm["tokens"] == ort["tokens"], "rows": rows,
            "ratio_decode_vs_ort": rows["tvmedge"]["decode_tokens_per_s"] / rows["onnxruntime"]["decode_tokens_per_s"],
            "ratio_ttft_vs_ort": rows["tvmedge"]["ttft_ms"] / rows["onnxruntime"]["ttft_ms"]}


def perplexity_tvm(artifact: Path, ids: list, window: int) -> float:
    """Held-out perplexity through the artifact: each window prefilled with its first token, then decode steps
    (the KV cache on the device), the log-probability of every next token summed."""
    from tvmedge.runtime.lm import load_lm

    lm = load_lm(artifact)
    nll, count = 0.0, 0
    for start in range(0, len(ids) - window, window):
        chunk = ids[start:start + window + 1]
        P = lm.lm.prefill_length
        tokens = np.zeros((1, P), np.int64)
        tokens[0, 0] = chunk[0]
        out = lm.prefill.run_stage(0, {"tokens": lm.prefill.tensor(tokens),
                                       "length": lm.prefill.tensor(np.array([1], np.int64))})
        for pos in range(window):
            logits = out["logits"].numpy()[0].astype(np.float64)
            logp = logits - logits.max() - math.log(np.exp(logits - logits.max()).sum())
            nll -= logp[chunk[pos + 1]]
            count += 1
            if pos + 1 < window:
                out = lm._step(chunk[pos + 1], pos + 1, lm._caches(out))
    return math.exp(nll / count)


def perplexity_ort(package: Path, ids: list, window: int) -> float:
    import onnxruntime as ort

    lm = json.loads((package / "lm.json").read_text())
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    dec = ort.InferenceSession(str(package / lm["decode"]), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in dec.get_outputs()]
    shapes = {i.name: i.shape for i in dec.get_inputs()}
    nll, count = 0.0, 0
    for start in range(0, len(ids) - window, window):
        chunk = ids[start:start + window + 1]
        cache = {a: np.zeros(shapes[a], np.float32) for a, _ in lm["cache"]}
        for pos in range(window):
            out = dict(zip(names, dec.run(None, {"tokens": np.array([[chunk[pos]]], np.int64),
                                                  "position": np.array([pos]), **cache})))
            cache = {a: out[b] for a, b in lm["cache"]}
            logits = out["logits"][0].astype(np.float64)
            logp = logits - logits.max() - math.log(np.exp(logits - logits.max()).sum())
            nll -= logp[chunk[pos + 1]]
            count += 1
    return math.exp(nll / count)


def quality(work: Path) -> dict:
    import train  # examples/llm/train.py: the corpus split and the encoding the model was trained with

    package = REPO / "examples" / "llm" / "charlm"
    lm = json.loads((package / "lm.json").read_text())
    _, held = train.split_corpus(train.read_corpus())
    ids = [int(i) for i in train.encode(held, lm["tokenizer"]["vocab"])]
    window = lm["context"]
    result = {"held_out_chars": len(held), "window": window, "torch": lm["model"].get("torch_held_out_perplexity")}
    result["onnxruntime_fp32"] = perplexity_ort(package, ids, window)
    variants = {"fp32": None, **{bits: REPO / "examples" / "llm" / f"quant_{bits}.yaml" for bits in ("int8", "int4", "mixed")}}
    for name, quant in variants.items():
        try:
            artifact, _ = compile_lm(package, work / f"charlm-{name}", "naive", quant=quant)  # speed is not measured here
            result[f"tvmedge_{name}"] = perplexity_tvm(artifact, ids, window)
            result[f"tvmedge_{name}_weight_bytes"] = weight_bytes(artifact)
            record = json.loads((artifact / "decode" / "manifest.json").read_text())["build"].get("quantization") or {}
            kept = record.get("artifact_weights") or {}  # what the compiled graph holds: packed INT4, INT8 layers
            if name == "mixed" and kept:
                result["tvmedge_mixed_layers"] = {"int4": kept.get("matmul_nbits", 0), "int8": kept.get("int8_kept", 0)}
        except Exception as err:  # noqa: BLE001 - a variant that cannot be built is reported, not hidden
            result[f"tvmedge_{name}_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return result


def _stored_text(s: dict, mb) -> str:
    stored = s.get("stored") or {}
    each = f"(prefill {mb(s['artifact_weight_bytes']['prefill'])}, decode {mb(s['artifact_weight_bytes']['decode'])})"
    if not stored.get("weights_file"):
        return (f"The artifact holds the weights twice {each}: two libraries, each with its constants; peak RSS above "
                "shows what that costs.")
    libs = stored["libraries"]
    return (f"The artifact stores them once: weights.safetensors {mb(stored['weights_file'])}, read by both graphs "
            f"{each}; the libraries hold code only (prefill {libs['prefill'] / 1e3:.0f} kB, decode "
            f"{libs['decode'] / 1e3:.0f} kB). "
            "Peak RSS above the runtime's own (Python, numpy and TVM or ONNX Runtime imported, before any model) / "
            f"weight bytes: tvmedge {_above(s, 'tvmedge') / stored['weights_file']:.2f}, "
            f"ONNX Runtime {_above(s, 'onnxruntime') / stored['weights_file']:.2f} (1.0 = the weights once, "
            "nothing else).")


def _above(s: dict, engine: str) -> int:
    row = s["rows"][engine]
    return row["peak_rss_bytes"] - (row.get("base_rss_bytes") or 0)


def write_report(data: dict, path: Path) -> None:
    q = data.get("quality")
    lines = ["# Language model benchmark (issue 16)", "",
             f"Run {data['date']} on this host ({data['cpu']}, {THREADS} threads for both engines; a shared, noisy "
             "machine). `python benchmarks/llm_bench.py` writes this file; each section below is one same-run "
             "comparison (`--variants`, `--skip-speed`, `--skip-quality` rerun one part and keep the others), and "
             "each speed section measures the bandwidth again in its own run, so its bound is its own.", "",
             "What the figures say: the decode graph is a chain of matrix-vector products, so decode speed is "
             "the schedules of those GEMVs. LM compiles give every fp32 matrix-vector product the GEMV schedule "
             "(`tvmedge/tune/gemv.py`, no measuring); the `-nogemv` sections are the same packages compiled "
             "without it (the predicted `--search none` schedules). The packed-INT4 products are MatMulNBits "
             "kernels scheduled by the importer, so the GEMV schedule changes little there. The machine is shared "
             "with other jobs (its load varied during the run: compare figures within one section, not across "
             "sections). Memory: the two graphs share one copy of the weights (the LM artifact's "
             "`weights.safetensors`, loaded once and handed to both libraries, which embed none); peak RSS "
             "(VmHWM, loading included; tvmedge with TVM's runtime library only, as on a board) is compared with "
             "the runtime's own RSS before loading and with the weight bytes below.", ""]
    mb = lambda b: f"{b / 1e6:.0f} MB"  # noqa: E731
    for s in data.get("speed", []):
        if "error" in s:
            lines += [f"## Decode and prefill speed, {s['variant']}: not measured", "", s["error"], ""]
            continue
        r = s["rows"]
        copy = s["bandwidth"].get("copy_gbps")
        copy_bound = copy * 1e9 / s["bytes_read_per_decode_token"] if copy else None
        lines += [f"## Decode and prefill speed: {s['parameters'] / 1e6:.1f} M-parameter GPT, {s['variant']}", "",
                  f"{s['config']['layers']} layers, dim {s['config']['dim']}, {s['config']['heads']} heads, context "
                  f"{s['config']['context']}, prefill graph {s['config']['prefill']} tokens; random seeded weights "
                  f"(examples/llm/gpt.py, speed only). Prompt {s['prompt_tokens']} tokens, {s['new_tokens']} generated "
                  f"(greedy; best of {s.get('runs', 2)} runs after a warm-up). tvmedge compile: `--search {s['search']}`"
                  + (", GEMV schedule" if s.get("gemv", False) else ", without the GEMV schedule")
                  + (f", {s['compile_s']:.0f} s" if s.get("compile_s") else " (cached artifact)") + ".", "",
                  f"Memory-bandwidth bound: {s['bandwidth']['gbps']} GB/s ("
                  f"{s['bandwidth']['method']}) / {mb(s['bytes_read_per_decode_token'])} read per token (weights "
                  f"without the embedding tables, plus the KV cache) = **{s['bound_tokens_per_s']:.1f} tokens/s**."
                  + (f" With the `tvmedge bench --host` figure alone (the issue's definition) the bound is "
                     f"{copy_bound:.1f} tokens/s." if copy_bound else ""), "",
                  "| engine | decode tokens/s | of the bound | of the `bench --host` bound | prefill tokens/s "
                  "| time to first token | peak RSS | of which the runtime before loading | load |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, row in r.items():
            of_copy = f"{100 * row['decode_tokens_per_s'] / copy_bound:.0f} %" if copy_bound else "-"
            lines.append(f"| {name} | {row['decode_tokens_per_s']:.2f} | {100 * row['fraction_of_bound']:.0f} % | "
                         f"{of_copy} | "
                         f"{row['prefill_tokens_per_s']:.0f} | {row['ttft_ms']:.0f} ms | {mb(row['peak_rss_bytes'])} | "
                         + (f"{mb(row['base_rss_bytes'])} | " if row.get("base_rss_bytes") else "| ")
                         + f"{row['load_s']:.1f} s |")
        lines += ["", f"tvmedge / ONNX Runtime: decode tokens/s **{s['ratio_decode_vs_ort']:.2f}x**, time to first "
                  f"token {s['ratio_ttft_vs_ort']:.2f}x (lower is better). Greedy tokens identical: "
                  f"{s['same_greedy_tokens']}.", "",
                  f"Weights: {mb(s['weight_bytes_fp32'])} as fp32; ONNX files of this variant {mb(s['package_onnx_bytes'])} "
                  f"(both graphs, each with its own copy). " + _stored_text(s, mb), ""]
    ab = data.get("gemv_ab")
    if ab:
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        lines += ["## GEMV schedule vs none, interleaved", "", ab["note"] + ":", "",
                  "| build | decode tokens/s (each run) | mean | time to first token (each run) |", "|---|---|---|---|"]
        for name in ("fp32", "fp32-nogemv"):
            lines.append(f"| {name} | {', '.join(map(str, ab[name]))} | {mean(ab[name]):.1f} | "
                         f"{', '.join(f'{t} ms' for t in ab[name + '_ttft_ms'])} |")
        lines += ["", f"GEMV / no GEMV: decode {mean(ab['fp32']) / mean(ab['fp32-nogemv']):.2f}x, time to first token "
                  f"{mean(ab['fp32_ttft_ms']) / mean(ab['fp32-nogemv_ttft_ms']):.2f}x (each pair run back to back).", ""]
    if q:
        lines += ["## Held-out perplexity: the trained character model (examples/llm/charlm)", "",
                  f"Last 10 % of /usr/share/common-licenses ({q['held_out_chars']} characters), windows of "
                  f"{q['window']} tokens, every next token scored through the decode graph with the KV cache.", "",
                  "| model | perplexity | vs fp32 (ORT) | weight bytes (decode) |", "|---|---|---|---|"]
        base = q["onnxruntime_fp32"]
        lines.append(f"| torch (training script, full-window forward) | {q['torch']} | | |")
        lines.append(f"| ONNX Runtime fp32 | {base:.4f} | | |")
        for name in ("fp32", "int8", "int4", "mixed"):
            label = name
            if name == "mixed" and q.get("tvmedge_mixed_layers"):
                label = (f"mixed ({q['tvmedge_mixed_layers']['int4']} layers INT4, "
                         f"{q['tvmedge_mixed_layers']['int8']} INT8)")
            if f"tvmedge_{name}" in q:
                lines.append(f"| tvmedge {label} | {q[f'tvmedge_{name}']:.4f} | {100 * (q[f'tvmedge_{name}'] / base - 1):+.2f} % "
                             f"| {q[f'tvmedge_{name}_weight_bytes'] / 1e6:.2f} MB |")
            elif f"tvmedge_{name}_error" in q:
                lines.append(f"| tvmedge {name} | not built: {q[f'tvmedge_{name}_error']} | | |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/tvmedge-llm-bench")
    parser.add_argument("--search", default="none", help="tvmedge compile --search for the big model")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--variants", default="fp32,int4", help="speed variants of the big model")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("-o", "--out", default=str(REPO / "benchmarks" / "llm_results.md"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    data = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu}
    previous = Path(args.out).with_suffix(".json")
    if (args.skip_speed or args.skip_quality) and previous.is_file():  # keep the part not rerun (each part is
        kept = json.loads(previous.read_text())                       # one same-run comparison on its own)
        data.update({k: kept[k] for k in ("speed", "quality", "gemv_ab") if k in kept})
    if not args.skip_speed:
        old = {s["variant"]: s for s in data.get("speed", [])}
        data["speed"] = []
        for variant in args.variants.split(","):
            try:
                data["speed"].append(speed(work, args.search, variant))
            except Exception as err:  # noqa: BLE001 - reported in the results, not hidden
                data["speed"].append({"variant": variant, "error": f"{type(err).__name__}: {str(err)[:300]}"})
        data["speed"] += [s for v, s in old.items() if v not in args.variants.split(",")]
    if not args.skip_quality:
        data["quality"] = quality(work)
    Path(args.out).with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    write_report(data, Path(args.out))
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
