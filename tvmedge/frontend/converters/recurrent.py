"""ONNX LSTM, GRU and RNN -> Relax: a loop over time, unrolled for short sequences, a kernel for long ones.

All three follow the ONNX spec: directions forward / reverse / bidirectional, optional bias, initial states,
``sequence_lens`` (per batch row: steps past its length leave the state unchanged and give zeros in ``Y``;
the reverse direction starts at its row's last valid step), ``layout`` 0 (``[seq, batch, ...]``) and 1
(``[batch, seq, ...]``), ``clip``, and every activation the spec lists with ``activation_alpha/beta``
consumed in order by the activations that take them, as ONNX Runtime does. LSTM adds peepholes and
``input_forget``; GRU ``linear_before_reset``.

The input projection ``X·Wᵀ + biases`` of all steps is one Relax matmul (tunable like any other). The
recurrence is lowered one of two ways, chosen by the sequence length and hidden size (``UNROLL_MAX_STEPS``,
``UNROLL_MAX_HIDDEN``; measured in ``benchmarks/recurrent_lowering.py``):

* unrolled: per step a Relax matmul ``H·Rᵀ`` and one fused elementwise cell kernel; compile time and
  library size grow with the sequence, and every step is tuned like any dense layer;
* loop: one TIR kernel with a serial loop over time (Relax has no loop construct that keeps a state in
  place, and a recursive Relax function would copy ``Y`` at every step), parallel over batch x hidden.

Both lowerings evaluate the same cell expressions (``_lstm_cell``, ``_gru_*``, ``_rnn_cell``).
"""

from __future__ import annotations

from functools import partial

import tvm
from tvm import relax, te, tirx
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter

__all__ = ["LSTM", "GRU", "RNN", "CONVERTERS", "UNROLL_MAX_HIDDEN", "UNROLL_MAX_STEPS"]

# Unrolled only when short and narrow: in benchmarks/recurrent_lowering.md the unrolled steps beat the loop kernel
# only at hidden 64 and up to 32 steps (by 10-50 %), and lose up to 3.6x at hidden 128, while their build time and
# library grow with every step (45 s and 5-7 MB at 128 steps, against ~1 s and 0.2-0.5 MB for the loop).
UNROLL_MAX_STEPS = 32
UNROLL_MAX_HIDDEN = 64


# ------------------------------------------------------------------------------------------ activations

def _c(value, like):
    """A constant of ``like``'s dtype (0.27 PrimExprs carry it in ``.ty``)."""
    return tirx.const(value, str(like.ty))


# name -> (function of (x, alpha, beta), default alpha, default beta); None = the activation takes no such value.
def _affine(x, a, b):
    return a * x + b


_ACTIVATIONS = {
    "relu": (lambda x, a, b: tirx.max(x, _c(0, x)), None, None),
    "tanh": (lambda x, a, b: tirx.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: tirx.sigmoid(x), None, None),
    "affine": (_affine, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: tirx.Select(x >= _c(0, x), x, a * x), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: tirx.Select(x > a, x, _c(0, x)), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * tirx.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: tirx.max(_c(0, x), tirx.min(_c(1, x), a * x + b)),
                    0.2, 0.5),
    "elu": (lambda x, a, b: tirx.Select(x >= _c(0, x), x, a * (tirx.exp(x) - _c(1, x))),
            1.0, None),
    "softsign": (lambda x, a, b: x / (_c(1, x) + tirx.abs(x)), None, None),
    "softplus": (lambda x, a, b: tirx.log(_c(1, x) + tirx.exp(x)), None, None),
}


def _activations(attr, defaults: tuple, directions: int, dtype: str) -> list:
    """Per direction, the list of activation callables ``f(x) -> expr`` (len(defaults) each)."""
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in attr.get("activations", ())]
    if not names:
        names = list(defaults) * directions
    if len(names) != len(defaults) * directions:
        raise ValueError(f"expected {len(defaults) * directions} activations ({len(defaults)} per direction), "
                         f"got {len(names)}: {names}")
    alphas, betas = list(attr.get("activation_alpha", ())), list(attr.get("activation_beta", ()))
    funcs = []
    for name in names:
        key = name.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(f"activation '{name}' is not one the ONNX spec allows "
                             f"({', '.join(sorted(_ACTIVATIONS))})")
        fn, alpha_default, beta_default = _ACTIVATIONS[key]
        alpha = (alphas.pop(0) if alphas else alpha_default) if alpha_default is not None else 0.0
        beta = (betas.pop(0) if betas else beta_default) if beta_default is not None else 0.0
        funcs.append(_bind(fn, alpha, beta, dtype))
    per = len(defaults)
    return [funcs[d * per:(d + 1) * per] for d in range(directions)]


