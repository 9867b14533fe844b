"""A quantized (mixed INT8 / packed INT4) artifact on the emulated rk3588 board gives the host's outputs (issue 6).

The unpack and dequantize kernels are cross-compiled for aarch64 like every other kernel; this runs them
under qemu-user with the board's runtime-only TVM.
"""

from pathlib import Path

import numpy as np
import pytest

from tvmedge import api

pytestmark = pytest.mark.emulated

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def test_quantized_artifact_runs_on_the_emulated_board_with_the_host_outputs(tmp_path, naive_tuning):
    quant = DIGITS / "quant_mixed.yaml"
    host = api.compile(DIGITS / "digits_cnn.onnx", "x86-host", out=tmp_path / "host", tuning=naive_tuning, quant=quant)
    arm = api.compile(DIGITS / "digits_cnn.onnx", "rk3588", out=tmp_path / "arm", tuning=naive_tuning, quant=quant)
    assert arm.manifest.arch == "aarch64"
    assert arm.manifest.build.quantization["artifact_weights"]["int4_packed"] == 1
    test = np.load(DIGITS / "test.npz")
    x = test["input"][:1]
    on_host = api.run(host.path, {"input": x}).outputs
    result = api.run(arm.path, {"input": x}, board="emu:rk3588")
    assert result.emulated is True
    on_board = result.outputs
    # Same kernels, other ISA: float rounding may differ (FMA), quantized values must not drift apart.
    np.testing.assert_allclose(on_board["logits"], on_host["logits"], rtol=1e-4, atol=1e-4)
    assert on_board["logits"].argmax() == test["labels"][0]
