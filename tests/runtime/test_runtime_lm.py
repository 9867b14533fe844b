"""Language-model generation on the runtime (issue 16): prefill + decode with the KV cache kept as device
tensors, checked token for token against ONNX Runtime running the same two ONNX graphs."""

import json
import shutil

import pytest

from tvmedge import api
from tvmedge.errors import ArtifactError, ConfigError, InputError
from tvmedge.runtime.lm import LMManifest, SamplingOptions, load_lm

from lm_reference import ort_generate


@pytest.fixture(scope="module")
def lm(tiny_lm_artifact):
    return load_lm(tiny_lm_artifact)


@pytest.mark.parametrize("prompt", ["The ", "A long prompt"])  # 4 tokens; 13 > prefill 8: the rest by decode
def test_greedy_generation_equals_onnxruntime(lm, tiny_lm_package, prompt):
    options = SamplingOptions(max_tokens=3 if len(prompt) > 8 else 10)
    result = lm.generate(prompt, options)
    assert result.tokens == ort_generate(tiny_lm_package, prompt, options)
    assert result.text == "".join(lm.tokenizer.vocab[t] for t in result.tokens)
    assert result.prompt_tokens == len(prompt) and len(result.tokens) == options.max_tokens


def test_seeded_sampling_equals_onnxruntime_and_repeats(lm, tiny_lm_package):
    options = SamplingOptions(max_tokens=10, temperature=0.9, top_k=20, top_p=0.9, seed=5)
    first = lm.generate("Hi ", options).tokens
    assert first == lm.generate("Hi ", options).tokens == ort_generate(tiny_lm_package, "Hi ", options)


def test_streaming_yields_the_tokens_of_the_result(lm):
    generation = lm.stream("abc", max_tokens=5)
    streamed = [token.id for token in generation]
    assert streamed == generation.result.tokens and [t.index for t in lm.stream("abc", max_tokens=3)] == [0, 1, 2]


def test_stop_token_and_context_end(lm, tiny_lm_package):
    greedy = lm.generate("xy", max_tokens=12).tokens
    first_new = next(i for i in range(1, len(greedy)) if greedy[i] not in greedy[:i])  # a token not seen before
    result = lm.generate("xy", max_tokens=12, stop=[lm.tokenizer.vocab[greedy[first_new]]])
    assert result.tokens == greedy[:first_new] and result.stop_reason == "stop"
    full = lm.generate("xy", max_tokens=100)  # the context (16) ends it: the last token has no slot left
    assert full.stop_reason == "context" and len(full.tokens) == 16 - 2 + 1
    assert full.tokens == ort_generate(tiny_lm_package, "xy", SamplingOptions(max_tokens=100))


def test_kv_cache_stays_on_the_device(lm, monkeypatch):
    # Only the token and the position cross from numpy per decode step; the caches go back in as the tensors the
    # previous step returned (never copied out to numpy and back).
    made = []
    real = type(lm.decode).tensor
    monkeypatch.setattr(type(lm.decode), "tensor", lambda self, array: made.append(array.shape) or real(self, array))
    lm.generate("ab", max_tokens=5)
    assert made == [(1, 8), (1,)] + [(1, 1), (1,)] * 4


@pytest.mark.parametrize("prompt, kwargs, error, message", [
    ("héllo", {}, InputError, r"^prompt character 'é' \(U\+00E9, at 1\) is not in the model's vocabulary of 96 characters$"),
    ("", {}, InputError, "^prompt is empty; give at least one token$"),
    ("x" * 16, {}, InputError, "^prompt is 16 tokens; the model's context is 16, so at most 15 prompt tokens"),
    ("ab", {"top_p": 0}, ConfigError, r"^top_p must be a number in \(0, 1\], got 0$"),
    ("ab", {"temperature": -1.0}, ConfigError, "^temperature must be a number >= 0"),
    ("ab", {"top_k": -2}, ConfigError, "^top_k must be an integer >= 0"),
    ("ab", {"max_tokens": 0}, ConfigError, "^max_tokens must be an integer >= 1, got 0$"),
    ("ab", {"stop": ["xx"]}, InputError, "^stop token 'xx' is not a token of the model's vocabulary"),
])
def test_bad_generation_input_is_one_line(lm, prompt, kwargs, error, message):
    with pytest.raises(error, match=message):
        lm.stream(prompt, **kwargs)


