"""`tvmedge generate` (issue 16): streams the generated text after the prompt; bad input is one `Error:` line."""

import json

import pytest
from click.testing import CliRunner

from tvmedge.cli.main import cli
from tvmedge.runtime.lm import SamplingOptions

from lm_reference import ort_generate


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_generate_prints_prompt_and_tokens(tiny_lm_artifact, tiny_lm_package):
    result = run("generate", tiny_lm_artifact, "--prompt", "The ", "--max-tokens", "6")
    assert result.exit_code == 0, result.output
    vocab = json.loads((tiny_lm_package / "lm.json").read_text())["tokenizer"]["vocab"]
    expected = "".join(vocab[t] for t in ort_generate(tiny_lm_package, "The ", SamplingOptions(max_tokens=6)))
    assert result.stdout.rstrip("\n") == "The " + expected
    assert "6 tokens on host, stop: length" in result.stderr


def test_generate_json(tiny_lm_artifact):
    result = run("generate", tiny_lm_artifact, "--prompt", "ab", "--max-tokens", "3", "--temperature", "0.7",
                 "--top-k", "5", "--seed", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["tokens"]) == 3 and data["stop_reason"] == "length" and data["where"] == "host"


@pytest.mark.parametrize("args, message", [
    (["--prompt", "naïve"], r"^Error: prompt character 'ï' \(U\+00EF, at 2\) is not in the model's vocabulary"),
    (["--prompt", "x" * 20], "^Error: prompt is 20 tokens; the model's context is 16"),
    (["--prompt", "ab", "--top-p", "1.5"], r"^Error: top_p must be a number in \(0, 1\], got 1.5$"),
    (["--prompt", "ab", "--max-tokens", "0"], "^Error: max_tokens must be an integer >= 1, got 0$"),
])
def test_generate_bad_input_is_one_line(tiny_lm_artifact, args, message):
    result = run("generate", tiny_lm_artifact, *args)
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    import re

    assert re.search(message, lines[0]), lines[0]


def test_generate_on_a_plain_artifact_or_folder(tmp_path, x86_artifact):
    result = run("generate", x86_artifact, "--prompt", "ab")
    assert result.exit_code == 1 and "has no lm.json; it is not a language-model artifact" in result.stderr
    result = run("compile", tmp_path, "--target", "x86-host", "-o", tmp_path / "o")
    assert result.exit_code == 1 and "is a folder without lm.json; give an ONNX file or an LM package" in result.stderr
