"""The vision scenario packs of issue 18 (examples/industrial-qc, examples/automotive) keep working.

Default run: each pack's seeded generator is deterministic, its training script trains and exports a model
that ONNX Runtime runs as numpy computed it, and the committed model still scores what the committed
results.json says on freshly generated test images. Slow run (`-m slow`, minutes on a loaded 2-core machine:
four compiles, two partitions, two emulated boards): the pack's run.sh end to end on a copy of the pack with
reduced data, as a user runs it.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
PACKS = ("industrial-qc", "automotive")
KEYS = ("pack", "task", "model", "params", "size_kb_fp32", "size_kb_int8", "accuracy_fp32", "accuracy_int8",
        "host_latency_ms", "host_fps", "predicted_rk3588_ms", "predicted_riscv_ms", "riscv_board",
        "emulated_outputs_match", "notes")


def _packlib():
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from packlib import cnn, measure, pack
    finally:
        sys.path.remove(str(REPO / "examples"))
    return cnn, measure, pack


def _dataset(name):
    return _packlib()[2].load_dataset_module(REPO / "examples" / name)


def _ort_logits(model, x):
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": image[None]})[0] for image in x])


@pytest.mark.parametrize("name", PACKS)
def test_the_generator_is_seeded_and_balanced(name):
    dataset = _dataset(name)
    x1, y1 = dataset.make_split(16, 5)
    x2, y2 = dataset.make_split(16, 5)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)  # same seed, same data, on every machine
    assert not np.array_equal(x1, dataset.make_split(16, 6)[0])
    assert x1.dtype == np.float32 and np.isfinite(x1).all() and x1.shape[-1] == dataset.SIZE
    assert np.bincount(y1, minlength=len(dataset.CLASSES)).max() - np.bincount(y1).min() <= 1
    assert len(set(dataset.SEEDS.values())) == 3  # train, calib and test are disjoint streams


@pytest.mark.parametrize("name", PACKS)
def test_training_exports_what_numpy_computed(name, tmp_path):
    """train.py's path in small: the exported ONNX model (run by ONNX Runtime) equals the numpy network."""
    cnn, measure, pack = _packlib()
    summary = pack.train_model(REPO / "examples" / name, tmp_path / "model.onnx", train=24, test=8, epochs=1,
                               progress=None)
    import onnx
    from onnx import numpy_helper

    model = onnx.load(summary["model"])
    params = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert sum(p.size for p in params.values()) == summary["params"]
    cfg = measure.PackConfig.read(REPO / "examples" / name)
    net = cfg.training["network"]
    dataset = _dataset(name)
    spec = cnn.CNNSpec(net["in_channels"], dataset.SIZE, tuple(net["channels"]), net["hidden"],
                       len(dataset.CLASSES), net.get("head", "flatten"))
    x, _ = dataset.make_split(6, 99)
    np.testing.assert_allclose(_ort_logits(summary["model"], x), cnn.forward(spec, params, x), atol=1e-4)


@pytest.mark.parametrize("name", PACKS)
def test_the_committed_model_scores_what_its_results_say(name):
    folder = REPO / "examples" / name
    results = json.loads((folder / "results.json").read_text())
    assert tuple(results) == KEYS
    assert results["pack"] == name and results["model"] == "model.onnx"
    assert (folder / "model.onnx").stat().st_size < 2 << 20
    dataset = _dataset(name)
    x, y = dataset.make_split(96, dataset.SEEDS["test"] + 1000)  # fresh images the results were not measured on
    accuracy = float(np.mean(_ort_logits(folder / "model.onnx", x).argmax(1) == y))
    assert abs(accuracy - results["accuracy_fp32"]) < 0.15, (accuracy, results["accuracy_fp32"])


@pytest.mark.slow
@pytest.mark.emulated
@pytest.mark.parametrize("name", PACKS)
def test_run_sh_end_to_end_reduced(name, tmp_path):
    """run.sh as a user runs it (on a copy of the pack, so the committed results stay), with 32 calibration
    and 16 test images: quantize, partition, compile for the ARM and RISC-V boards and this host, run on the
    emulated boards against the host, serve one request, measure."""
    if shutil.which("qemu-aarch64") is None or shutil.which("qemu-riscv64") is None:
        pytest.skip("qemu-user not installed")
    _, measure, _ = _packlib()
    copy = measure.copy_pack(REPO / "examples" / name, tmp_path)
    env = {**os.environ, "PYTHON": sys.executable, "CALIB": "32", "TEST": "16", "LIMIT": "16",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["bash", str(copy / "run.sh")], env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "outputs match the host's" in proc.stdout and '"logits"' in proc.stdout  # emulated check, served reply
    results = json.loads((copy / "results.json").read_text())
    assert tuple(results) == KEYS and results["emulated_outputs_match"] is True
    assert 0 <= results["accuracy_int8"] <= 1 and results["predicted_rk3588_ms"] > 0 and results["predicted_riscv_ms"] > 0
    assert all((copy / plot).is_file() for plot in ("confusion.png", "latency.png", "partition_rk3588.png"))
