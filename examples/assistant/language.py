"""The assistant's words: spoken commands, intents with templated paraphrases, the local knowledge base, and
the text features (hashed character n-grams) the intent and retrieval models take.

Text features are computed in numpy on the client (hashing strings is not an ONNX op): lower-cased words and
character 3-grams of ``#word#`` hashed with CRC-32 into :data:`BUCKETS` counts, L2-normalized -> (1, 1024)
float32. Everything learned (the intent classifier, the retrieval projection) is in the ONNX models.

Paraphrases are generated from templates with slot fillers (seeded); each intent's and each knowledge-base
entry's templates are split into training and **held-out** templates, so the test sentences have wordings the
models never saw.
"""

from __future__ import annotations

import re
import zlib
from itertools import product

import numpy as np

__all__ = ["BUCKETS", "COMMANDS", "COMMAND_INTENT", "OTHER_PHRASES", "INTENTS", "KNOWLEDGE", "featurize",
           "intent_sentences", "question_sentences", "answer_prompt", "ANSWER_STOP", "lm_vocabulary"]

BUCKETS = 1024

# The closed set of spoken commands the command recognizer knows, each with the intent it stands for.
COMMAND_INTENT = {
    "turn on the lights": "lights",
    "turn off the lights": "lights",
    "set a timer": "timer",
    "cancel the timer": "timer",
    "play some music": "music",
    "volume up": "volume",
    "volume down": "volume",
    "what time is it": "time",
    "what is the weather": "weather",
    "how do I reset the device": "help",
    "how do I connect to wifi": "help",
    "good night": "routine",
}
COMMANDS = tuple(COMMAND_INTENT)
OTHER_PHRASES = ("the cat sat on the mat", "see you tomorrow", "that was a great game", "pass me the salt",
                 "where are my keys", "it is raining again", "thank you very much", "let us go outside",
                 "my phone is ringing", "open the window please")

_SLOTS = {
    "room": ["kitchen", "living room", "bedroom", "hall", "bathroom", "office"],
    "state": ["on", "off"],
    "duration": ["five minutes", "ten minutes", "an hour", "thirty seconds", "two minutes"],
    "song": ["some jazz", "my playlist", "the radio", "something relaxing", "rock music"],
    "city": ["Berlin", "Paris", "London", "Madrid", "Tokyo"],
    "day": ["today", "tomorrow", "this weekend", "tonight"],
}

# intent -> (training templates, held-out templates)
INTENTS = {
    "lights": (["turn {state} the lights", "switch the {room} lights {state}", "lights {state} in the {room}",
                "can you turn the {room} light {state}", "please switch {state} the lamp"],
               ["make the {room} bright", "i need light in the {room}", "kill the lights in the {room}"]),
    "timer": (["set a timer for {duration}", "start a {duration} timer", "cancel the timer", "timer for {duration}",
               "stop my timer"],
              ["remind me in {duration}", "count down {duration}", "how long is left on the timer"]),
    "music": (["play {song}", "put on {song}", "start playing {song}", "play some music", "i want to hear {song}"],
              ["could you play {song} in the {room}", "music please", "shuffle {song}"]),
    "volume": (["volume up", "volume down", "turn it up", "turn the volume down", "make it louder"],
               ["too loud", "i can't hear it", "lower the sound", "quieter please"]),
    "time": (["what time is it", "tell me the time", "what's the time", "current time please", "what time is it now"],
             ["do you know the time", "is it late", "what hour is it"]),
    "weather": (["what is the weather", "what's the weather {day}", "weather in {city}", "will it rain {day}",
                 "how cold is it {day}"],
                ["do i need an umbrella {day}", "forecast for {city} {day}", "is it sunny in {city}"]),
    "help": (["how do i reset the device", "how do i connect to wifi", "how do i change the wake word",
              "why is the light blinking", "how do i update the software"],
             ["the device will not connect", "what does the red light mean", "help me set up the speaker"]),
    "routine": (["good night", "good morning", "i'm leaving", "i'm home", "start my morning routine"],
                ["time for bed", "see you later house", "wake up routine"]),
}

