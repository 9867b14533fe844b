"""The assistant's four models, trained here from synthesized speech and templated text (seeded, CPU, torch).

| model            | input                         | output                                  | trained on                      |
|------------------|-------------------------------|-----------------------------------------|---------------------------------|
| ``vad.onnx``     | ``audio`` (1, 32000): 2 s     | ``speech`` (1, 198): P(speech) per 10 ms | espeak-ng clips + noise windows |
| ``command.onnx`` | ``audio`` (1, 32000)          | ``logits`` (1, 13): 12 commands + other  | espeak-ng phrases               |
| ``intent.onnx``  | ``text`` (1, 1024) n-gram hash | ``logits`` (1, 8) intents               | templated paraphrases           |
| ``retrieval.onnx``| ``text`` (1, 1024)           | ``embedding`` (1, 64), ``scores`` (1, 12)| knowledge-base questions        |

The audio models carry the log-mel front end inside (``examples/audio/frontend.py``); the text models take
hashed character n-grams computed in numpy (``language.featurize``). Voice activity labels per frame come from
the energy of the clean (noise-free) speech. The retrieval model is a learned projection (1024 -> 64, trained
so that paraphrases of a question land next to its knowledge-base entry) followed by L2 normalization and
the cosine similarity with every entry's embedding, which is a constant in the graph: nearest neighbours are
the top scores. Test data: held-out voices (audio) and held-out templates / questions (text).

    python examples/assistant/train.py            # all four: ~30 min on a busy 2-core machine
    python examples/assistant/train.py --only command   # the command model alone (40 epochs, ~4 min): how the
                                                        # shipped command.onnx was made (10 epochs gave 30 %)
    python examples/assistant/train.py --quick    # small data, 2 epochs (the CI test)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import language  # noqa: E402
from audio import frontend, nets, synth  # noqa: E402

SEED = 0
SAMPLES = 2 * synth.RATE
FRAMES = frontend.frames(SAMPLES)
COMMAND_CLASSES = language.COMMANDS + ("_other_",)
EMBED = 64


def build_audio(per_class: int, held_out: bool, seed: int):
    """2-second windows: each command and 'other' phrases (``per_class`` each), and ``per_class`` noise-only
    windows -> ``(audio (N, 32000), command labels (N,), speech per frame (N, 198))``; noise windows have label
    -1 (they train only the voice activity detector)."""
    rng = np.random.default_rng(seed)
    items, labels = [], []
    for label, text in enumerate(language.COMMANDS):
        items += [(text, s) for s in synth.styles(rng, per_class, held_out=held_out)]
        labels += [label] * per_class
    others = [language.OTHER_PHRASES[i] for i in rng.integers(len(language.OTHER_PHRASES), size=per_class)]
    items += list(zip(others, synth.styles(rng, per_class, held_out=held_out)))
    labels += [len(language.COMMANDS)] * per_class
    clips = synth.speak_many(items) + [None] * per_class
    labels += [-1] * per_class
    audio, speech = [], []
    for clip in clips:
        window, clean = synth.place(clip, SAMPLES, rng)
        audio.append(window)
        speech.append(_frame_labels(clean))
    return np.stack(audio), np.asarray(labels, np.int64), np.stack(speech)


def _frame_labels(clean: np.ndarray) -> np.ndarray:
    """1 for frames whose clean-speech energy is within 35 dB of the loudest frame, else 0."""
    windows = np.lib.stride_tricks.sliding_window_view(clean, frontend.N_FFT)[::frontend.HOP]
    energy = np.mean(windows.astype(np.float64) ** 2, axis=1)
    if energy.max() <= 0:
        return np.zeros(FRAMES, np.float32)
    return (energy > energy.max() * 10 ** -3.5).astype(np.float32)


def vad_net():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d((2, 1)),
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d((2, 1)),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d((2, 1)),
        nn.AvgPool2d((5, 1)), nn.Conv2d(8, 1, 1), nn.Flatten())


def intent_net():
    import torch.nn as nn

    return nn.Sequential(nn.Linear(language.BUCKETS, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, len(language.INTENTS)))


def train_retrieval(epochs: int, seed: int):
    """The projection W (64 x 1024) and the knowledge-base embeddings (12 x 64), trained contrastively: a
    question's embedding should be nearest to its entry's (the entry's answer and training questions)."""
    import torch

    torch.manual_seed(seed)
    questions, labels = language.question_sentences(held_out=False)
    keys = language.featurize([" ".join([answer] + train) for answer, train, _ in language.KNOWLEDGE])
    q, k, y = torch.from_numpy(language.featurize(questions)), torch.from_numpy(keys), torch.from_numpy(labels)
    proj = torch.nn.Linear(language.BUCKETS, EMBED, bias=False)
    opt = torch.optim.Adam(proj.parameters(), lr=1e-2)
    for _ in range(epochs):
        qe = torch.nn.functional.normalize(proj(q), dim=1)
        ke = torch.nn.functional.normalize(proj(k), dim=1)
        loss = torch.nn.functional.cross_entropy(20.0 * qe @ ke.T, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        kb = torch.nn.functional.normalize(proj(k), dim=1).numpy()
    return proj.weight.detach().numpy(), kb


def audio_model(net, mean, inv_std, output: str, shape, doc: str, sigmoid: bool = False):
    import torch

    nodes, inits = frontend.frontend_nodes(SAMPLES, mean, inv_std)
    seq = torch.nn.Sequential(*net, torch.nn.Sigmoid()) if sigmoid else net
    more_nodes, more_inits = frontend.torch_nodes(seq, "features", output, prefix=output.split("_")[0])
    return frontend.make_model(nodes + more_nodes, inits + more_inits, [("audio", [1, SAMPLES])], [(output, shape)], doc)


def retrieval_model(weight: np.ndarray, kb: np.ndarray):
    """text -> Gemm (projection) -> embedding = x / ||x|| -> scores = embedding @ kb^T."""
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(weight.astype(np.float32), "retrieval_proj.w"),
             numpy_helper.from_array(kb.T.astype(np.float32).copy(), "retrieval_kb"),
             numpy_helper.from_array(np.array(1e-6, np.float32), "retrieval_eps")]
    nodes = [helper.make_node("Gemm", ["text", "retrieval_proj.w"], ["projected"], name="retrieval_proj", transB=1),
             helper.make_node("ReduceL2", ["projected"], ["norm"], name="retrieval_norm", axes=[1], keepdims=1),
             helper.make_node("Add", ["norm", "retrieval_eps"], ["norm_eps"], name="retrieval_eps_add"),
             helper.make_node("Div", ["projected", "norm_eps"], ["embedding"], name="retrieval_normalize"),
             helper.make_node("MatMul", ["embedding", "retrieval_kb"], ["scores"], name="retrieval_scores")]
    return frontend.make_model(nodes, inits, [("text", [1, language.BUCKETS])],
                               [("embedding", [1, EMBED]), ("scores", [1, len(language.KNOWLEDGE)])],
                               doc="assistant retrieval: cosine scores of the knowledge-base entries (examples/assistant/language.py)")


def write_test_data(data_dir: Path, per_class: int, seed: int = SEED):
    """``data/audio_test.npz`` (held-out voices: audio, labels, speech), ``data/command_test.npz`` (its windows
    with a phrase) and ``data/audio_calib.npz`` (calibration for the INT8 command model, other held-out clips)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    test = build_audio(per_class, True, seed + 1)
    calib = build_audio(max(per_class // 4, 2), True, seed + 2)
    np.savez_compressed(data_dir / "audio_test.npz", audio=test[0], labels=test[1], speech=test[2])
    keep = calib[1] >= 0
    np.savez_compressed(data_dir / "audio_calib.npz", audio=calib[0][keep], labels=calib[1][keep])
    spoken = test[1] >= 0  # the command model's test set: the windows that hold a phrase
    np.savez_compressed(data_dir / "command_test.npz", audio=test[0][spoken], labels=test[1][spoken])
    (data_dir / "size.txt").write_text("quick\n" if per_class < 20 else "full\n")  # run.sh checks it
    return test


def main(argv=None) -> int:
    import onnx
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the .onnx files, train.json and data/")
    parser.add_argument("--data-only", action="store_true", help="only write the test and calibration audio")
    parser.add_argument("--quick", action="store_true", help="small data set, 2 epochs (for tests)")
    parser.add_argument("--only", help="comma-separated models to (re)train, e.g. command; the others are kept")
    parser.add_argument("--epochs", type=int, help="epochs of the audio models (default: vad 10, command 40; "
                                                    "2 with --quick)")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else {"vad", "command", "intent", "retrieval"}
    per_class, train_per_class, epochs = (3, 8, 2) if args.quick else (20, 60, 10)
    epochs = {"vad": args.epochs or epochs, "command": args.epochs or (epochs if args.quick else 40)}
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    started = time.perf_counter()
    size_file = args.out / "data" / "size.txt"
    if size_file.is_file() and size_file.read_text().strip() == ("quick" if args.quick else "full"):
        test = tuple(np.load(args.out / "data" / "audio_test.npz")[k] for k in ("audio", "labels", "speech"))
    else:
        test = write_test_data(args.out / "data", per_class)
    log(f"test audio: {len(test[1])} windows in {time.perf_counter() - started:.0f} s")
    if args.data_only:
        return 0
    torch.set_num_threads(2)
    audio, labels, speech = build_audio(train_per_class, False, SEED)
    x = frontend.log_mel(audio)
    mean, std = x.mean(axis=(0, 1, 3)), x.std(axis=(0, 1, 3)) + 1e-3
    norm = lambda f: ((f - mean[None, None, :, None]) / std[None, None, :, None]).astype(np.float32)  # noqa: E731
    xn, xt = norm(x), norm(frontend.log_mel(test[0]))
    log(f"train audio: {len(labels)} windows in {time.perf_counter() - started:.0f} s")
    info_file = args.out / "train.json"
    info = json.loads(info_file.read_text()) if args.only and info_file.is_file() else {}
    info.update({"seed": SEED, "train_windows": int(len(labels)), "test_windows": int(len(test[1]))})
    info.update({f"{m}_epochs": epochs[m] for m in ("vad", "command") if m in only})

    if "vad" in only:
        train_vad(xn, xt, speech, test, mean, std, epochs["vad"], args.out, info, log)
    if "command" in only:
        train_command(xn, xt, labels, test, mean, std, epochs["command"], args.out, info, log)
    if "intent" in only:
        train_intent(args.quick, args.out, info)
    if "retrieval" in only:
        weight, kb = train_retrieval(300 if not args.quick else 5, SEED)
        onnx.save(retrieval_model(weight, kb), args.out / "retrieval.onnx")
    info["seconds"] = round(time.perf_counter() - started, 1)
    info_file.write_text(json.dumps(info, indent=2) + "\n")
    log(json.dumps(info))
    return 0


def train_vad(xn, xt, speech, test, mean, std, epochs, out, info, log):
    import onnx

    vad = nets.fit(vad_net(), xn, speech, epochs=epochs, seed=SEED, loss="bce", augment=False, progress=log)
    info["vad_torch_frame_accuracy"] = float(np.mean((nets.predict(vad, xt) > 0) == (test[2] > 0.5)))
    onnx.save(audio_model(vad, mean, 1 / std, "speech", [1, FRAMES], "assistant voice activity: P(speech) per 10 ms frame",
                          sigmoid=True), out / "vad.onnx")


def train_command(xn, xt, labels, test, mean, std, epochs, out, info, log):
    import onnx

    keep = labels >= 0
    command = nets.fit(nets.kws_cnn(len(COMMAND_CLASSES), widths=(8, 16, 32, 32)), xn[keep], labels[keep], epochs=epochs,
                       seed=SEED, progress=log)
    tk = test[1] >= 0
    info["command_torch_accuracy"] = float(np.mean(nets.predict(command, xt[tk]).argmax(1) == test[1][tk]))
    onnx.save(audio_model(command, mean, 1 / std, "logits", [1, len(COMMAND_CLASSES)],
                          "assistant command recognition: " + ",".join(COMMAND_CLASSES)), out / "command.onnx")


def train_intent(quick, out, info):
    import onnx

    rng = np.random.default_rng(SEED)
    texts, intents = language.intent_sentences(False, rng)
    intent = nets.fit(intent_net(), language.featurize(texts), intents, epochs=60 if not quick else 2,
                      seed=SEED, batch=32, progress=lambda m: None)
    test_texts, test_intents = language.intent_sentences(True, rng)
    info["intent_torch_accuracy"] = float(np.mean(nets.predict(intent, language.featurize(test_texts)).argmax(1) == test_intents))
    nodes, inits = frontend.torch_nodes(intent, "text", "logits", prefix="intent")
    onnx.save(frontend.make_model(nodes, inits, [("text", [1, language.BUCKETS])], [("logits", [1, len(language.INTENTS)])],
                                  "assistant intent: " + ",".join(language.INTENTS)), out / "intent.onnx")


if __name__ == "__main__":
    sys.exit(main())
