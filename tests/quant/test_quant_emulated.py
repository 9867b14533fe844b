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


@pytest.fixture(scope="module")
def ort_int8_digits(tmp_path_factory):
    from quantized_models import ort_quantize

    calib = np.load(DIGITS / "calib.npz")["input"]
    return ort_quantize(DIGITS / "digits_cnn.onnx", tmp_path_factory.mktemp("ort") / "digits.qdq.onnx", "qdq", "uint8",
                        [{"input": calib[i:i + 1]} for i in range(32)])


@pytest.mark.parametrize("board", ["rk3588", "bananapi-f3"])
def test_int8_artifact_on_emulated_boards_equals_the_hosts_bit_for_bit(tmp_path, ort_int8_digits, board):
    # issue 15: integer code has no float reassociation to excuse a difference: the boards' outputs must be the
    # host's exactly (the requantize's float32 multiply is the same IEEE operation on every ISA)
    import subprocess

    from tvmedge.tune.auto import TuningOptions

    none = TuningOptions(search="none", use_records=False)
    host = api.compile(ort_int8_digits, "x86-host", out=tmp_path / "host", tuning=none)
    other = api.compile(ort_int8_digits, board, out=tmp_path / board, tuning=none)
    assert other.manifest.build.quantization["integer"]["integer_layers"] == 4
    x = np.load(DIGITS / "test.npz")["input"][:4]
    for i in range(len(x)):
        on_host = api.run(host.path, {"input": x[i:i + 1]}).outputs["logits"]
        on_board = api.run(other.path, {"input": x[i:i + 1]}, board=f"emu:{board}").outputs["logits"]
        assert np.array_equal(on_board, on_host)
    if board == "bananapi-f3":
        # qemu 7.2 (Debian 12's, the emulated boards') aborts translating a vector float -> int conversion with a
        # static rounding mode (vfcvt.rtz / vfncvt.rtz) or an FP-flags access (frflags) depending on where a
        # translation block starts: the requantize rounds with an add and integer ops instead, and none remain
        code = subprocess.run(["riscv64-linux-gnu-objdump", "-d", str(other.path / "model.so")],
                              capture_output=True, text=True, check=True).stdout
        assert _rvv_rounding_mode_converts(code) == 0
        assert "frflags" not in code and "fsflags" not in code
    if board == "rk3588":
        # the integer layers' written schedule is built on the A76's dot-product instruction (tvmedge.tune.int8)
        assert other.manifest.tuning["int8"] >= 2  # conv2 and fc1 (conv1's 1 channel padded to 4: 3)
        code = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(other.path / "model.so")],
                              capture_output=True, text=True, check=True).stdout
        assert "\tsdot\t" in code


def test_group_wise_int4_artifact_runs_on_the_emulated_rk3588_with_the_host_outputs(tmp_path):
    # issue 16: the MatMulNBits kernel (packed int4 decoded in NEON registers) cross-compiled for the A76
    import tvm

    from nbits_models import mlp_model, save
    from tvmedge.frontend.onnx import import_model
    from tvmedge.quant import load_config, quantize
    from tvmedge.tune.auto import TuningOptions

    model = save(mlp_model(k=256, hidden=128, n=64, m=1), tmp_path / "mlp.onnx")
    quant = tmp_path / "int4.yaml"
    quant.write_text("quantization:\n  type: weight_only\n  bit_width: 4\n  group_size: 32\n  symmetric: false\n"
                     "  scale_dtype: float16\n")
    none = TuningOptions(search="none", use_records=False, predict=False)
    arm = api.compile(model, "rk3588", out=tmp_path / "arm", tuning=none, quant=quant)
    assert arm.manifest.build.quantization["artifact_weights"]["matmul_nbits"] == 2
    x = np.random.default_rng(0).standard_normal((1, 1, 256)).astype(np.float32)
    # the host's outputs: the same quantized model through the same import, built for this CPU (TVM's default
    # pipeline; the kernels that matter are the hand-scheduled MatMulNBits ones either way)
    quantized = quantize(model, load_config(quant)).save(tmp_path / "mlp.int4.onnx")
    host = tvm.relax.VirtualMachine(tvm.compile(import_model(quantized).mod, target="llvm"), tvm.cpu())
    on_host = host["main"](tvm.runtime.tensor(x)).numpy()
    result = api.run(arm.path, {"x": x}, board="emu:rk3588")
    assert result.emulated is True
    # same loop nest, other ISA: only the float rounding of fused multiply-adds may differ
    np.testing.assert_allclose(result.outputs["y"], on_host, rtol=1e-5, atol=1e-5)


def _rvv_rounding_mode_converts(disassembly: str) -> int:
    """How many RVV ``vf[n]cvt.rtz.*`` instructions ``disassembly`` holds. Debian 12's binutils prints vector
    instructions as ``.4byte`` words, so they are decoded here: OP-V (0x57), OPFVV (funct3 1), VFUNARY0 (funct6
    0b010010), the vs1 field selecting the conversion: 6/7 ``vfcvt.rtz.xu/x.f.v``, 14/15 ``vfwcvt.rtz``, 22/23
    ``vfncvt.rtz``."""
    import re

    count = 0
    for word in re.findall(r"\.4byte\s+0x([0-9a-f]+)", disassembly):
        x = int(word, 16)
        if x & 0x7F == 0x57 and (x >> 12) & 7 == 1 and x >> 26 == 0b010010 and (x >> 15) & 31 in (6, 7, 14, 15, 22, 23):
            count += 1
    return count
