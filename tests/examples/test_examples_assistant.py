"""examples/assistant (issue 18): four separately served artifacts and the offline profile, reduced.

- the text models: intent on held-out templates and retrieval on held-out questions (the learned projection
  must beat the raw hashed n-grams it starts from);
- the voice path over a live ``tvmedge serve``: the four models and the answer LM compiled for this host,
  loaded over REST, a spoken command and a noise window through vad -> command -> intent, a typed question
  through intent -> retrieval -> the LM's ``/generate``; then the connection is "cut": the text models and the
  LM are unloaded over REST, the same windows give the same replies from the prefetched table, free text is
  refused, and the service refuses inference on an unloaded model;
- the answer LM's prompt fits its prefill graph and vocabulary for every question the pack has;
- slow: ``run.sh --quick`` from a copy of the pack writes results.json with the measured offline saving.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "examples" / "assistant"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (scripts/setup.sh)")


def _module(path: Path, name: str):
    for folder in (str(path.parent), str(path.parent.parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_text_models_on_held_out_wordings():
    import onnxruntime as ort

    language = _module(PACK / "language.py", "assistant_language")
    rng = np.random.default_rng(0)
    language.intent_sentences(False, rng)  # train.py's draws first, as measure.py does
    texts, intents = language.intent_sentences(True, rng)
    intent = ort.InferenceSession(str(PACK / "intent.onnx"), providers=["CPUExecutionProvider"])
    predicted = np.array([intent.run(None, {"text": language.featurize([t])})[0].argmax() for t in texts])
    assert np.mean(predicted == intents) > 0.5  # 8 intents: chance is 0.125

    questions, entries = language.question_sentences(held_out=True)
    retrieval = ort.InferenceSession(str(PACK / "retrieval.onnx"), providers=["CPUExecutionProvider"])
    embedding, scores = retrieval.run(None, {"text": language.featurize(questions[:1])})
    assert embedding.shape == (1, 64) and scores.shape == (1, len(language.KNOWLEDGE))
    np.testing.assert_allclose(np.linalg.norm(embedding), 1.0, rtol=1e-4)
    top1 = np.array([retrieval.run(None, {"text": language.featurize([q])})[1].argmax() for q in questions])
    keys = language.featurize([" ".join([a] + train) for a, train, _ in language.KNOWLEDGE])
    raw = (language.featurize(questions) @ keys.T).argmax(1)
    assert np.mean(top1 == entries) >= np.mean(raw == entries)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_answer_prompts_fit_the_lm():
    """Every question the pack knows (training and held-out) makes a prompt the committed LM can take whole in
    its prefill graph, with characters from its vocabulary only."""
    language = _module(PACK / "language.py", "assistant_language")
    lm = json.loads((PACK / "lm" / "lm.json").read_text())
    assert lm["tokenizer"]["vocab"] == language.lm_vocabulary()
    questions = [q for _, train, held in language.KNOWLEDGE for q in train + held] + ["Wie geht's? ÄÖÜ " * 9]
    for question in questions:
        prompt = language.answer_prompt(question, 11)
        assert len(prompt) <= lm["prefill_length"] and set(prompt) <= set(lm["tokenizer"]["vocab"])
        assert prompt.endswith("\n#11:")
    longest = max(len(answer) for answer, _, _ in language.KNOWLEDGE)
    assert lm["prefill_length"] + longest + 2 <= lm["context"]  # room for any answer and its newline


@pytest.fixture
def service(tmp_path):
    """The four models and the answer LM compiled for this host (TVM's default build: fast to compile) behind
    `tvmedge serve`."""
    from tvmedge import api

    serve = tmp_path / "serve"
    for name in ("vad", "command", "intent", "retrieval"):
        api.compile(PACK / f"{name}.onnx", "x86-host", search="naive", out=serve / name)
    api.compile(PACK / "lm", "x86-host", search="naive", out=serve / "lm")
    (serve / "offline.json").write_text(json.dumps({"models": ["vad", "command"]}))
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "tvmedge.cli.main", "serve", "--models", str(serve),
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(30)


@needs_espeak
def test_voice_path_over_rest_and_the_offline_profile(service, tmp_path, monkeypatch):
    monkeypatch.setenv("TVMEDGE_SPEECH_CACHE", str(tmp_path / "speech"))
    assistant_module = _module(PACK / "assistant.py", "assistant_client")
    synth = _module(REPO / "examples" / "audio" / "synth.py", "audio_synth")
    rng = np.random.default_rng(0)
    spoken, _ = synth.place(synth.speak("turn on the lights", synth.Style("en-us", 160, 50)), 32000, rng, snr_db=(25, 25))
    noise, _ = synth.place(None, 32000, rng)

    assistant = assistant_module.Assistant(service)
    assert assistant.models == ("vad", "command", "intent", "retrieval", "lm")  # the service has the LM
    assert [r["state"] for r in assistant.load()] == ["ready"] * 5
    online = [assistant.listen(w) for w in (spoken, noise)]
    assert online[0].speech_frames > online[1].speech_frames
    assert online[1].command is None and online[1].calls == ["vad"]  # noise stops at the voice activity detector
    typed = assistant.ask("how do i reset the device")
    assert typed.calls == ["intent", "retrieval", "lm"]  # a help question: retrieval picks, the LM answers
    language = assistant_module.language
    entry = [a for a, train, _ in language.KNOWLEDGE if "how do i reset the device" in train][0]
    assert typed.answer == entry  # a training question: the LM writes the entry's text (greedy, deterministic)

    unloaded = assistant.go_offline()
    assert [r["state"] for r in unloaded] == ["available"] * 3
    states = {m["name"]: m["state"] for m in json.load(urllib.request.urlopen(service + "/v1/models"))["models"]}
    assert states == {"vad": "ready", "command": "ready", "intent": "available", "retrieval": "available",
                      "lm": "available"}
    offline = [assistant.listen(w) for w in (spoken, noise)]
    for a, b in zip(online, offline):  # the prefetched table answers as the text models did
        assert (a.command, a.intent, a.answer) == (b.command, b.intent, b.answer)
        assert "intent" not in b.calls and "retrieval" not in b.calls
    with pytest.raises(RuntimeError, match="offline"):
        assistant.ask("how do i reset the device")
    with pytest.raises(RuntimeError, match="409"):  # the service itself refuses an unloaded model
        assistant.infer("intent", "text", np.zeros((1, 1024), np.float32))
    assert [r["state"] for r in assistant.go_online()] == ["ready"] * 3


@pytest.mark.slow
@pytest.mark.emulated
@needs_espeak
def test_run_sh_quick_end_to_end(tmp_path):
    if shutil.which("qemu-riscv64") is None or shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-user not installed")
    ignore = shutil.ignore_patterns("data", "out", ".cache", "__pycache__", "results.json", "*.png")
    pack = tmp_path / "examples" / "assistant"
    shutil.copytree(PACK, pack, ignore=ignore)
    shutil.copytree(REPO / "examples" / "audio", tmp_path / "examples" / "audio", ignore=ignore)
    env = dict(os.environ, PYTHON=sys.executable, SEARCH="naive", TVMEDGE_SPEECH_CACHE=str(tmp_path / "speech"),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(["bash", str(pack / "run.sh"), "--quick"], env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((pack / "out" / "results.json").read_text())
    assert results["pack"] == "assistant" and results["emulated_outputs_match"] is True
    offline = results["details"]["offline"]
    assert offline["profile"] == ["vad", "command"] and offline["rss_mib_after_unload"] <= offline["rss_mib_online"]