def test_a_swapped_sub_artifact_is_refused(tiny_lm_artifact, tmp_path):
    copy = tmp_path / "lm"
    shutil.copytree(tiny_lm_artifact, copy)
    data = json.loads((copy / "lm.json").read_text())
    data["digests"]["decode"] = data["digests"]["prefill"]
    (copy / "lm.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="is not the decode graph lm.json was built with"):
        load_lm(copy)
    with pytest.raises(ArtifactError, match="has no lm.json; it is not a language-model artifact"):
        LMManifest.read(tmp_path)


def test_api_generate_streams_to_a_callback(tiny_lm_artifact):
    seen = []
    result = api.generate(tiny_lm_artifact, "ok", max_tokens=4, on_token=seen.append)
    assert [t.text for t in seen] == list(result.text) and result.where == "host"
    assert result.ttft_ms > 0 and result.decode_steps == 3


def test_board_side_generation_needs_no_compiler(tiny_lm_artifact, lm):
    # What a board runs: `python -m tvmedge.runtime.lm` with TVM's runtime library alone.
    import os
    import subprocess
    import sys

    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    code = ("import runpy, sys; sys.argv = ['lm', sys.argv[1], '--prompt', 'ab', '--max-tokens', '4', '--json']\n"
            "try:\n    runpy.run_module('tvmedge.runtime.lm', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('compiler loaded:', any(m.startswith('tvm.relax') for m in sys.modules), "
            "'libtvm_compiler' in open('/proc/self/maps').read())")
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_lm_artifact)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-2])["tokens"] == lm.generate("ab", max_tokens=4).tokens
    assert lines[-1] == "compiler loaded: False False"


@pytest.mark.emulated
@pytest.mark.slow
@pytest.mark.parametrize("board", ["rk3588", "visionfive2"])
def test_emulated_boards_generate_what_the_host_generates(tiny_lm_package, tmp_path, board):
    # The libraries and the KV cache live on the emulated board (TVM's RPC server under qemu); greedy and seeded
    # sampled outputs equal the host's.
    artifact = api.compile(tiny_lm_package, board, search="naive", out=tmp_path / board).path
    for options in ({"max_tokens": 6}, {"max_tokens": 6, "temperature": 0.8, "top_k": 10, "seed": 2}):
        on_board = api.generate(artifact, "The ", board=f"emu:{board}", **options)
        assert on_board.where == f"emu:{board}"
        assert on_board.tokens == ort_generate(tiny_lm_package, "The ", SamplingOptions(**options))


@pytest.mark.slow
def test_int4_lm_package_generates_what_onnxruntime_generates(tiny_lm_package, tmp_path):
    # `tvmedge quantize` on an LM package writes both graphs with MatMulNBits (group-wise INT4, the seed's YAML);
    # the compiled artifact keeps the packed weights and generates ONNX Runtime's tokens on the same files.
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "examples" / "llm" / "quant_int4.yaml"
    quantized = tmp_path / "int4"
    api.quantize(tiny_lm_package, config, out=quantized)
    artifact = api.compile(quantized, "x86-host", search="naive", out=tmp_path / "int4-lm").path
    options = SamplingOptions(max_tokens=8)
    assert api.generate(artifact, "The ", max_tokens=8).tokens == ort_generate(quantized, "The ", options)
    assert json.loads((quantized / "lm.json").read_text())["quantization"]["group_size"] == 32


def test_the_default_schedules_generate_what_onnxruntime_generates_from_one_copy_of_the_weights(
        tiny_lm_package, tmp_path):
    # The no-measurement build of an LM: GEMV schedules in both graphs, the weights repacked per column tile at
    # compile time (the same packed tensor for prefill and decode: stored once), the caches updated in place.
    from tvmedge.runtime.manifest import Manifest

    artifact = api.compile(tiny_lm_package, "x86-host", search="none", out=tmp_path / "lm").path
    manifests = {g: Manifest.read(artifact / g) for g in ("prefill", "decode")}
    assert all(m.tuning["gemv"] >= 4 for m in manifests.values())
    assert len(manifests["decode"].build.updated_in_place) == 2  # one layer: its key and value caches
    names = {g: set(m.weights["names"]) for g, m in manifests.items()}
    shared = names["prefill"] & names["decode"]
    assert len(shared) >= 4  # the block's matrices, repacked once for both graphs
    for options in (SamplingOptions(max_tokens=10), SamplingOptions(max_tokens=6, temperature=0.8, top_k=10, seed=3)):
        got = api.generate(artifact, "The ", max_tokens=options.max_tokens, temperature=options.temperature,
                           top_k=options.top_k, seed=options.seed).tokens
        assert got == ort_generate(tiny_lm_package, "The ", options)