def _bind(fn, alpha, beta, dtype):
    return lambda x: fn(x, tirx.const(alpha, dtype), tirx.const(beta, dtype))


def _clipper(attr, dtype):
    if "clip" not in attr:
        return lambda x: x
    bound = float(attr["clip"])
    return lambda x: tirx.max(tirx.const(-bound, dtype), tirx.min(tirx.const(bound, dtype), x))


# ----------------------------------------------------------------------------------------- cell formulas


def _lstm_cell(g, c_prev, peep, acts, clip, input_forget):
    """LSTM step for one element. ``g``: pre-activations (i, o, f, c) without peepholes; ``peep``: (Pi, Po, Pf)."""
    f_act, g_act, h_act = acts
    gi, go, gf, gc = g
    pi, po, pf = peep
    i = f_act(clip(gi + pi * c_prev))
    f = (1 - i) if input_forget else f_act(clip(gf + pf * c_prev))
    c = f * c_prev + i * g_act(clip(gc))
    o = f_act(clip(go + po * c))
    return o * h_act(c), c


def _gru_gates(g, acts, clip):
    """GRU update and reset gates (z, r) from their pre-activations."""
    return acts[0](clip(g[0])), acts[0](clip(g[1]))


def _gru_output(x_h, h_term, z, h_prev, acts, clip):
    """GRU new state from the candidate's input part ``x_h`` and hidden part ``h_term``."""
    candidate = acts[1](clip(x_h + h_term))
    return (1 - z) * candidate + z * h_prev


def _rnn_cell(g, acts, clip):
    return acts[0](clip(g))


# ------------------------------------------------------------------------------------------ the converter


def _shape(expr) -> list:
    values = expr.ty.shape.values
    try:
        return [int(v) for v in values]
    except TypeError as err:
        raise ValueError(f"recurrent ops need static shapes, got {list(values)}; fix the input shapes") from err


