"""Train the automotive model: synthetic traffic-sign crops (dataset.py) -> CNN in numpy -> model.onnx.

    python examples/automotive/train.py                 # pack.yaml's sizes: ~3 min on 2 cores
    python examples/automotive/train.py --train 200 --epochs 1 -o /tmp/model.onnx   # a quick check

Deterministic (seeded data, seeded training); the committed model.onnx is what the first line writes.
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from packlib.pack import train_model  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", help="ONNX file to write (default: model.onnx next to this script)")
    parser.add_argument("--train", type=int, help="training images (default: pack.yaml)")
    parser.add_argument("--test", type=int, help="test images for the numpy accuracy (default: pack.yaml)")
    parser.add_argument("--epochs", type=int, help="default: pack.yaml")
    args = parser.parse_args(argv)
    return train_model(HERE, args.output, train=args.train, test=args.test, epochs=args.epochs)


if __name__ == "__main__":
    main()
