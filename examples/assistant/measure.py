"""Measure the assistant pack from the artifacts ``run.sh`` built; write ``results.json`` and the plots.

Reads ``OUT/<board>/<model>`` artifacts (``tvmedge compile``), ``OUT/command.int8.onnx`` (``tvmedge quantize``)
and the held-out test data in ``data/``. Measures:

- accuracy on this host with tvmedge's runtime: voice activity per 10 ms frame, command recognition (float and
  INT8) on held-out voices, intent on held-out templates, retrieval top-1 on held-out questions (and, as the
  baseline the learned projection must beat, the cosine of the raw hashed n-grams);
- host latency of each model, with ONNX Runtime on the same model and input in the same run;
- the cost model's predicted latency of each model on rk3588 and the RISC-V board (predictions);
- each board's artifacts on its emulated board against the host's on a few inputs (outputs, not timings);
- the offline profile, on a live ``tvmedge serve``: resident memory (RSS) with the four models loaded and
  after ``go_offline()`` unloads ``intent`` and ``retrieval`` over REST; RSS of a fresh ``tvmedge serve
  --offline``; the service's CPU time (``/proc/<pid>/stat``) for the same spoken workload online and offline.

With ``--build SEARCH`` (``run.sh --ci``) it first does run.sh's steps 2-4 in this process with tvmedge's
library (quantize, partition, compile): the calls the verbs make, with TVM imported once instead of per verb.

    python examples/assistant/measure.py [--out DIR] [--quick | --ci] [--no-emulated] [--build SEARCH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import language  # noqa: E402
from assistant import COMMAND_CLASSES, LM, MODELS, OFFLINE, Assistant  # noqa: E402
from audio import bench  # noqa: E402

INPUT = {"vad": "audio", "command": "audio", "intent": "text", "retrieval": "text"}
# How much each measurement takes in: test windows for accuracy (None: all), latency rounds, inputs per model on
# the emulated boards (None: pack.yaml's), spoken windows and rounds of the offline workload, and whether fresh
# services (online vs --offline) are started and compared too. "ci" is run.sh --ci's, the default test suite's.
# "answers": held-out questions the LM answers (None: all 24).
SIZES = {"full": {"windows": None, "rounds": 30, "emulated": None, "offline": 48, "offline_rounds": 3, "fresh": True,
                  "answers": None},
         "quick": {"windows": 30, "rounds": 6, "emulated": 2, "offline": 6, "offline_rounds": 1, "fresh": True,
                   "answers": 12},
         "ci": {"windows": 12, "rounds": 3, "emulated": 2, "offline": 4, "offline_rounds": 1, "fresh": False,
                "answers": 6}}


def _accuracy(out: Path, host: str, limit) -> dict:
    from tvmedge import runtime

    data = np.load(HERE / "data" / "audio_test.npz")
    audio, labels, speech = data["audio"][:limit], data["labels"][:limit], data["speech"][:limit]
    feeds = [{"audio": a[None]} for a in audio]
    vad = np.concatenate([o["speech"] for o in bench.run_all(out / host / "vad", feeds)])
    spoken = labels >= 0
    command_feeds = [f for f, s in zip(feeds, spoken) if s]
    fp32 = np.array([o["logits"].argmax() for o in bench.run_all(out / f"{host}-fp32" / "command", command_feeds)])
    int8 = np.array([o["logits"].argmax() for o in bench.run_all(out / host / "command", command_feeds)])
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "command.int8.onnx"), providers=["CPUExecutionProvider"])
    ort_int8 = np.array([session.run(None, f)[0].argmax() for f in command_feeds])
    rng = np.random.default_rng(0)
    language.intent_sentences(False, rng)  # the same draws as train.py, so the held-out sentences are its
    texts, intents = language.intent_sentences(True, rng)
    intent_model = runtime.load(out / host / "intent")
    intent_pred = np.array([intent_model.run({"text": language.featurize([t])})["logits"].argmax() for t in texts])
    questions, entries = language.question_sentences(held_out=True)
    retrieval = runtime.load(out / host / "retrieval")
    top1 = np.array([retrieval.run({"text": language.featurize([q])})["scores"].argmax() for q in questions])
    keys = language.featurize([" ".join([a] + train) for a, train, _ in language.KNOWLEDGE])
    raw = (language.featurize(questions) @ keys.T).argmax(1)
    return {
        "vad_frame_accuracy": round(float(np.mean((vad > 0.5) == (speech > 0.5))), 4),
        "vad_windows": int(len(labels)),
        "vad_noise_windows_rejected": round(float(np.mean(np.sum(vad[labels < 0] > 0.5, axis=1) < 15)), 4)
        if np.any(labels < 0) else None,
        "command_accuracy_fp32": round(float(np.mean(fp32 == labels[spoken])), 4),
        "command_accuracy_int8": round(float(np.mean(int8 == labels[spoken])), 4),
        "command_windows": int(spoken.sum()),
        "command_accuracy_onnxruntime_int8": round(float(np.mean(ort_int8 == labels[spoken])), 4),
        "command_int8_predictions_equal_to_onnxruntime": round(float(np.mean(ort_int8 == int8)), 4),
        "intent_accuracy": round(float(np.mean(intent_pred == intents)), 4), "intent_sentences": len(texts),
        "retrieval_top1": round(float(np.mean(top1 == entries)), 4), "retrieval_questions": len(questions),
        "retrieval_top1_raw_ngrams": round(float(np.mean(raw == entries)), 4),
        "_command_labels": labels[spoken], "_command_int8": int8,
    }


def build(out: Path, search: str, progress=print) -> None:
    """run.sh's steps 2-4 in this process, into the folders run.sh writes: the INT8 command model, the
    partition predictions (float graphs, see run.sh), every model for the host and the boards, the float
    command model for the host."""
    import yaml

    from tvmedge import api

    pack = yaml.safe_load((HERE / "pack.yaml").read_text())
    host, boards = pack["host"], pack["boards"]
    out.mkdir(parents=True, exist_ok=True)
    api.quantize(HERE / "command.onnx", HERE / "quant.yaml", out=out / "command.int8.onnx",
                 evaluate=HERE / "data" / "command_test.npz", report=out / "quant_report.json")
    progress("quantized the command model: static INT8, front end float")
    for board in boards:
        for m in MODELS:
            plot = out / "plan-command-rk3588.png" if (m, board) == ("command", "rk3588") else None
            d = bench.partition_json(HERE / f"{m}.onnx", board, out / f"partition-{m}-{board}.json", plot=plot,
                                     explain=True)
            progress(f"{m} on {board}: predicted {d['predicted']['latency_ms']:.3f} ms")
    for board in [host] + boards:
        for m in MODELS:
            api.compile(_source(out, m), board, search=search, out=out / board / m)
        progress(f"compiled {', '.join(MODELS)} for {board} (search: {search})")
    api.compile(HERE / "command.onnx", host, search=search, out=out / f"{host}-fp32" / "command")
    if (HERE / LM / "lm.json").is_file():  # the answer model: served on this host (its boards: not yet)
        api.compile(HERE / LM, host, search=search, out=out / host / LM)
        progress(f"compiled the answer LM for {host} (search: {search})")


def _feeds() -> dict:
    audio = np.load(HERE / "data" / "audio_test.npz")["audio"]
    text = language.featurize(["how do i reset the device"])
    return {"vad": {"audio": audio[:1]}, "command": {"audio": audio[:1]}, "intent": {"text": text},
            "retrieval": {"text": text}}


def _source(out: Path, model: str) -> Path:
    return out / "command.int8.onnx" if model == "command" else HERE / f"{model}.onnx"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Service:
    """``tvmedge serve`` in a subprocess (the real CLI), on a free port."""

    def __init__(self, models: Path, offline: bool = False):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        args = [sys.executable, "-m", "tvmedge.cli.main", "serve", "--models", str(models), "--port", str(self.port)]
        self.process = subprocess.Popen(args + (["--offline"] if offline else []), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 600  # importing the service takes minutes on a busy machine
        while time.time() < deadline and self.process.poll() is None:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=5)
                return
            except OSError:
                time.sleep(0.2)
        self.process.kill()
        raise RuntimeError("tvmedge serve did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(30)


def _workload(assistant: Assistant, windows, rounds: int) -> tuple:
    replies = []
    for _ in range(rounds):
        replies = [assistant.listen(w) for w in windows]
    return replies


def answer_rates(assistant: Assistant, count=None) -> dict:
    """The LM's answers to held-out questions (first ``count`` of them, spread over the entries), exact = the
    entry's stored text character for character: given the right entry (the LM alone), and end to end (the
    entry retrieval picks, then the LM) -- both over the service's REST routes."""
    questions, entries = language.question_sentences(held_out=True)
    pick = np.arange(len(questions)) if count is None else np.linspace(0, len(questions) - 1, count).round().astype(int)
    given, end_to_end, retrieved, times, samples = 0, 0, 0, [], []
    for i in pick:
        truth = language.KNOWLEDGE[entries[i]][0]
        started = time.perf_counter()
        text = assistant.answer(questions[i], int(entries[i]))
        times.append((time.perf_counter() - started) * 1e3)
        given += text == truth
        reply = assistant.look_up(questions[i])
        end_to_end += reply.answer == truth
        retrieved += "retrieval" in reply.calls and reply.answer is not None
        if len(samples) < 3:
            samples.append({"question": questions[i], "entry": int(entries[i]), "lm_answer": text,
                            "end_to_end_answer": reply.answer})
    n = len(pick)
    return {"questions": n, "exact_given_right_entry": round(given / n, 4), "exact_end_to_end": round(end_to_end / n, 4),
            "answered_end_to_end": round(retrieved / n, 4), "lm_ms_per_answer_median": round(float(np.median(times)), 1),
            "samples": samples}


