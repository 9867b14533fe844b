"""ONNX conformance on x86: a representative subset of onnx's own test cases through tvmedge's pipeline.

Each case is imported (``tvmedge.frontend.onnx.import_model``), built (``build_artifact`` for the x86-host
board), loaded and run with ``tvmedge.runtime``, then compared with the expected outputs onnx ships AND with
ONNX Runtime on the same inputs (``tvmedge.peer.onnxruntime_outputs``).

All the machinery (case loaders, preprocessing modes, pipeline, comparison) lives in
``scripts/conformance.py``, loaded here with importlib; the full figures come from running that script.

Modes, as in the script: cases marked ``fold`` have their small int64 shape/axes inputs folded into
initializers first (``--fold-const-inputs``); pytorch-converted cases marked ``opset9`` are converted from
opset 6 with ``onnx.version_converter`` first (``--upgrade-opset 9``); the shipped opset-6 files import as
they are refused (below the importer's opset range; ``test_pytorch_opset6_as_shipped_is_refused_with_the_range``).
Cases marked ``freeze`` run with ``--freeze-shape-inputs``: inputs the importer names are frozen to the
case's values, as a user gives them with ``--freeze-input``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "conformance.py"


def _load_script():
    name = "tvmedge_conformance_script"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules[name]


conf = _load_script()

# TVM vs ONNX Runtime: two float implementations, so the looser of the script's two tolerances.
ORT_RTOL, ORT_ATOL = conf.LOOSE_RTOL, conf.LOOSE_ATOL

# (name, mode): chosen among cases that match in the script's full run; one or two per op family.
NODE_CASES = [
    ("test_conv_with_strides_padding", ""),
    ("test_conv_with_autopad_same", ""),
    ("test_matmul_4d", ""),
    ("test_gemm_all_attributes", ""),
    ("test_relu", ""),
    ("test_softmax_axis_1", ""),
    ("test_add_bcast", ""),
    ("test_mul_bcast", ""),
    ("test_concat_3d_axis_negative_1", ""),
    ("test_reshape_reordered_all_dims", "fold"),  # shape folded to a constant, as real models carry it
    ("test_transpose_default", ""),
    ("test_maxpool_2d_pads", ""),
    ("test_averagepool_2d_pads_count_include_pad", ""),
    ("test_globalaveragepool", ""),
    ("test_batchnorm_epsilon", ""),
    ("test_sigmoid", ""),
    ("test_reduce_mean_keepdims_example", "fold"),  # axes input -> constant
    ("test_slice_neg_steps", "fold"),  # starts/ends/axes/steps -> constants
    ("test_instancenorm_example", ""),
    ("test_gelu_default_1", ""),
    ("test_depthtospace_crd_mode_example", ""),
    # tvmedge's own converters (issue 14)
    ("test_lstm_with_peepholes", ""),
    ("test_gru_bidirectional", ""),
    ("test_rnn_seq_length", ""),
    ("test_attention_4d_gqa_with_past_and_present", ""),
    ("test_attention_3d_causal", ""),
    ("test_rotary_embedding_interleaved", ""),
    ("test_sce_mean_weight_ii_3d", ""),
    ("test_layer_normalization_4d_axis1", ""),
    ("test_reduce_sum_keepdims_example", "freeze"),  # axes frozen as --freeze-input gives it
    ("test_cumprod_2d_axis_0", "freeze"),
]

PYTORCH_CASES = [
    ("test_Conv2d", "opset9"),
    ("test_Conv2d_depthwise_strided", "opset9"),
    ("test_Conv1d_groups", "opset9"),
    ("test_ConvTranspose2d", "opset9"),
    ("test_MaxPool2d", "opset9"),
    ("test_AvgPool2d_stride", "opset9"),
    ("test_BatchNorm2d_eval", "opset9"),
    ("test_Linear", "opset9"),
    ("test_ReLU", "opset9"),
    ("test_Softmax", "opset9"),
    ("test_Embedding", "opset9"),
    ("test_PixelShuffle", ""),  # shipped at opset 9: as is
    ("test_MaxPool2d_stride_padding_dilation", ""),  # shipped at opset 9: as is
]

# Fastest light model end to end (measured in one worker: squeezenet 1.9 s, shufflenet 2.4 s, vgg19 38 s).
DEFAULT_LIGHT = "light_squeezenet"

# light_* models tvmedge cannot handle, name -> reason measured with `scripts/conformance.py --light`
# (strict xfail: a fixed model must leave this list). Measured 2026-11-25, TVM 0.27.0.post1: all 9 match.
# Caveat: the light models carry constant weights (ConstantOfShape), so every shipped output is uniform
# (0.001 after softmax); a match there proves import/build/run and shapes, not the numerics of each layer.
LIGHT_XFAIL: dict = {}


@functools.lru_cache(maxsize=None)
def _cases(source: str) -> dict:
    cases, _ = conf.LOADERS[source]()
    return {case.name: case for case in cases}


def _options(mode: str) -> dict:
    return {"fold": mode == "fold", "upgrade_opset": 9 if mode == "opset9" else 0, "freeze": mode == "freeze"}


@pytest.fixture(scope="module")
def board():
    return conf.host_board()


def _check(case, board, mode: str = "") -> dict:
    """The case matches both the expected outputs it ships with and ONNX Runtime."""
    options = _options(mode)
    result = conf.run_case(case, board, keep_outputs=True, **options)
    assert result["status"] == "match", (
        f"{case.name} [{conf.describe_mode(**options)}]: {result['status']} at {result['stage']}: "
        f"{result['message'] or result['reason']} (max abs diff {result['max_abs_diff']})")
    reference = conf.ort_outputs(case, **options)
    verdict = conf.compare(result["outputs"][0], reference, ORT_RTOL, ORT_ATOL)
    assert verdict["match"], f"{case.name}: TVM vs ONNX Runtime: {verdict}"
    return result


@pytest.mark.parametrize("name,mode", NODE_CASES, ids=[n + (f"[{m}]" if m else "") for n, m in NODE_CASES])
def test_node_case(name, mode, board):
    _check(_cases("node")[name], board, mode)


@pytest.mark.parametrize("name,mode", PYTORCH_CASES, ids=[n + (f"[{m}]" if m else "") for n, m in PYTORCH_CASES])
def test_pytorch_converted(name, mode, board):
    result = _check(_cases("pytorch")[name], board, mode)
    if mode == "opset9":
        assert result["upgraded_from"] == 6


def test_pytorch_opset6_as_shipped_is_refused_with_the_range(board):
    # Opset 6 is below the importer's range (7..newest onnx); converted to opset 9 the same model matches above.
    case = _cases("pytorch")["test_Conv2d"]
    result = conf.run_case(case, board)
    assert result["status"] == "import_error"
    assert "ai.onnx opset 6 is outside the supported range 7.." in result["message"]


def test_freeze_mode_freezes_what_the_importer_names(board):
    case = _cases("node")["test_reduce_sum_keepdims_example"]
    assert conf.run_case(case, board)["reason"].startswith("input(s) 'axes' (ReduceSum")
    result = conf.run_case(case, board, freeze=True)
    assert result["status"] == "match" and result["frozen"] == ["axes"]


def test_light_default(board):
    case = _cases("light")[DEFAULT_LIGHT]
    _check(case, board)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", [
    pytest.param(path.stem, marks=[pytest.mark.xfail(strict=True, reason=LIGHT_XFAIL[path.stem])]
                 if path.stem in LIGHT_XFAIL else [])
    for path in sorted((conf.onnx_test_dir() / "data" / "light").glob("light_*.onnx"))
])
def test_light_model(name, board):
    _check(_cases("light")[name], board)


def test_script_end_to_end(tmp_path):
    """The CLI: worker process, per-case timeout, summary table and --json."""
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--source", "node", "--filter", "test_relu", "--filter",
         "test_col2im_strides", "--json", str(out), "--worker-log", str(tmp_path / "worker.log")],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "== node (default (models and inputs as shipped)) ==" in run.stdout
    data = json.loads(out.read_text())
    assert data["mode"].startswith("default")
    statuses = {r["name"]: r["status"] for r in data["results"]}
    assert len(statuses) == 3
    assert statuses["test_relu"] == "match"
    assert statuses["test_col2im_strides"] == "import_unsupported"  # neither TVM 0.27 nor tvmedge converts Col2Im


def test_fold_const_inputs_is_labelled_and_selective():
    case = _cases("node")["test_reduce_mean_keepdims_example"]
    prepared = conf.prepare(case, fold=True)
    assert prepared.folded == ["axes"]
    assert [i.name for i in prepared.model.graph.initializer] == ["axes"]
    assert list(prepared.feeds[0]) == ["data"]
    untouched = conf.prepare(case)
    assert untouched.folded == [] and list(untouched.feeds[0]) == ["data", "axes"]
    assert conf.describe_mode(False, 0).startswith("default")
    assert conf.describe_mode(True, 0).startswith("MODIFIED")
    assert conf.describe_mode(False, 0, True).startswith("MODIFIED: --freeze-shape-inputs")
