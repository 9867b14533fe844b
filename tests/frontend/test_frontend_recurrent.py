"""tvmedge.frontend.converters.recurrent: ONNX LSTM / GRU / RNN against ONNX Runtime (issue 14).

TVM 0.27's importer has no recurrent converters, so speech and keyword-spotting models were refused. Every
case runs twice, once per lowering (steps unrolled in Relax, and the TIR loop kernel), so both stay equal
to ONNX Runtime within 1e-5.
"""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ort_check import assert_close, make_model, run_both

pytest.importorskip("onnxruntime")

F = TensorProto.FLOAT
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@pytest.fixture(params=["unrolled", "loop"])
def lowering(request, monkeypatch):
    from tvmedge.frontend.converters import recurrent

    monkeypatch.setattr(recurrent, "UNROLL_MAX_STEPS", 10**6 if request.param == "unrolled" else 0)
    return request.param


def recurrent_model(op, *, seq=5, batch=3, inp=4, hidden=6, direction="forward", layout=0, bias=True,
                    seq_lens=None, initial=False, peepholes=False, weights_as_inputs=False, seed=0, **attrs):
    """One recurrent node with random weights; returns ``(model, feeds)``."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    arr = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(np.float32)  # noqa: E731
    weights = {"W": arr(dirs, g * hidden, inp), "R": arr(dirs, g * hidden, hidden)}
    if bias:
        weights["B"] = arr(dirs, 2 * g * hidden)
    x_shape = [batch, seq, inp] if layout else [seq, batch, inp]
    state_shape = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    feeds = {"X": arr(*x_shape)}
    names = ["X", "W", "R", "B" if bias else ""]
    inputs = [("X", F, x_shape)]
    names.append("seq_lens" if seq_lens is not None else "")
    if seq_lens is not None:
        feeds["seq_lens"] = np.array(seq_lens, np.int32)
        inputs.append(("seq_lens", TensorProto.INT32, [batch]))
    names.append("h0" if initial else "")
    if initial:
        feeds["h0"] = arr(*state_shape)
        inputs.append(("h0", F, state_shape))
    if op == "LSTM":
        names.append("c0" if initial else "")
        if initial:
            feeds["c0"] = arr(*state_shape)
            inputs.append(("c0", F, state_shape))
        if peepholes:
            weights["P"] = arr(dirs, 3 * hidden)
            names.append("P")
    while names and names[-1] == "":
        names.pop()
    if weights_as_inputs:
        feeds.update(weights)
        inputs += [(k, F, list(v.shape)) for k, v in weights.items()]
        inits = []
    else:
        inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    y_shape = [batch, seq, dirs, hidden] if layout else [seq, dirs, batch, hidden]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outs, hidden_size=hidden, direction=direction, layout=layout, **attrs)
    outputs = [("Y", F, y_shape)] + [(o, F, state_shape) for o in outs[1:]]
    return make_model([node], inputs, outputs, inits), feeds


CASES = {
    "lstm_forward": ("LSTM", {}),
    "lstm_bidirectional_states_peepholes": ("LSTM", dict(direction="bidirectional", initial=True, peepholes=True)),
    "lstm_reverse_seq_lens_layout1": ("LSTM", dict(direction="reverse", seq_lens=[5, 2, 4], layout=1, initial=True)),
    "lstm_bidirectional_seq_lens": ("LSTM", dict(direction="bidirectional", seq_lens=[3, 5, 1])),
    "lstm_clip_input_forget_no_bias": ("LSTM", dict(bias=False, clip=0.7, input_forget=1)),
    "lstm_activations_alpha_beta": ("LSTM", dict(activations=["HardSigmoid", "LeakyRelu", "ScaledTanh"],
                                                 activation_alpha=[0.3, 0.2, 0.9], activation_beta=[0.4, 1.1])),
    "lstm_weights_as_inputs": ("LSTM", dict(weights_as_inputs=True, initial=True)),
    "gru_forward": ("GRU", {}),
    "gru_linear_before_reset_bidirectional": ("GRU", dict(linear_before_reset=1, direction="bidirectional",
                                                          initial=True)),
    "gru_reverse_seq_lens_layout1": ("GRU", dict(direction="reverse", seq_lens=[1, 5, 3], layout=1)),
    "gru_activations": ("GRU", dict(activations=["Softsign", "Elu"], activation_alpha=[0.5], clip=1.5)),
    "rnn_bidirectional_seq_lens": ("RNN", dict(direction="bidirectional", seq_lens=[4, 5, 2], initial=True)),
    "rnn_relu_layout1": ("RNN", dict(activations=["Relu"], layout=1)),
    "rnn_affine_softplus_bidirectional": ("RNN", dict(direction="bidirectional", activations=["Affine", "Softplus"],
                                                      activation_alpha=[0.8], activation_beta=[0.1])),
    "rnn_thresholded_relu": ("RNN", dict(activations=["ThresholdedRelu"], activation_alpha=[0.2])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_recurrent_matches_onnxruntime(case, lowering, tmp_path):
    op, options = CASES[case]
    model, feeds = recurrent_model(op, **options)
    ours, theirs = run_both(model, feeds, tmp_path, ort=options.get("layout") != 1)
    if options.get("layout") == 1:
        theirs = _ort_batchwise(op, options, feeds, tmp_path)
    assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def _ort_batchwise(op, options, feeds, tmp_path):
    """ONNX Runtime refuses layout 1: run the same weights as layout 0 on transposed data instead."""
    from tvmedge.peer import onnxruntime_outputs
    import onnx

    model0, _ = recurrent_model(op, **{**options, "layout": 0})
    onnx.save(model0, tmp_path / "layout0.onnx")
    moved = {k: (v.transpose(1, 0, 2) if k in ("X", "h0", "c0") else v) for k, v in feeds.items()}
    out = onnxruntime_outputs(tmp_path / "layout0.onnx", moved, threads=1)
    return {k: (v.transpose(2, 0, 1, 3) if k == "Y" else v.transpose(1, 0, 2)) for k, v in out.items()}


def test_long_sequence_uses_the_loop_kernel(tmp_path):
    # Past UNROLL_MAX_STEPS the recurrence is one kernel with a loop over time, not one kernel per step.
    from tvmedge.frontend.converters.recurrent import UNROLL_MAX_STEPS
    from tvmedge.frontend.onnx import import_model
    import onnx

    for seq, looped in ((UNROLL_MAX_STEPS + 1, True), (4, False)):
        model, _ = recurrent_model("LSTM", seq=seq)
        onnx.save(model, tmp_path / f"m{seq}.onnx")
        names = [gv.name_hint for gv in import_model(tmp_path / f"m{seq}.onnx").mod.get_global_vars()]
        assert ("lstm_loop" in names) is looped
        assert (sum(n.startswith("lstm_step") for n in names) == seq) is not looped


def test_unknown_activation_is_refused_with_the_allowed_list(tmp_path):
    from tvmedge.errors import ModelError
    from tvmedge.frontend.onnx import import_model
    import onnx

    model, _ = recurrent_model("RNN", activations=["Gelu"])
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"activation 'Gelu' is not one the ONNX spec allows \(affine, elu, "):
        import_model(tmp_path / "m.onnx")
