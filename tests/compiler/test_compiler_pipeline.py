"""One compile pipeline (issue 12): per compile the board's target is resolved once and the ONNX file is read,
checked and folded once — a plain compile, ``--quant`` and ``--partition`` alike.

Measured before (search none): a plain compile resolved the target twice and parsed it into a ``tvm.target.Target``
twice, and read the ONNX file twice; ``--quant`` also folded twice; a two-stage ``--partition`` compile resolved
7 times and parsed 4 Targets. The counts are pinned by wrapping the functions that resolve, parse and read (only
calls made by tvmedge's own code are counted: TVM builds Targets internally too).
"""

from __future__ import annotations

import sys
from collections import Counter

import onnx
import pytest

from tvmedge import api
from tvmedge.quant import parse_config


@pytest.fixture
def counts(monkeypatch) -> Counter:
    import onnxslim
    import tvm

    import tvmedge.devices.board as board_module
    import tvmedge.frontend.onnx as frontend

    counted = Counter()

    def count(name, original, only_from_tvmedge=False):
        def wrapper(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not only_from_tvmedge or caller.startswith("tvmedge"):
                counted[name] += 1
            return original(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(board_module.Board, "tvm_target", count("Board.tvm_target", board_module.Board.tvm_target))
    monkeypatch.setattr(board_module, "resolve_target", count("resolve_target", board_module.resolve_target))
    monkeypatch.setattr(tvm.target.Target, "__init__", count("Target", tvm.target.Target.__init__, True))
    monkeypatch.setattr(frontend, "read_onnx", count("read_onnx", frontend.read_onnx))
    for name in ("load", "load_model", "load_model_from_string"):
        monkeypatch.setattr(onnx, name, count("onnx parse", getattr(onnx, name), True))
    monkeypatch.setattr(onnxslim, "slim", count("fold", onnxslim.slim))
    return counted


ONCE = {"Board.tvm_target": 1, "resolve_target": 1, "Target": 1, "read_onnx": 1, "onnx parse": 1, "fold": 1}


def test_plain_compile_resolves_and_parses_once(counts, tiny_cnn, tmp_path):
    api.compile(tiny_cnn, "rk3588", out=tmp_path / "a", search="none")
    assert dict(counts) == ONCE


def test_quant_compile_resolves_parses_and_folds_once(counts, tiny_cnn, tmp_path):
    config = parse_config({"quantization": {"type": "weight_only", "bit_width": 8}})
    artifact = api.compile(tiny_cnn, "x86-host", out=tmp_path / "q", search="none", quant=config)
    assert artifact.manifest.build.quantization["artifact_weights"]["fused"] > 0
    assert dict(counts) == ONCE


def test_partitioned_compile_resolves_each_unit_target_once(counts, tiny_cnn, two_cpu_board, tmp_path):
    artifact = api.compile(tiny_cnn, str(two_cpu_board), out=tmp_path / "p", search="none", plan="throughput")
    assert {s.unit for s in artifact.manifest.stages()} == {"big", "little"}
    # the board's target once ("big" has the board's own target and reuses it), "little"'s once
    assert dict(counts) == dict(ONCE, resolve_target=2, Target=2)
