"""The public API end to end on the bundled model, readable as documentation (issue 3)."""

import numpy as np
import pytest

from tvmedge import api
from tvmedge.peer import onnxruntime_outputs
from tvmedge.tune.auto import TuningOptions


def test_inspect_compile_load_run_on_host(tmp_path, tiny_cnn, tiny_input):
    report = api.inspect(tiny_cnn)                                   # what is in the model, can TVM take it?
    assert report.summary()["importable"]

    # search="none" without records: nothing measured; convolutions get the schedule written for them, the other
    # layers the one the shipped cost model predicts.
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "out",
                           tuning=TuningOptions(search="none", use_records=False))
    tuning = artifact.manifest.tuning
    assert tuning["predicted"] + tuning["conv"] == tuning["tasks"] > 0
    assert (artifact.path / "model.so").is_file()

    model = api.load(artifact.path)                                  # verified, then loaded
    outputs = model.run({"input": tiny_input})
    expected = onnxruntime_outputs(tiny_cnn, {"input": tiny_input})
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-6)


@pytest.mark.emulated
def test_aarch64_artifact_on_the_emulated_rk3588_matches_the_host(arm_artifact, x86_artifact, tiny_input):
    # The default suite runs at least one cross-compiled model on the emulated board (issue 3 §Tests).
    on_board = api.run(arm_artifact, {"input": tiny_input}, board="emu:rk3588", repeat=1)
    host_outputs = api.run(x86_artifact, {"input": tiny_input}).outputs
    assert on_board.emulated is True and on_board.where == "emu:rk3588"
    board_outputs = on_board.outputs
    np.testing.assert_allclose(board_outputs["probabilities"], host_outputs["probabilities"], rtol=1e-4, atol=1e-4)
    assert np.abs(board_outputs["probabilities"] - host_outputs["probabilities"]).max() < 1e-5


def test_first_line_of_a_traceback_text_is_its_last_line():
    from tvmedge.errors import first_line

    assert first_line(ValueError("Traceback (most recent call last):\n  File x\nOSError: port taken\n")) == \
        "OSError: port taken"
    assert first_line(ValueError("\n  bad shape\nmore detail")) == "bad shape"
    assert first_line(ValueError("")) == "ValueError"
