"""The voice assistant as a client of ``tvmedge serve``: four separately loaded artifacts, and an offline mode.

Pipeline for each 2-second window of microphone audio (every step a REST call to the model service)::

    vad (P(speech) per 10 ms)  --enough speech?-->  command (12 phrases + other)  --text-->
    intent (8 intents, from the command's text)  --help?-->  retrieval (nearest knowledge-base entry)
    --entry-->  lm (a character-level language model writes the answer, ``/generate``)

Text typed in the companion app (which reaches the device through the cloud relay) enters at ``intent``.

**Answers.** When the service has the language model (an LM artifact named ``lm``, compiled from
``examples/assistant/lm/``, trained by ``examples/llm/train.py --corpus assistant``), retrieval picks the entry
and the LM generates the answer from the question and the entry's tag (:func:`language.answer_prompt`, greedy,
up to the newline it ends answers with); without it, an answer is the entry's text as stored.

**Offline profile** (``offline.json``: ``vad``, ``command``). When the connection is cut the only input left is
the microphone, and the command recognizer knows 12 phrases, so what ``intent``, ``retrieval`` and the LM would
say about them is a fixed table: :meth:`Assistant.prefetch` computes it with those models while online, and
:meth:`Assistant.go_offline` then unloads them over REST (``POST /v1/models/{name}/unload``). What is lost:
free-text questions (they arrive only over the network anyway). What is kept: every spoken command and its
answer. :meth:`Assistant.go_online` loads them again. ``tvmedge serve --offline`` starts a service with only
the profile's models.

    python examples/assistant/assistant.py --models examples/assistant/out/serve --say "turn on the lights"
"""

from __future__ import annotations

import io
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import language  # noqa: E402

MODELS = ("vad", "command", "intent", "retrieval")
LM = "lm"                     # the answer model, when the service has it
OFFLINE = ("vad", "command")  # what offline.json lists
INTENT_NAMES = tuple(language.INTENTS)
COMMAND_CLASSES = language.COMMANDS + ("_other_",)
SPEECH_FRAMES = 15      # at least 150 ms of speech in the window before the command model is asked
MIN_SCORE = 0.35        # below this cosine the knowledge base has no answer
ANSWER_TOKENS = 120     # longer than any answer (97 characters) plus its newline