def test_mixed_precision_chooses_once_for_both_graphs(tiny_lm_package, tmp_path):
    # bit_width: mixed on an LM package: sensitivity measured on the prefill graph (calibration prompts), the
    # same per-layer bits given to the decode graph, so both compute with the same weights; the compiled
    # artifact stores them once and generates what ONNX Runtime generates on the quantized package.
    import numpy as np

    from tvmedge.quant import parse_config

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", tokens=rng.integers(1, 96, (12, 8)), length=rng.integers(2, 9, 12))
    config = parse_config({"quantization": {"type": "weight_only", "bit_width": "mixed", "group_size": 32,
                                            "calibration_dataset": str(tmp_path / "calib.npz"),
                                            "mixed": {"target_size_ratio": 0.4}}})
    quantized = tmp_path / "mixed"
    report = api.quantize(tiny_lm_package, config, out=quantized).report
    bits = sorted(row["bits"] for row in report.layers if not row.get("excluded"))
    assert 4 in bits and 8 in bits and report.mixed["int4_layers"], (bits, report.mixed)
    import onnx

    ops = {g: sorted(n.op_type for n in onnx.load(quantized / f"{g}.onnx").graph.node
                     if n.op_type in ("MatMulNBits", "DequantizeLinear")) for g in ("prefill", "decode")}
    assert ops["prefill"] == ops["decode"]
    artifact = api.compile(tiny_lm_package, "x86-host", search="naive", quant=config, out=tmp_path / "lm").path
    assert sorted(p.name for p in artifact.iterdir()) == ["decode", "lm.json", "prefill", "weights.safetensors"]
    from tvmedge.runtime.manifest import Manifest

    names = {g: set(Manifest.read(artifact / g).weights["names"]) for g in ("prefill", "decode")}
    assert len(names["prefill"] & names["decode"]) >= 4  # the block's matrices: one copy for both graphs
    options = SamplingOptions(max_tokens=8)
    assert api.generate(artifact, "The ", max_tokens=8).tokens == ort_generate(quantized, "The ", options)


# --- one copy of the weights (issue 16) ----------------------------------------------------------------------
def test_the_weights_are_one_file_shared_by_both_graphs(tiny_lm_artifact, lm):
    # The libraries embed no weights: each manifest lists its tensors by content hash, the LM folder holds them
    # once, and the two loaded graphs compute with the very same tensors.
    from tvmedge.runtime.manifest import Manifest
    from tvmedge.runtime.weights import WEIGHTS_FILE, read_header

    data = json.loads((tiny_lm_artifact / "lm.json").read_text())
    assert data["format_version"] == 2 and data["weights"]["file"] == WEIGHTS_FILE
    assert sorted(p.name for p in tiny_lm_artifact.iterdir()) == ["decode", "lm.json", "prefill", WEIGHTS_FILE]
    names = {g: Manifest.read(tiny_lm_artifact / g).weights["names"] for g in ("prefill", "decode")}
    with open(tiny_lm_artifact / WEIGHTS_FILE, "rb") as handle:
        header, _ = read_header(handle, WEIGHTS_FILE)
    size = {n: info["data_offsets"][1] - info["data_offsets"][0] for n, info in header.items()}
    assert set(size) == set(names["prefill"]) | set(names["decode"])
    lifted = {g: sum(size[n] for n in names[g]) for g in names}
    memory = {g: Manifest.read(tiny_lm_artifact / g).build.memory["weight_bytes"] for g in names}
    assert all(memory[g] - 128 <= lifted[g] <= memory[g] for g in names)  # all but a few scalars are lifted
    shared = sum(size[n] for n in set(names["prefill"]) & set(names["decode"]))
    # Every matrix is shared; what differs is small and graph-specific (the prefill graph's slice of the position
    # table, zero caches, masks), so the file holds far less than the two graphs' weights together.
    assert shared >= 0.8 * lifted["decode"] and data["weights"]["tensors"] == len(size)
    assert (tiny_lm_artifact / WEIGHTS_FILE).stat().st_size < 0.6 * (lifted["prefill"] + lifted["decode"])
    by_name = dict(zip(names["decode"], lm.decode._params))
    assert all(by_name[n].same_as(p) for n, p in zip(names["prefill"], lm.prefill._params) if n in by_name)


