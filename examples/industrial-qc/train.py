"""Train the industrial-qc model: synthetic surface-defect patches (dataset.py) -> CNN in numpy -> model.onnx.

    python examples/industrial-qc/train.py                 # pack.yaml's sizes: ~3-5 min on 2 cores
    python examples/industrial-qc/train.py --train 200 --epochs 1 -o /tmp/model.onnx   # a quick check

Deterministic (seeded data, seeded training); the committed model.onnx is what the first line writes.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from packlib.pack import train_main  # noqa: E402

if __name__ == "__main__":
    train_main(HERE)
