"""Train the automotive model: synthetic traffic-sign crops (dataset.py) -> CNN in numpy -> model.onnx.

    python examples/automotive/train.py                 # pack.yaml's sizes: ~3 min on 2 cores
    python examples/automotive/train.py --train 200 --epochs 1 -o /tmp/model.onnx   # a quick check

Deterministic (seeded data, seeded training); the committed model.onnx is what the first line writes.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from packlib.pack import train_main  # noqa: E402

if __name__ == "__main__":
    train_main(HERE)