class _Recurrent(OnnxOpConverter):
    """Shared by LSTM, GRU and RNN: parse, project inputs, run the recurrence, shape the outputs."""

    gates = 1
    default_activations = ("Tanh",)
    has_cell = False

    @classmethod
    def _impl_v7(cls, bb, inputs, attr, params):
        x, w, r = inputs[0], inputs[1], inputs[2]
        bias, lens, h0 = (inputs[i] if len(inputs) > i else None for i in (3, 4, 5))
        c0 = inputs[6] if cls.has_cell and len(inputs) > 6 else None
        peep = inputs[7] if cls.has_cell and len(inputs) > 7 else None
        layout = int(attr.get("layout", 0))
        direction = attr.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"direction '{direction}' is not forward, reverse or bidirectional")
        dtype = str(x.ty.dtype)
        if layout == 1:
            x = bb.normalize(relax.op.permute_dims(x, [1, 0, 2]))
        seq, batch, _ = _shape(x)
        num_dir, gh, _ = _shape(w)
        hidden = int(attr.get("hidden_size", gh // cls.gates))
        if num_dir != (2 if direction == "bidirectional" else 1) or gh != cls.gates * hidden:
            raise ValueError(f"W has shape {_shape(w)}; expected [{2 if direction == 'bidirectional' else 1}, "
                             f"{cls.gates * hidden}, input_size] for direction {direction}, hidden_size {hidden}")

        def state(value, name):
            if value is None:
                return bb.normalize(relax.op.zeros((num_dir, batch, hidden), dtype))
            if layout == 1:
                value = relax.op.permute_dims(value, [1, 0, 2])
            return bb.normalize(value)

        h0, c0 = state(h0, "initial_h"), state(c0, "initial_c") if cls.has_cell else None
        if lens is None:
            lens = relax.const(tvm.runtime.tensor(_full_lens(batch, seq)))
        else:
            lens = relax.op.astype(lens, "int32")
        lens = bb.normalize(lens)
        acts = _activations(attr, cls.default_activations, num_dir, dtype)
        spec = dict(dtype=dtype, seq=seq, batch=batch, hidden=hidden, num_dir=num_dir, acts=acts,
                    clip=_clipper(attr, dtype), reverse=[direction == "reverse" or d == 1 for d in range(num_dir)],
                    input_forget=bool(attr.get("input_forget", 0)),
                    linear_before_reset=bool(attr.get("linear_before_reset", 0)))

        xw, rb_h = cls._project(bb, x, w, bias, spec)
        if peep is None:
            peep = relax.op.zeros((num_dir, 3 * hidden), dtype)
        peep = bb.normalize(peep)
        lowering = _unrolled if seq <= UNROLL_MAX_STEPS and hidden <= UNROLL_MAX_HIDDEN else _looped
        y, y_h, y_c = lowering(cls, bb, xw, bb.normalize(r), rb_h, peep, h0, c0, lens, spec)
        if layout == 1:  # Y [seq, dir, batch, hidden] -> [batch, seq, dir, hidden]; states -> [batch, dir, hidden]
            y = relax.op.permute_dims(y, [2, 0, 1, 3])
            y_h = relax.op.permute_dims(y_h, [1, 0, 2])
            y_c = relax.op.permute_dims(y_c, [1, 0, 2]) if y_c is not None else None
        outputs = [y, y_h] + ([y_c] if cls.has_cell else [])
        return relax.Tuple([bb.normalize(o) for o in outputs])

    @classmethod
    def _project(cls, bb, x, w, bias, spec):
        """``X·Wᵀ + Wb + Rb`` for all steps -> ``[dir, seq, batch, gates*hidden]``; GRU with
        ``linear_before_reset`` keeps the candidate's ``Rb`` apart (returned second, ``[dir, hidden]``)."""
        hidden, num_dir, dtype = spec["hidden"], spec["num_dir"], spec["dtype"]
        gh = cls.gates * hidden
        xw = relax.op.matmul(relax.op.expand_dims(x, 0),  # [1,seq,batch,in] @ [dir,1,in,gh] -> [dir,seq,batch,gh]
                             relax.op.expand_dims(relax.op.permute_dims(w, [0, 2, 1]), 1))
        rb_h = None
        if bias is not None:
            wb = relax.op.strided_slice(bias, axes=[1], begin=[0], end=[gh])
            rb = relax.op.strided_slice(bias, axes=[1], begin=[gh], end=[2 * gh])
            if cls is GRU and spec["linear_before_reset"]:
                rb_h = bb.normalize(relax.op.strided_slice(rb, axes=[1], begin=[2 * hidden], end=[gh]))
                zero_h = relax.op.zeros((num_dir, hidden), dtype)
                rb = relax.op.concat([relax.op.strided_slice(rb, axes=[1], begin=[0], end=[2 * hidden]), zero_h], 1)
            xw = relax.op.add(xw, relax.op.expand_dims(relax.op.add(wb, rb), [1, 2]))
        if rb_h is None and cls is GRU:
            rb_h = bb.normalize(relax.op.zeros((num_dir, hidden), dtype))
        return bb.normalize(xw), rb_h


def _full_lens(batch, seq):
    import numpy as np

    return np.full((batch,), seq, dtype="int32")


class LSTM(_Recurrent):
    """ONNX LSTM (opset 7; 14 adds ``layout``, read here for every opset)."""

    gates = 4
    default_activations = ("Sigmoid", "Tanh", "Tanh")
    has_cell = True


class GRU(_Recurrent):
    """ONNX GRU (opset 7; 14 adds ``layout``)."""

    gates = 3
    default_activations = ("Sigmoid", "Tanh")


class RNN(_Recurrent):
    """ONNX RNN (opset 7; 14 adds ``layout``)."""

    gates = 1
    default_activations = ("Tanh",)


CONVERTERS = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}


# ---------------------------------------------------------------------------------------- unrolled steps


def _unrolled(cls, bb, xw, r, rb_h, peep, h0, c0, lens, spec):
    seq, hidden, num_dir = spec["seq"], spec["hidden"], spec["num_dir"]
    ys, hs, cs = [], [], []
    for d in range(num_dir):
        take = lambda value, i: relax.op.squeeze(relax.op.strided_slice(value, axes=[0], begin=[i], end=[i + 1]), [0])
        xw_d, r_t = bb.normalize(take(xw, d)), bb.normalize(relax.op.permute_dims(take(r, d), [1, 0]))
        h, c = bb.normalize(take(h0, d)), (bb.normalize(take(c0, d)) if c0 is not None else None)
        peep_d = bb.normalize(take(peep, d))
        rb_d = bb.normalize(take(rb_h, d)) if rb_h is not None else None
        steps = [None] * seq
        order = range(seq - 1, -1, -1) if spec["reverse"][d] else range(seq)
        for t in order:
            x_t = bb.normalize(take(xw_d, t))
            if cls is GRU:
                y, h = _gru_step(bb, x_t, h, r_t, rb_d, lens, t, spec, spec["acts"][d])
            else:
                hr = bb.normalize(relax.op.matmul(h, r_t))
                acts = spec["acts"][d]
                if cls is LSTM:
                    out = bb.emit_te(partial(_te_lstm_step, step=t, spec=spec, acts=acts), x_t, hr, h, c, peep_d, lens,
                                     primfunc_name_hint="lstm_step")
                    y, h, c = (bb.emit(relax.TupleGetItem(out, i)) for i in range(3))
                else:
                    out = bb.emit_te(partial(_te_rnn_step, step=t, spec=spec, acts=acts), x_t, hr, h, lens,
                                     primfunc_name_hint="rnn_step")
                    y, h = (bb.emit(relax.TupleGetItem(out, i)) for i in range(2))
            steps[t] = y
        ys.append(relax.op.stack(steps, 0))
        hs.append(h)
        cs.append(c)
    y = bb.normalize(relax.op.stack(ys, 1))  # [seq, dir, batch, hidden]
    y_h = bb.normalize(relax.op.stack(hs, 0))
    y_c = bb.normalize(relax.op.stack(cs, 0)) if cls is LSTM else None
    return y, y_h, y_c


def _masked(lens, step, b, new, old):
    return tirx.Select(step < lens[b], new, old)


def _te_lstm_step(x_t, hr, h, c, peep, lens, step, spec, acts):
    hidden = spec["hidden"]

    def cell(b, j):
        g = [x_t[b, k * hidden + j] + hr[b, k * hidden + j] for k in range(4)]
        p = [peep[k * hidden + j] for k in range(3)]
        return _lstm_cell(g, c[b, j], p, acts, spec["clip"], spec["input_forget"])

    shape = (spec["batch"], hidden)
    zero = tirx.const(0, spec["dtype"])
    return [
        te.compute(shape, lambda b, j: _masked(lens, step, b, cell(b, j)[0], zero), name="lstm_y"),
        te.compute(shape, lambda b, j: _masked(lens, step, b, cell(b, j)[0], h[b, j]), name="lstm_h"),
        te.compute(shape, lambda b, j: _masked(lens, step, b, cell(b, j)[1], c[b, j]), name="lstm_c"),
    ]


def _te_rnn_step(x_t, hr, h, lens, step, spec, acts):
    shape = (spec["batch"], spec["hidden"])
    new = lambda b, j: _rnn_cell(x_t[b, j] + hr[b, j], acts, spec["clip"])
    zero = tirx.const(0, spec["dtype"])
    return [te.compute(shape, lambda b, j: _masked(lens, step, b, new(b, j), zero), name="rnn_y"),
            te.compute(shape, lambda b, j: _masked(lens, step, b, new(b, j), h[b, j]), name="rnn_h")]


def _gru_step(bb, x_t, h, r_t, rb, lens, step, spec, acts):
    """One GRU step: gates from ``H·R_zrᵀ``, then the candidate with ``linear_before_reset`` or not."""
    hidden = spec["hidden"]
    r_zr = relax.op.strided_slice(r_t, axes=[1], begin=[0], end=[2 * hidden])
    r_h = relax.op.strided_slice(r_t, axes=[1], begin=[2 * hidden], end=[3 * hidden])
    hr_zr = bb.normalize(relax.op.matmul(h, r_zr))
    if spec["linear_before_reset"]:
        h_lin = bb.normalize(relax.op.matmul(h, r_h))
        out = bb.emit_te(partial(_te_gru_lbr_step, step=step, spec=spec, acts=acts), x_t, hr_zr, h_lin, rb, h, lens,
                         primfunc_name_hint="gru_step")
    else:
        zr = bb.emit_te(partial(_te_gru_gates, spec=spec, acts=acts), x_t, hr_zr, primfunc_name_hint="gru_gates")
        reset_h = bb.normalize(relax.op.multiply(bb.emit(relax.TupleGetItem(zr, 1)), h))
        h_term = bb.normalize(relax.op.matmul(reset_h, r_h))
        out = bb.emit_te(partial(_te_gru_out, step=step, spec=spec, acts=acts), x_t, h_term,
                         bb.emit(relax.TupleGetItem(zr, 0)), h, lens, primfunc_name_hint="gru_step")
    return bb.emit(relax.TupleGetItem(out, 0)), bb.emit(relax.TupleGetItem(out, 1))


def _te_gru_gates(x_t, hr_zr, spec, acts):
    hidden = spec["hidden"]
    shape = (spec["batch"], hidden)
    gates = lambda b, j: _gru_gates([x_t[b, j] + hr_zr[b, j], x_t[b, hidden + j] + hr_zr[b, hidden + j]],
                                    acts, spec["clip"])
    return [te.compute(shape, lambda b, j: gates(b, j)[0], name="gru_z"),
            te.compute(shape, lambda b, j: gates(b, j)[1], name="gru_r")]


def _te_gru_out(x_t, h_term, z, h, lens, step, spec, acts):
    hidden = spec["hidden"]
    shape = (spec["batch"], hidden)
    new = lambda b, j: _gru_output(x_t[b, 2 * hidden + j], h_term[b, j], z[b, j], h[b, j], acts, spec["clip"])
    zero = tirx.const(0, spec["dtype"])
    return [te.compute(shape, lambda b, j: _masked(lens, step, b, new(b, j), zero), name="gru_y"),
            te.compute(shape, lambda b, j: _masked(lens, step, b, new(b, j), h[b, j]), name="gru_h")]


def _te_gru_lbr_step(x_t, hr_zr, h_lin, rb, h, lens, step, spec, acts):
    hidden = spec["hidden"]
    shape = (spec["batch"], hidden)

    def new(b, j):
        z, r = _gru_gates([x_t[b, j] + hr_zr[b, j], x_t[b, hidden + j] + hr_zr[b, hidden + j]], acts, spec["clip"])
        return _gru_output(x_t[b, 2 * hidden + j], r * (h_lin[b, j] + rb[j]), z, h[b, j], acts, spec["clip"])

    zero = tirx.const(0, spec["dtype"])
    return [te.compute(shape, lambda b, j: _masked(lens, step, b, new(b, j), zero), name="gru_y"),
            te.compute(shape, lambda b, j: _masked(lens, step, b, new(b, j), h[b, j]), name="gru_h")]


# ------------------------------------------------------------------------------------------- loop kernel


def _looped(cls, bb, xw, r, rb_h, peep, h0, c0, lens, spec):
    """The whole recurrence as one TIR kernel (``te.extern``): serial over time, parallel inside a step."""
    seq, batch, hidden, num_dir, dtype = (spec[k] for k in ("seq", "batch", "hidden", "num_dir", "dtype"))
    gh = cls.gates * hidden
    if c0 is None:
        c0 = bb.normalize(relax.op.zeros((num_dir, batch, hidden), dtype))
    if rb_h is None:
        rb_h = bb.normalize(relax.op.zeros((num_dir, hidden), dtype))

    def kernel(xw, r, rb_h, peep, h0, c0, lens):
        out_shapes = [(seq, num_dir, batch, hidden), (num_dir, batch, hidden), (num_dir, batch, hidden),
                      (num_dir, batch, gh), (num_dir, batch, hidden)]
        return te.extern(out_shapes, [xw, r, rb_h, peep, h0, c0, lens],
                         lambda ins, outs: _loop_ir(cls, spec, ins, outs),
                         dtype=[dtype] * 5, name=f"{cls.__name__.lower()}_loop")

    out = bb.emit_te(kernel, xw, r, rb_h, peep, h0, c0, lens, primfunc_name_hint=f"{cls.__name__.lower()}_loop")
    y, y_h, y_c = (bb.emit(relax.TupleGetItem(out, i)) for i in range(3))
    return y, y_h, (y_c if cls is LSTM else None)


def _loop_ir(cls, spec, ins, outs):
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    with IRBuilder() as ib:
        ins = [T.buffer_proxy(b) for b in ins]
        outs = [T.buffer_proxy(b) for b in outs]
        with T.seq_scope():
            for d in range(spec["num_dir"]):
                _loop_direction(T, cls, spec, d, ins, outs)
        return ib.get()


def _loop_direction(T, cls, spec, d, ins, outs):
    """One direction: copy the initial state, then per step the ``H·Rᵀ`` products and the cell update."""
    seq, batch, hidden, dtype = (spec[k] for k in ("seq", "batch", "hidden", "dtype"))
    zero = tirx.const(0, dtype)
    xw, r, rb_h, peep, h0, c0, lens = ins
    y, y_h, y_c, gates, scratch = outs
    acts = spec["acts"][d]
    with T.parallel(0, batch * hidden) as i:
        b, j = i // hidden, i % hidden
        y_h[d, b, j] = h0[d, b, j]
        y_c[d, b, j] = c0[d, b, j]
    with T.serial(0, seq) as s:
        t = (seq - 1 - s) if spec["reverse"][d] else s
        # gates[b, g] = sum_k h[b, k] * r[g, k]; for GRU only the z and r rows (the candidate's come later)
        n_rec = 2 * hidden if cls is GRU else cls.gates * hidden
        with T.parallel(0, batch * n_rec) as i:
            b, g = i // n_rec, i % n_rec
            gates[d, b, g] = zero
            with T.serial(0, hidden) as k:
                gates[d, b, g] = gates[d, b, g] + y_h[d, b, k] * r[d, g, k]
        if cls is GRU:
            _gru_loop_candidate(T, spec, d, t, xw, r, rb_h, y_h, gates, scratch, acts)
        with T.parallel(0, batch * hidden) as i:
            b, j = i // hidden, i % hidden
            valid = t < lens[b]
            if cls is LSTM:
                g = [xw[d, t, b, k * hidden + j] + gates[d, b, k * hidden + j] for k in range(4)]
                p = [peep[d, k * hidden + j] for k in range(3)]
                h_new, c_new = _lstm_cell(g, y_c[d, b, j], p, acts, spec["clip"], spec["input_forget"])
            elif cls is GRU:
                z = _gru_gates([xw[d, t, b, j] + gates[d, b, j], zero], acts, spec["clip"])[0]
                h_new = _gru_output(xw[d, t, b, 2 * hidden + j], scratch[d, b, j], z, y_h[d, b, j],
                                    acts, spec["clip"])
            else:
                h_new = _rnn_cell(xw[d, t, b, j] + gates[d, b, j], acts, spec["clip"])
            # Stores read the old state: the new cell state (which h_new reads) is written last.
            y[t, d, b, j] = tirx.Select(valid, h_new, zero)
            y_h[d, b, j] = tirx.Select(valid, h_new, y_h[d, b, j])
            if cls is LSTM:
                y_c[d, b, j] = tirx.Select(valid, c_new, y_c[d, b, j])


def _gru_loop_candidate(T, spec, d, t, xw, r, rb_h, y_h, gates, scratch, acts):
    """``scratch[b, j]`` = the candidate's hidden part: ``(r ⊙ H)·R_hᵀ + Rb_h`` or ``r ⊙ (H·R_hᵀ + Rb_h)``."""
    batch, hidden, dtype = spec["batch"], spec["hidden"], spec["dtype"]
    zero = tirx.const(0, dtype)
    with T.parallel(0, batch * hidden) as i:
        b, j = i // hidden, i % hidden
        reset = _gru_gates([zero, xw[d, t, b, hidden + j] + gates[d, b, hidden + j]], acts, spec["clip"])[1]
        if spec["linear_before_reset"]:
            scratch[d, b, j] = zero
            with T.serial(0, hidden) as k:
                scratch[d, b, j] = scratch[d, b, j] + y_h[d, b, k] * r[d, 2 * hidden + j, k]
            scratch[d, b, j] = reset * (scratch[d, b, j] + rb_h[d, j])
        else:
            # (r ⊙ H) needs every r of the row first: keep r in the unused third of ``gates``.
            gates[d, b, 2 * hidden + j] = reset
    if not spec["linear_before_reset"]:
        with T.parallel(0, batch * hidden) as i:
            b, j = i // hidden, i % hidden
            scratch[d, b, j] = zero
            with T.serial(0, hidden) as k:
                scratch[d, b, j] = scratch[d, b, j] + gates[d, b, 2 * hidden + k] * y_h[d, b, k] * r[d, 2 * hidden + j, k]