@dataclass
class Reply:
    """What the assistant made of one window or one text."""

    speech_frames: int = 0
    command: Optional[str] = None
    intent: Optional[str] = None
    answer: Optional[str] = None
    calls: list = field(default_factory=list)  # models called, in order

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Assistant:
    """The pipeline over a running ``tvmedge serve`` at ``url`` (e.g. ``http://127.0.0.1:8080``)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.table: dict = {}     # command text -> (intent, answer), filled by prefetch()
        self.online = True
        with urllib.request.urlopen(self.url + "/v1/models", timeout=120) as reply:
            served = {m["name"] for m in json.load(reply)["models"]}
        self.models = MODELS + ((LM,) if LM in served else ())  # the LM answers when the service has it

    # --- REST -------------------------------------------------------------------------------------
    def _post(self, path: str, body: bytes = b"", kind: str = "application/json") -> dict:
        request = urllib.request.Request(self.url + path, data=body, method="POST", headers={"content-type": kind})
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{path}: {err.code} {json.load(err).get('detail')}") from None

    def infer(self, model: str, name: str, array: np.ndarray) -> dict:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array, np.float32))
        reply = self._post(f"/v1/models/{model}/infer?input={name}", buffer.getvalue(), "application/x-npy")
        return {k: np.array(v["data"], np.float32) for k, v in reply["outputs"].items()}

    def load(self, names=None) -> list:
        return [self._post(f"/v1/models/{n}/load") for n in (self.models if names is None else names)]

    def unload(self, names) -> list:
        return [self._post(f"/v1/models/{n}/unload") for n in names]

    # --- the pipeline -----------------------------------------------------------------------------
    def listen(self, window: np.ndarray) -> Reply:
        """One 2-second window (32,000 samples at 16 kHz) through the pipeline."""
        reply = Reply()
        speech = self.infer("vad", "audio", window[None])["speech"]
        reply.calls.append("vad")
        reply.speech_frames = int(np.sum(speech > 0.5))
        if reply.speech_frames < SPEECH_FRAMES:
            return reply
        logits = self.infer("command", "audio", window[None])["logits"]
        reply.calls.append("command")
        label = COMMAND_CLASSES[int(logits.argmax())]
        if label == "_other_":
            return reply
        reply.command = label
        if self.online:
            self._understand(label, reply)
        else:
            reply.intent, reply.answer = self.table[label]
        return reply

    def ask(self, text: str) -> Reply:
        """Free text (the companion app's channel): needs the text models, i.e. the online profile."""
        if not self.online:
            raise RuntimeError("offline: free-text requests need the intent and retrieval models (online profile)")
        reply = Reply()
        self._understand(text, reply)
        return reply

    def _understand(self, text: str, reply: Reply) -> None:
        features = language.featurize([text])
        reply.intent = INTENT_NAMES[int(self.infer("intent", "text", features)["logits"].argmax())]
        reply.calls.append("intent")
        if reply.intent == "help":
            self._look_up(text, features, reply)

    def _look_up(self, text: str, features: np.ndarray, reply: Reply) -> None:
        scores = self.infer("retrieval", "text", features)["scores"].reshape(-1)
        reply.calls.append("retrieval")
        best = int(scores.argmax())
        if scores[best] < MIN_SCORE:
            return
        if LM in self.models:
            reply.answer = self.answer(text, best)
            reply.calls.append(LM)
        else:
            reply.answer = language.KNOWLEDGE[best][0]

    def look_up(self, question: str) -> Reply:
        """A question straight to the knowledge base (retrieval, then the LM's answer), skipping ``intent``."""
        reply = Reply()
        self._look_up(question, language.featurize([question]), reply)
        return reply

    def answer(self, question: str, entry: int) -> str:
        """The LM's answer to ``question`` from knowledge-base entry ``entry`` (``POST /generate``, greedy)."""
        body = {"prompt": language.answer_prompt(question, entry), "max_tokens": ANSWER_TOKENS,
                "stop": [language.ANSWER_STOP], "stream": False}
        return self._post(f"/v1/models/{LM}/generate", json.dumps(body).encode())["text"].strip()

    # --- profiles ---------------------------------------------------------------------------------
    def prefetch(self) -> dict:
        """While online: what the text models say about each spoken command -> ``{command: (intent, answer)}``."""
        for command in language.COMMANDS:
            reply = Reply()
            self._understand(command, reply)
            self.table[command] = (reply.intent, reply.answer)
        return self.table

    def go_offline(self) -> list:
        """The connection is cut: keep the table, unload the text models (their replies say the RSS freed)."""
        if not self.table:
            self.prefetch()
        self.online = False
        return self.unload([m for m in self.models if m not in OFFLINE])

    def go_online(self) -> list:
        self.online = True
        return self.load([m for m in self.models if m not in OFFLINE])


def main(argv=None) -> int:
    import argparse
    import subprocess
    import time

    sys.path.insert(0, str(HERE.parent))
    from audio import synth

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service (default: start `tvmedge serve --models MODELS`)")
    parser.add_argument("--models", type=Path, default=HERE / "out" / "serve")
    parser.add_argument("--say", action="append", default=[], help="a phrase to speak with espeak-ng (repeatable)")
    parser.add_argument("--ask", action="append", default=[], help="free text, as the companion app would send it")
    parser.add_argument("--offline", action="store_true", help="cut the connection before speaking")
    args = parser.parse_args(argv)
    server = None
    url = args.url
    if url is None:
        port = 8000 + int(time.time()) % 1000
        server = subprocess.Popen([sys.executable, "-m", "tvmedge.cli.main", "serve", "--models", str(args.models),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 600  # the service's imports take a while on a busy board
        while time.time() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=5)
                break
            except OSError:
                time.sleep(0.2)
    try:
        assistant = Assistant(url)
        assistant.load()
        for text in args.ask:
            print(f"ask {text!r}: {json.dumps(assistant.ask(text).to_json())}")
        if args.offline:
            freed = sum(r["rss_freed_bytes"] or 0 for r in assistant.go_offline())
            print(f"offline: unloaded {', '.join(m for m in assistant.models if m not in OFFLINE)}, "
                  f"{freed / 2**20:.1f} MiB of RSS freed")
        rng = np.random.default_rng(0)
        for text in args.say:
            window, _ = synth.place(synth.speak(text, synth.Style("en-us", 160, 50)), 2 * synth.RATE, rng, snr_db=(20, 20))
            print(f"say {text!r}: {json.dumps(assistant.listen(window).to_json())}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