@pytest.mark.parametrize("where", ["tensor", "header"])
def test_tampered_weights_are_refused(tiny_lm_artifact, tmp_path, where):
    copy = shutil.copytree(tiny_lm_artifact, tmp_path / "lm")
    raw = bytearray((copy / "weights.safetensors").read_bytes())
    if where == "tensor":
        raw[-5] ^= 0x10  # one bit of the last tensor
        message = r"weights.safetensors: tensor w[0-9a-f]{16}\.\.\. does not match its sha256 \(tampered or corrupt\)"
    else:
        raw[9:11] = b"[]"  # the header's opening brace: not a safetensors header any more
        message = "weights.safetensors has a corrupt safetensors header"
    (copy / "weights.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=message) as err:
        load_lm(copy)
    assert "\n" not in str(err.value)
    (copy / "weights.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"weights.safetensors is missing \(or a symbolic link\)"):
        load_lm(copy)


@pytest.fixture(scope="module")
def format1_artifact(tiny_lm_package, tmp_path_factory):
    """An LM artifact as format 1 wrote it: each graph an ordinary artifact with its weights inside."""
    from tvmedge.compiler.lm import read_package
    from tvmedge.compiler.pipeline import compile_model
    from tvmedge.tune.auto import TuningOptions

    out = tmp_path_factory.mktemp("format1") / "lm"
    data = read_package(tiny_lm_package)
    digests = {g: compile_model(tiny_lm_package / data[g], "x86-host", out / g,
                                tuning=TuningOptions(search="naive")).manifest.digest for g in ("prefill", "decode")}
    manifest = LMManifest(context=data["context"], prefill_length=data["prefill_length"],
                          cache=tuple(map(tuple, data["cache"])), tokenizer=data["tokenizer"], digests=digests)
    manifest.write(out)
    written = json.loads((out / "lm.json").read_text())
    (out / "lm.json").write_text(json.dumps(dict(written, format_version=1)))
    return out


def test_format1_artifacts_still_load_and_generate_the_same_tokens(format1_artifact, lm):
    # Before/after: the shared-weights layout generates exactly what the weights-inside layout did (greedy and
    # seeded sampling), and the old layout is still read.
    old = load_lm(format1_artifact)
    assert old.weights is None and old.decode.manifest.weights is None
    for options in (SamplingOptions(max_tokens=12), SamplingOptions(max_tokens=12, temperature=0.8, top_k=10, seed=3)):
        assert old.generate("The ", options).tokens == lm.generate("The ", options).tokens


def test_an_encrypted_lm_keeps_its_weights_inside_the_encrypted_libraries(tiny_lm_package, tmp_path, lm):
    # A weights file would be plaintext beside ciphertext: with --encrypt the libraries keep their weights (the
    # format-1 layout, in a format-2 lm.json without "weights") and generate the same tokens.
    from tvmedge.compiler.signing import generate_secret
    from tvmedge.tune.auto import TuningOptions

    secret = generate_secret(tmp_path / "model.key")
    out = tmp_path / "enc-lm"
    api.compile(tiny_lm_package, "x86-host", out=out, tuning=TuningOptions(search="naive"), encrypt=secret["key"])
    data = json.loads((out / "lm.json").read_text())
    assert data["format_version"] == 2 and "weights" not in data and not (out / "weights.safetensors").exists()
    encrypted = load_lm(out, decrypt=secret["key"])
    assert encrypted.weights is None
    assert encrypted.generate("The ", max_tokens=8).tokens == lm.generate("The ", max_tokens=8).tokens
