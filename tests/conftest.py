"""Shared fixtures: the bundled example model, generated models, and artifacts compiled once per session."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
TINY_CNN = REPO / "examples" / "models" / "tiny_cnn.onnx"


def _load_example_builder():
    spec = importlib.util.spec_from_file_location("make_tiny_cnn", REPO / "examples" / "models" / "make_tiny_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def _private_tuning_logs(tmp_path_factory):
    """Tests never write into the repository's tuning_logs/ (the compile default stores quick-search records)."""
    import os

    path = tmp_path_factory.mktemp("tuning_logs")
    old = os.environ.get("TVMEDGE_TUNING_LOGS")
    os.environ["TVMEDGE_TUNING_LOGS"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TVMEDGE_TUNING_LOGS", None)
    else:
        os.environ["TVMEDGE_TUNING_LOGS"] = old


# The spine's fixtures build TVM's default (naive) code: fast to compile, and tuning has its own tests.
def naive():
    from tvmedge.tune.auto import TuningOptions

    return TuningOptions(search="naive")


# A fake board this host can run: two CPU "units" with llvm targets (x86-host has one unit, nothing to split).
TWO_CPU = """\
name: two-cpu
description: "test board: this host's CPU seen as two units"
arch: x86_64
target: {kind: llvm, mcpu: host, num-cores: 1}
cross_compiler: null
compute_units:
  - {name: big, kind: cpu, cores: 1, peak_gops: {fp32: 40}, mem_bandwidth_gbps: 20, ops: all,
     target: {kind: llvm, mcpu: host, num-cores: 1}}
  - {name: little, kind: cpu, cores: 1, peak_gops: {fp32: 40}, mem_bandwidth_gbps: 20, ops: all,
     target: {kind: llvm, num-cores: 1}}
links:
  - {src: big, dst: little, bandwidth_gbps: 20, latency_us: 1, sync_us: 1}
"""


@pytest.fixture(scope="session")
def two_cpu_board(tmp_path_factory) -> Path:
    """A board YAML: this host's CPU seen as two units (something to partition over on x86)."""
    path = tmp_path_factory.mktemp("boards") / "two-cpu.yaml"
    path.write_text(TWO_CPU)
    return path


@pytest.fixture(scope="session")
def naive_tuning():
    """TuningOptions for TVM's default build (no records, no search)."""
    return naive()


@pytest.fixture(scope="session")
def tiny_cnn() -> Path:
    return TINY_CNN


@pytest.fixture(scope="session")
def dynamic_cnn(tmp_path_factory) -> Path:
    """The example CNN with a symbolic batch and a PyTorch-style Shape->Gather->Concat->Reshape flatten."""
    path = tmp_path_factory.mktemp("models") / "tiny_cnn_dynamic.onnx"
    onnx.save(_load_example_builder().build(dynamic=True), path)
    return path


@pytest.fixture(scope="session")
def unsupported_model(tmp_path_factory) -> Path:
    """A valid model with two ops the importer lacks (Det and DFT; until issue 15 the second was QLinearMatMul)."""
    nodes = [
        helper.make_node("Det", ["x"], ["y"]),
        helper.make_node("DFT", ["x2"], ["spectrum"]),
    ]
    graph = helper.make_graph(
        nodes, "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 4]),
         helper.make_tensor_value_info("x2", TensorProto.FLOAT, [4, 4, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("spectrum", TensorProto.FLOAT, [4, 4, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("models") / "unsupported.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def x86_artifact(tmp_path_factory, tiny_cnn) -> Path:
    from tvmedge import api

    out = tmp_path_factory.mktemp("artifacts") / "tiny-x86"
    api.compile(tiny_cnn, "x86-host", out=out, tuning=naive())
    return out


@pytest.fixture(scope="session")
def arm_artifact(tmp_path_factory, tiny_cnn) -> Path:
    from tvmedge import api

    out = tmp_path_factory.mktemp("artifacts") / "tiny-rk3588"
    api.compile(tiny_cnn, "rk3588", out=out, tuning=naive())
    return out


@pytest.fixture
def artifact_copy(tmp_path, x86_artifact) -> Path:
    """A private copy of the x86 artifact that a test may damage."""
    return Path(shutil.copytree(x86_artifact, tmp_path / "artifact"))


@pytest.fixture(scope="session")
def tiny_input() -> np.ndarray:
    return np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float64).astype(np.float32)


# --- language models (issue 16) -------------------------------------------------------------------------------
def load_gpt_example():
    """``examples/llm/gpt.py``: the GPT decoder written as prefill/decode ONNX graphs with a KV cache."""
    import sys

    if "gpt_example" not in sys.modules:  # registered first: its dataclasses look their module up there
        spec = importlib.util.spec_from_file_location("gpt_example", REPO / "examples" / "llm" / "gpt.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpt_example"] = module
        spec.loader.exec_module(module)
    return sys.modules["gpt_example"]


@pytest.fixture(scope="session")
def tiny_lm_package(tmp_path_factory) -> Path:
    """A random (seeded) one-layer GPT: context 16, prefill 8, printable-ASCII vocabulary. Weights scaled up so
    that the logits differ clearly from token to token (greedy choices are then not near-ties)."""
    gpt = load_gpt_example()
    cfg = gpt.GPTConfig(vocab=96, context=16, prefill=8, layers=1, dim=32, heads=2)
    weights = {k: v * (6.0 if v.ndim == 2 else 1.0) for k, v in gpt.random_weights(cfg, seed=7).items()}
    vocab = [chr(c) for c in range(32, 127)] + ["\n"]
    return gpt.write_package(weights, cfg, vocab, tmp_path_factory.mktemp("lm") / "tiny-lm")


@pytest.fixture(scope="session")
def tiny_lm_artifact(tmp_path_factory, tiny_lm_package) -> Path:
    """The tiny LM compiled for this host (TVM's default build: fast to compile)."""
    from tvmedge import api

    out = tmp_path_factory.mktemp("lm-artifacts") / "tiny-lm"
    api.compile(tiny_lm_package, "x86-host", tuning=naive(), out=out)
    return out
