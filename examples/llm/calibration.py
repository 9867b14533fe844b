"""Write the calibration set of the trained character model (``examples/llm/charlm/calibration.npz``), which
``bit_width: mixed`` (examples/llm/quant_mixed.yaml) measures each layer's sensitivity on.

Samples are prompts of the prefill graph cut from the *training* part of the corpus (never the held-out part
that perplexity is measured on): ``tokens`` [N, P] (the prompt, zero-padded to the prefill length P),
``length`` [N] and ``labels`` [N], the character that follows the prompt in the corpus, so the calibration
score is next-character top-1 accuracy. Deterministic (seeded offsets and lengths).

    python examples/llm/calibration.py            # rewrites examples/llm/charlm/calibration.npz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import train  # noqa: E402


def calibration_set(package: Path, samples: int = 48, seed: int = 0) -> dict:
    lm = json.loads((package / "lm.json").read_text())
    length = int(lm["prefill_length"])
    training, _ = train.split_corpus(train.read_corpus())
    ids = train.encode(training, lm["tokenizer"]["vocab"])
    rng = np.random.default_rng(seed)
    tokens = np.zeros((samples, length), np.int64)
    lengths = rng.integers(length // 4, length + 1, samples)
    starts = rng.integers(0, ids.size - length - 1, samples)
    labels = np.empty(samples, np.int64)
    for i, (start, n) in enumerate(zip(starts, lengths)):
        tokens[i, :n] = ids[start:start + n]
        labels[i] = ids[start + n]
    return {"tokens": tokens, "length": lengths.astype(np.int64), "labels": labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default=str(HERE / "charlm"))
    parser.add_argument("--samples", type=int, default=48)
    args = parser.parse_args()
    package = Path(args.package)
    np.savez(package / "calibration.npz", **calibration_set(package, args.samples))
    print(f"wrote {package / 'calibration.npz'} ({args.samples} prompts)")


if __name__ == "__main__":
    main()