# The local knowledge base: (answer, training questions, held-out questions).
KNOWLEDGE = [
    ("To reset the device, hold the action button for ten seconds until the ring turns orange.",
     ["how do i reset the device", "factory reset", "reset to factory settings", "how to restore defaults"],
     ["wipe the speaker and start again", "how can i reset it"]),
    ("To connect to wifi, open the companion app, choose Devices, then Network, and pick your network.",
     ["how do i connect to wifi", "connect to the wireless network", "change the wifi network", "wifi setup"],
     ["join my home network", "how do i get it online"]),
    ("A blinking orange ring means the device is offline; it retries every minute.",
     ["why is the light blinking orange", "what does the orange light mean", "orange ring blinking"],
     ["the ring is flashing orange", "why is it orange"]),
    ("A red ring means the microphones are muted; press the mute button to unmute.",
     ["what does the red light mean", "why is the ring red", "microphone muted red light"],
     ["red ring on top", "unmute the microphones"]),
    ("To change the wake word, open the app, choose Voice, then Wake word.",
     ["how do i change the wake word", "change the wake word", "set a different wake word"],
     ["can i call it something else", "pick another wake word"]),
    ("Software updates install automatically at night; you can also start one in the app under Updates.",
     ["how do i update the software", "install the latest update", "firmware update"],
     ["is there a new version", "update the speaker firmware"]),
    ("The device keeps up to 50 timers and alarms; they keep running offline.",
     ["how many timers can i set", "do timers work offline", "maximum number of alarms"],
     ["can i have several timers", "will my alarm ring without internet"]),
    ("Bluetooth pairing: say pair bluetooth, then choose the speaker on your phone.",
     ["how do i pair bluetooth", "connect my phone by bluetooth", "bluetooth pairing"],
     ["use it as a bluetooth speaker", "stream from my phone"]),
    ("Voice recordings stay on the device; nothing is uploaded unless you enable cloud history.",
     ["are my recordings uploaded", "privacy of voice recordings", "where is my voice data stored"],
     ["do you send my voice to the cloud", "is it listening to me"]),
    ("Lights are controlled over Zigbee; pair a new bulb in the app under Devices, Add.",
     ["how do i add a new light bulb", "pair a zigbee bulb", "add a lamp"],
     ["connect my new lamp", "set up a smart bulb"]),
    ("The speaker draws 3 watts idle and 12 watts at full volume.",
     ["how much power does it use", "power consumption", "energy use of the speaker"],
     ["how many watts", "is it expensive to leave on"]),
    ("The warranty lasts two years from purchase; keep the receipt.",
     ["how long is the warranty", "warranty period", "is it under guarantee"],
     ["can i get it repaired for free", "guarantee length"]),
]


def featurize(texts) -> np.ndarray:
    """(N, BUCKETS) float32: hashed words and character 3-grams of each text, L2-normalized."""
    out = np.zeros((len(texts), BUCKETS), np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9']+", text.lower()):
            out[row, zlib.crc32(("w:" + word).encode()) % BUCKETS] += 1.0
            padded = f"#{word}#"
            for i in range(len(padded) - 2):
                out[row, zlib.crc32(padded[i:i + 3].encode()) % BUCKETS] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def _fill(template: str) -> list:
    names = re.findall(r"{(\w+)}", template)
    if not names:
        return [template]
    return [template.format(**dict(zip(names, values))) for values in product(*(_SLOTS[n] for n in names))]


def intent_sentences(held_out: bool, rng: np.random.Generator, per_template: int = 12):
    """(sentences, intent indices) from the training or held-out templates, at most ``per_template`` fillings each."""
    texts, labels = [], []
    for label, (train, test) in enumerate(INTENTS.values()):
        for template in (test if held_out else train):
            filled = _fill(template)
            for i in rng.permutation(len(filled))[:per_template]:
                texts.append(filled[i])
                labels.append(label)
    return texts, np.asarray(labels, np.int64)


def question_sentences(held_out: bool):
    """(questions, knowledge-base indices) from the training or held-out questions."""
    texts, labels = [], []
    for label, (_, train, test) in enumerate(KNOWLEDGE):
        for question in (test if held_out else train):
            texts.append(question)
            labels.append(label)
    return texts, np.asarray(labels, np.int64)


# The language model's side (examples/llm/train.py --corpus assistant trains it; assistant.py asks it): the
# retrieval model picks a knowledge-base entry, and the LM writes the answer from the question and that entry's
# tag. Trained so that the tag decides the answer (the question it is paired with in training is as often
# another entry's or unrelated text), it reproduces entry k's answer for any wording of the question.
ANSWER_STOP = "\n"     # the LM ends an answer with a newline (a stop token for generate)
_QUESTION_CHARS = 48  # the prompt fits the LM's prefill graph (64 characters): question, newline, "#kk:"


def answer_prompt(question: str, entry: int) -> str:
    """The LM's prompt for ``question`` answered from knowledge-base entry ``entry``: ``question\n#kk:``;
    characters outside :func:`lm_vocabulary` are dropped."""
    allowed = set(lm_vocabulary())
    text = "".join(c for c in " ".join(question.lower().split()) if c in allowed)[:_QUESTION_CHARS]
    return f"{text}\n#{entry:02d}:"


def lm_vocabulary() -> list:
    """The LM's characters: everything in the knowledge base and the templates, lower-case letters, digits and
    common punctuation (sorted)."""
    import string

    texts = [a for a, _, _ in KNOWLEDGE] + [q for _, t, h in KNOWLEDGE for q in t + h]
    texts += [_fill(t)[0] for train, test in INTENTS.values() for t in train + test] + list(OTHER_PHRASES)
    return sorted(set("".join(texts)) | set(string.ascii_lowercase + string.digits + " '?.,;:#-\n"))
