"""Smart-home keyword spotting: synthesize the data set with espeak-ng, train a small CNN, write ``model.onnx``.

Data (seeded, made here; nothing downloaded), one-second windows at 16 kHz:

- 10 keywords (:data:`KEYWORDS`), ``_unknown_`` (other words, :data:`OTHER_WORDS`) and ``_silence_`` (noise
  only): 12 classes, as in the Speech Commands task;
- training clips are spoken by the training voices (``examples/audio/synth.py``: 8 accents x 14 variants,
  minus the held-out ones), speed 130-210 wpm, pitch 20-80, gain -12..0 dB, random position, white / pink /
  brown / hum / fan noise at 0-30 dB SNR; 100 clips per keyword;
- ``data/test.npz`` and ``data/calib.npz`` are spoken only by the **held-out voices** (accents en-029 and
  en-gb-x-gbcwmd, variants +m5 and +f4), never trained on; calib (for INT8 calibration) and test are disjoint.

Model (``model.onnx``, input ``audio`` (1, 16000) float32, output ``logits`` (1, 12)): the log-mel front end
of ``examples/audio/frontend.py`` inside the graph, then 4 x (conv3x3 + BN + ReLU), max-pools, global average
pool, linear (8/16/32/32 channels). Trained with torch on CPU (seed 0), 12 epochs.

    python examples/smart-home/train.py                # data + training: ~5 min on 2 idle cores, 3x that on a busy machine
    python examples/smart-home/train.py --data-only    # only data/calib.npz + data/test.npz (run.sh does this)
    python examples/smart-home/train.py --quick        # small data, 2 epochs: what the CI test runs
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

from audio import frontend, nets, synth  # noqa: E402

SEED = 0
SAMPLES = synth.RATE  # one second
KEYWORDS = ("on", "off", "up", "down", "lights", "music", "stop", "heating", "open", "close")
OTHER_WORDS = ("cat", "tree", "house", "green", "seven", "bird", "happy", "left", "right", "yes", "no", "window",
               "dog", "go", "kitchen", "table", "water", "hello")
CLASSES = KEYWORDS + ("_unknown_", "_silence_")
WIDTHS = (8, 16, 32, 32)  # conv channels: ~3 M multiply-adds per second of audio after the front end


def build(per_keyword: int, held_out: bool, seed: int, copies: int = 1):
    """Windows and labels for one split: ``per_keyword`` clips of each keyword, 1.5x as many unknown words and
    ``per_keyword`` noise-only windows; each clip placed ``copies`` times -> ``(audio (N, 16000), labels (N,))``."""
    rng = np.random.default_rng(seed)
    items, labels = [], []
    for label, word in enumerate(KEYWORDS):
        items += [(word, s) for s in synth.styles(rng, per_keyword, held_out=held_out)]
        labels += [label] * per_keyword
    unknown = int(per_keyword * 1.5)
    words = [OTHER_WORDS[i] for i in rng.integers(len(OTHER_WORDS), size=unknown)]
    items += list(zip(words, synth.styles(rng, unknown, held_out=held_out)))
    labels += [CLASSES.index("_unknown_")] * unknown
    clips = synth.speak_many(items) + [None] * per_keyword
    labels += [CLASSES.index("_silence_")] * per_keyword
    audio, out_labels = [], []
    for _ in range(copies):
        for clip, label in zip(clips, labels):
            audio.append(synth.place(clip, SAMPLES, rng)[0])
            out_labels.append(label)
    return np.stack(audio), np.asarray(out_labels, np.int64)


def write_data(data_dir: Path, per_keyword: int, seed: int = SEED):
    """``calib.npz`` (held-out voices, for INT8 calibration) and ``test.npz`` (other held-out clips)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    test = build(per_keyword, True, seed + 1)
    calib = build(max(per_keyword // 4, 2), True, seed + 2)
    np.savez_compressed(data_dir / "test.npz", audio=test[0], labels=test[1])
    np.savez_compressed(data_dir / "calib.npz", audio=calib[0], labels=calib[1])
    (data_dir / "size.txt").write_text("quick\n" if per_keyword < 40 else "full\n")  # run.sh checks it
    return test, calib


def to_onnx(net, mean, inv_std, path: Path):
    nodes, inits = frontend.frontend_nodes(SAMPLES, mean, inv_std)
    more_nodes, more_inits = frontend.torch_nodes(net, "features", "logits", prefix="kws")
    model = frontend.make_model(nodes + more_nodes, inits + more_inits, [("audio", [1, SAMPLES])],
                                [("logits", [1, len(CLASSES)])],
                                doc="smart-home keyword spotting: classes " + ",".join(CLASSES))
    import onnx

    onnx.save(model, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for model.onnx, train.json and data/")
    parser.add_argument("--data-only", action="store_true", help="only write data/calib.npz and data/test.npz")
    parser.add_argument("--quick", action="store_true", help="small data set, 2 epochs (for tests)")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    per_keyword, train_per_keyword, epochs = (6, 12, 2) if args.quick else (40, 100, args.epochs)
    started = time.perf_counter()
    size_file = args.out / "data" / "size.txt"
    if size_file.is_file() and size_file.read_text().strip() == ("quick" if args.quick else "full"):
        test = tuple(np.load(args.out / "data" / "test.npz")[k] for k in ("audio", "labels"))  # same seed, same data
    else:
        test, _ = write_data(args.out / "data", per_keyword)
    print(f"data: test {len(test[1])} windows (held-out voices) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.data_only:
        return 0

    import torch

    torch.set_num_threads(2)
    x_audio, y = build(train_per_keyword, False, SEED)
    x = frontend.log_mel(x_audio)
    mean, std = x.mean(axis=(0, 1, 3)), x.std(axis=(0, 1, 3)) + 1e-3
    norm = lambda f: ((f - mean[None, None, :, None]) / std[None, None, :, None]).astype(np.float32)  # noqa: E731
    print(f"data: train {len(y)} windows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    net = nets.kws_cnn(len(CLASSES), widths=WIDTHS)
    nets.fit(net, norm(x), y, epochs=epochs, seed=SEED, progress=lambda m: print(m, file=sys.stderr))
    test_acc = float(np.mean(nets.predict(net, norm(frontend.log_mel(test[0]))).argmax(1) == test[1]))
    to_onnx(net, mean, 1.0 / std, args.out / "model.onnx")
    info = {"classes": list(CLASSES), "train_windows": int(len(y)), "test_windows": int(len(test[1])),
            "epochs": epochs, "seed": SEED, "torch_test_accuracy": test_acc,
            "params": int(sum(p.numel() for p in net.parameters())), "seconds": round(time.perf_counter() - started, 1)}
    (args.out / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
