"""The steps every vision pack shares: write its data splits, train its model, export it to ONNX.

A pack folder holds ``dataset.py`` (``CLASSES``, ``SEEDS``, ``make_split(n, seed)``), ``pack.yaml`` (split sizes,
epochs, the network) and the committed ``model.onnx`` that :func:`train_model` wrote.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from . import cnn
from .measure import PackConfig

__all__ = ["load_dataset_module", "write_data", "train_model"]


def load_dataset_module(pack_dir):
    """The pack's ``dataset.py`` as a module."""
    path = Path(pack_dir) / "dataset.py"
    spec = importlib.util.spec_from_file_location(f"{Path(pack_dir).name.replace('-', '_')}_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_data(pack_dir, *, calib=None, test=None, progress=print) -> Path:
    """Generate the calibration and test splits into ``<pack>/data/`` (sizes default to pack.yaml's)."""
    cfg = PackConfig.read(pack_dir)
    dataset = load_dataset_module(cfg.folder)
    folder = cfg.folder / "data"
    folder.mkdir(exist_ok=True)
    for split, n in (("calib", calib or cfg.data["calib"]), ("test", test or cfg.data["test"])):
        x, y = dataset.make_split(int(n), dataset.SEEDS[split])
        np.savez_compressed(folder / f"{split}.npz", input=x, labels=y)
        if progress:
            progress(f"wrote {folder / (split + '.npz')}: {len(x)} synthetic images, input {tuple(x.shape[1:])}")
    return folder


def train_model(pack_dir, out=None, *, train=None, test=None, epochs=None, progress=print) -> dict:
    """Generate the training split, train the CNN pack.yaml describes, evaluate it in numpy on the test split,
    and write the ONNX model (default ``<pack>/model.onnx``) -> a summary dict."""
    import onnx

    cfg = PackConfig.read(pack_dir)
    dataset = load_dataset_module(cfg.folder)
    net = cfg.training["network"]
    spec = cnn.CNNSpec(in_channels=int(net["in_channels"]), size=int(dataset.SIZE), channels=tuple(net["channels"]),
                       hidden=int(net["hidden"]), classes=len(dataset.CLASSES), head=net.get("head", "flatten"))
    started = time.perf_counter()
    x, y = dataset.make_split(int(train or cfg.data["train"]), dataset.SEEDS["train"])
    xt, yt = dataset.make_split(int(test or cfg.data["test"]), dataset.SEEDS["test"])
    if progress:
        progress(f"generated {len(x)} training and {len(xt)} test images in {time.perf_counter() - started:.0f} s")

    def report(epoch, loss):
        if progress:
            progress(f"epoch {epoch + 1}: loss {loss:.4f} ({time.perf_counter() - started:.0f} s)")

    seed = int(cfg.training.get("seed", 0))
    params = cnn.train(spec, x, y, epochs=int(epochs or cfg.training["epochs"]), seed=seed,
                       lr=float(cfg.training.get("lr", 3e-3)), progress=report,
                       augment=cnn.dihedral if cfg.training.get("augment") == "dihedral" else None)
    out = Path(out) if out else cfg.folder / cfg.model
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = (f"{cfg.pack}: {cfg.task}. Trained by examples/{cfg.folder.name}/train.py (seed {seed}) on synthetic "
           f"data from examples/{cfg.folder.name}/dataset.py")
    onnx.save(cnn.to_onnx(spec, params, name=cfg.pack.replace("-", "_"), doc=doc), out)
    summary = {"model": str(out), "params": cnn.count_params(params), "train_images": len(x),
               "train_accuracy": float(np.mean(cnn.predict(spec, params, x) == y)),
               "test_accuracy_numpy": float(np.mean(cnn.predict(spec, params, xt) == yt)),
               "seconds": round(time.perf_counter() - started, 1)}
    if progress:
        progress(f"wrote {out}: {summary['params']} parameters; accuracy train {summary['train_accuracy']:.4f}, "
                 f"test {summary['test_accuracy_numpy']:.4f} (numpy, before export)")
    return summary


def train_main(pack_dir, argv=None) -> dict:
    """The command line of every vision pack's ``train.py``: sizes default to the pack's pack.yaml."""
    import argparse

    parser = argparse.ArgumentParser(description=f"Train the {Path(pack_dir).name} pack's model -> model.onnx")
    parser.add_argument("-o", "--output", help="ONNX file to write (default: model.onnx next to train.py)")
    parser.add_argument("--train", type=int, help="training images (default: pack.yaml)")
    parser.add_argument("--test", type=int, help="test images for the numpy accuracy (default: pack.yaml)")
    parser.add_argument("--epochs", type=int, help="default: pack.yaml")
    args = parser.parse_args(argv)
    return train_model(pack_dir, args.output, train=args.train, test=args.test, epochs=args.epochs)