def offline_saving(out: Path, host: str, windows: np.ndarray, labels: np.ndarray, rounds: int, progress=print,
                   fresh: bool = True, answers=0) -> dict:
    """RSS and service CPU with the full set loaded vs the offline profile, on the same spoken workload; with
    ``fresh``, also the RSS of a fresh service started with each profile. With the LM served, its answers to
    ``answers`` held-out questions (None: all) are measured while online (:func:`answer_rates`) and returned
    under ``"answers"``."""
    serve_dir = out / "serve"
    shutil.rmtree(serve_dir, ignore_errors=True)
    shutil.copytree(out / host, serve_dir)
    (serve_dir / "offline.json").write_text(json.dumps({"models": list(OFFLINE)}) + "\n")
    report = {"workload": f"{len(windows)} spoken windows x {rounds} rounds (held-out voices)", "profile": list(OFFLINE)}
    with _Service(serve_dir) as service:
        assistant = Assistant(service.url)
        report["unloaded"] = [m for m in assistant.models if m not in OFFLINE]
        assistant.load()
        if LM in assistant.models and answers != 0:
            report["answers"] = answer_rates(assistant, answers)
            progress(f"answers (LM, held-out questions): {json.dumps(report['answers'])}")
        table = assistant.prefetch()
        _workload(assistant, windows[:2], 1)  # warm-up: first-run allocations of every model
        before = _cpu_seconds(service.process.pid)
        online = _workload(assistant, windows, rounds)
        report["cpu_s_online"] = round(_cpu_seconds(service.process.pid) - before, 3)
        report["rss_mib_online"] = round(_rss(service.process.pid) / 2**20, 1)
        freed = assistant.go_offline()
        report["rss_freed_by_unload_mib"] = round(sum(r["rss_freed_bytes"] or 0 for r in freed) / 2**20, 2)
        report["rss_mib_after_unload"] = round(_rss(service.process.pid) / 2**20, 1)
        before = _cpu_seconds(service.process.pid)
        offline = _workload(assistant, windows, rounds)
        report["cpu_s_offline"] = round(_cpu_seconds(service.process.pid) - before, 3)
    report.update(rss_mib_fresh_offline=None, rss_mib_fresh_online=None, rss_saving_fresh=None)
    if fresh:
        with _Service(serve_dir, offline=True) as service:  # a fresh service started with the offline profile
            assistant = Assistant(service.url)
            assistant.load(OFFLINE)
            assistant.table, assistant.online = table, False  # the table kept from the online session
            _workload(assistant, windows[:2], 1)
            report["rss_mib_fresh_offline"] = round(_rss(service.process.pid) / 2**20, 1)
        with _Service(serve_dir) as service:
            assistant = Assistant(service.url)
            assistant.load()
            _workload(assistant, windows[:2], 1)
            report["rss_mib_fresh_online"] = round(_rss(service.process.pid) / 2**20, 1)
        report["rss_saving_fresh"] = round(1 - report["rss_mib_fresh_offline"] / report["rss_mib_fresh_online"], 4)
    report["rss_saving_unload"] = round(1 - report["rss_mib_after_unload"] / report["rss_mib_online"], 4)
    report["cpu_saving"] = round(1 - report["cpu_s_offline"] / report["cpu_s_online"], 4) if report["cpu_s_online"] else None
    intents_online = [r.intent for r in online]
    intents_offline = [r.intent for r in offline]
    expected = [language.COMMAND_INTENT.get(COMMAND_CLASSES[label]) for label in labels]
    report["same_replies_online_offline"] = int(sum((a.command, a.intent, a.answer) == (b.command, b.intent, b.answer)
                                                    for a, b in zip(online, offline)))
    report["intent_correct_online"] = int(sum(a == e for a, e in zip(intents_online, expected)))
    report["intent_correct_offline"] = int(sum(a == e for a, e in zip(intents_offline, expected)))
    report["windows"] = int(len(windows))
    fresh_text = (f"fresh services {report['rss_mib_fresh_online']} vs {report['rss_mib_fresh_offline']} MiB "
                  f"({report['rss_saving_fresh']:.1%})" if fresh else "no fresh services (run.sh --ci)")
    progress(f"offline: RSS {report['rss_mib_online']} -> {report['rss_mib_after_unload']} MiB after unloading "
             f"({report['rss_saving_unload']:.1%}); {fresh_text}; service CPU "
             f"{report['cpu_s_online']} -> {report['cpu_s_offline']} s ({report['cpu_saving']:.1%})")
    return report


def latency_plot(latencies: dict, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, lat in latencies.items():
        ax.hist(lat["times_ms"], bins=40, alpha=0.6, label=f"{name}: median {lat['median_ms']:.3f} ms")
    ax.set_xscale("log")
    ax.set_xlabel("host latency per call (ms, log scale; this machine, one thread)")
    ax.set_ylabel("calls")
    ax.set_title("assistant models on this host (tvmedge runtime)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def measure(out: Path, *, size="full", emulated=True, results=HERE / "results.json", search=None,
            progress=print) -> dict:
    import onnx
    import yaml

    pack = yaml.safe_load((HERE / "pack.yaml").read_text())
    host, boards = pack["host"], pack["boards"]
    search = search or pack["tuning"]["search"]
    amount = SIZES[size]
    where = Path(results).parent
    acc = _accuracy(out, host, amount["windows"])
    confusion = bench.confusion_plot(acc.pop("_command_labels"), acc.pop("_command_int8"),
                                     [c if len(c) < 16 else c[:15] + "." for c in COMMAND_CLASSES],
                                     where / "confusion.png", "assistant commands, INT8 artifact, held-out voices")
    progress(f"accuracy: {json.dumps(acc)}")
    feeds = _feeds()
    latencies = {m: bench.latency(out / host / m, _source(out, m), feeds[m], rounds=amount["rounds"]) for m in MODELS}
    plot = latency_plot(latencies, where / "latency.png")
    progress("host latency: " + ", ".join(f"{m} {v['median_ms']} ms ({v['ratio_vs_ort']}x ORT)" for m, v in latencies.items()))
    # float graphs: the cost model has no int8 rate for the U74 (visionfive2), so every board is priced in float
    predicted = {b: {m: bench.predicted(HERE / f"{m}.onnx", b, out / f"partition-{m}-{b}.json") for m in MODELS} for b in boards}

    emulated_report, match = {}, None
    if emulated:
        n = amount["emulated"] or pack["emulated_inputs"]
        data = np.load(HERE / "data" / "audio_test.npz")["audio"][:n]
        texts = language.featurize([q for q, _ in zip(language.COMMANDS, range(n))])
        inputs = {m: [{INPUT[m]: (data[i:i + 1] if INPUT[m] == "audio" else texts[i:i + 1])} for i in range(n)]
                  for m in MODELS}
        runs = bench.on_emulated_boards({b: {m: (out / b / m, inputs[m]) for m in MODELS} for b in boards},
                                        progress=progress)
        for m in MODELS:
            host_out = bench.run_all(out / host / m, inputs[m])
            for board in boards:
                outs = runs[board][m]
                diff = max(float(np.max(np.abs(o[k] - h[k]))) for o, h in zip(outs, host_out) for k in h)
                emulated_report.setdefault(board, {})[m] = {"inputs": len(outs), "max_abs_diff": diff}
        match = all(r["max_abs_diff"] <= 1e-4 for board in emulated_report.values() for r in board.values())
        progress(f"emulated vs host: {json.dumps(emulated_report)}")

    test = np.load(HERE / "data" / "command_test.npz")
    count = amount["offline"]
    offline = offline_saving(out, host, test["audio"][:count], test["labels"][:count], amount["offline_rounds"],
                             progress, fresh=amount["fresh"], answers=amount["answers"])
    answers = offline.pop("answers", None)
    lm_json = HERE / LM / "lm.json"
    lm_params = json.loads(lm_json.read_text())["model"]["parameters"] if lm_json.is_file() else 0
    lm_kib = bench.kib(HERE / LM) if lm_json.is_file() else 0.0

    path = ("vad", "command", "intent")  # one spoken command through the pipeline (retrieval only for help)
    params = {m: sum(int(np.prod(t.dims)) for t in onnx.load(HERE / f"{m}.onnx").graph.initializer
                     if not t.name.startswith("frontend.") and t.name != "retrieval_kb") for m in MODELS}
    host_ms = round(sum(latencies[m]["median_ms"] for m in path), 3)

    def board_ms(board):
        values = [predicted[board][m]["cpu_ms"] for m in path] if board in predicted else [None]
        return None if None in values else round(sum(values), 3)

    if lm_params:
        params[LM] = lm_params
    answer_note = (f"answers: the LM writes the entry's text exactly for {answers['exact_given_right_entry']:.0%} of "
                   f"{answers['questions']} held-out questions given the right entry, {answers['exact_end_to_end']:.0%} "
                   "end to end (retrieval's entry, then the LM); " if answers else "")
    report = {
        "pack": "assistant", "task": pack["task"],
        "model": "vad.onnx + command.onnx + intent.onnx + retrieval.onnx" + (" + lm/ (char LM)" if lm_params else ""),
        "params": sum(params.values()),
        "size_kb_fp32": round(sum(bench.kib(HERE / f"{m}.onnx") for m in MODELS) + lm_kib, 1),
        "size_kb_int8": round(sum(bench.kib(_source(out, m)) for m in MODELS) + lm_kib, 1),
        "accuracy_fp32": acc["command_accuracy_fp32"], "accuracy_int8": acc["command_accuracy_int8"],
        "host_latency_ms": host_ms, "host_fps": round(1000.0 / host_ms, 1),
        "predicted_rk3588_ms": board_ms("rk3588"), "predicted_riscv_ms": board_ms(pack["riscv_board"]),
        "riscv_board": pack["riscv_board"], "emulated_outputs_match": bool(match),
        "notes": (f"accuracy = spoken-command recognition on {acc['command_windows']} windows of held-out voices "
                  f"(intent {acc['intent_accuracy']:.0%}, retrieval top-1 {acc['retrieval_top1']:.0%}); latency and "
                  f"predictions = vad + command (INT8) + intent per 2 s window (schedule search: {search}); "
                  + answer_note + f"offline profile (vad, command; unloads {', '.join(offline['unloaded'])}): RSS "
                  f"{-offline['rss_saving_unload']:+.1%} after unloading, service CPU {-offline['cpu_saving']:+.1%} "
                  "on the same spoken workload; board figures are cost-model predictions for the CPU"
                  + ("; the LM (float, not quantized) is in size and params and is served on this host only"
                     if lm_params else "")),
        "details": {"accuracy": acc, "params": params, "offline": offline, "answers": answers,
                    "host_latency": {m: {k: v for k, v in lat.items() if k != "times_ms"} for m, lat in latencies.items()},
                    "predicted": predicted, "emulated": emulated_report,
                    "plots": [Path(plot).name, Path(confusion).name]},
    }
    if results:
        Path(results).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where run.sh put the artifacts")
    parser.add_argument("--quick", action="store_true", help="few inputs (run.sh --quick, the slow test)")
    parser.add_argument("--ci", action="store_true", help="fewer still, no fresh services (run.sh --ci)")
    parser.add_argument("--no-emulated", action="store_true", help="skip the emulated boards")
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--build", metavar="SEARCH", help="first quantize, partition and compile in this process")
    parser.add_argument("--search", help="the schedule search the artifacts were built with, for the notes "
                                         "(default: --build's, else pack.yaml's)")
    args = parser.parse_args(argv)
    if args.build:
        build(args.out, args.build, progress=lambda m: print(m, file=sys.stderr, flush=True))
    size = "ci" if args.ci else "quick" if args.quick else "full"
    report = measure(args.out, size=size, emulated=not args.no_emulated, results=args.results, search=args.search or args.build,
                     progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps({k: v for k, v in report.items() if k != "details"}, indent=2))
    return 0 if report["emulated_outputs_match"] or args.no_emulated else 1


if __name__ == "__main__":
    sys.exit(main())
