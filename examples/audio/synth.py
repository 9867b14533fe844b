"""Spoken words and phrases synthesized with Debian's ``espeak-ng``, with seeded variation and noise.

The audio packs (``examples/smart-home``, ``examples/assistant``) never download audio: every clip is made
here by ``espeak-ng`` (Debian package ``espeak-ng``, installed by ``scripts/setup.sh``) and then varied with a
seeded ``numpy`` generator:

- **voice**: an espeak-ng language voice (``en``, ``en-us``, ``en-gb-scotland``, ...) with a variant
  (``+m1`` .. ``+m7``, ``+f1`` .. ``+f4``, ``+klatt``, ...): accent and timbre;
- **speed** 130-210 words per minute and **pitch** 20-80 (espeak-ng's ``-s`` / ``-p``);
- **level**: a random gain of -12..0 dB and a random position inside the clip window;
- **noise**: one of white, pink, brown, mains hum (50/60 Hz and harmonics) or a band-passed "fan", mixed at a
  signal-to-noise ratio of 0-30 dB.

Voices are split by name into training and held-out voices (:data:`HELD_OUT_VOICES`), so a test set can be
spoken only by voices the model never heard. The same seed gives the same clips (espeak-ng is deterministic).

    >>> clip = speak("turn on the lights", Style("en-us+f3", 160, 50))      # float32 at 16 kHz, trimmed
    >>> window = place(clip, 16000, np.random.default_rng(0))              # one second, noisy
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RATE", "Style", "VOICES", "HELD_OUT_VOICES", "styles", "speak", "speak_many", "place", "noise",
           "check_espeak"]

RATE = 16000  # Hz: what the models take; espeak-ng writes 22,050 Hz and is resampled
_CACHE = Path(os.environ.get("TVMEDGE_SPEECH_CACHE", Path(__file__).resolve().parent / ".cache"))

_LANGS = ("en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+klatt", "+klatt2")
VOICES = tuple(lang + variant for lang in _LANGS for variant in _VARIANTS)
# Accents and timbres a model never trains on: test sets use only these.
HELD_OUT_VOICES = tuple(v for v in VOICES if v.startswith(("en-029", "en-gb-x-gbcwmd")) or v.endswith(("+m5", "+f4")))


@dataclass(frozen=True)
class Style:
    """How espeak-ng says a text: voice (language + variant), speed (words per minute), pitch (0-99)."""

    voice: str
    speed: int
    pitch: int


def check_espeak() -> str:
    """Path of ``espeak-ng``; RuntimeError naming the Debian package when it is missing."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError("espeak-ng not found: install the Debian package (apt-get install espeak-ng, "
                           "or bash scripts/setup.sh)")
    return path


def styles(rng: np.random.Generator, n: int, *, held_out: bool) -> list:
    """``n`` random styles, from the held-out voices only (``held_out``) or from the others only."""
    pool = [v for v in VOICES if (v in HELD_OUT_VOICES) == held_out]
    return [Style(pool[rng.integers(len(pool))], int(rng.integers(130, 211)), int(rng.integers(20, 81)))
            for _ in range(n)]


def speak(text: str, style: Style) -> np.ndarray:
    """``text`` spoken in ``style``: float32 mono at :data:`RATE`, leading/trailing silence trimmed, peak 1.

    Clips are cached as int16 under ``examples/audio/.cache/`` (``$TVMEDGE_SPEECH_CACHE``), keyed by text and
    style: a re-run (``run.sh``, tests) does not synthesize again. espeak-ng is deterministic, so the cache only
    saves time.
    """
    key = hashlib.sha1(repr((text, style.voice, style.speed, style.pitch)).encode()).hexdigest()[:20]
    cached = _CACHE / f"{key}.npy"
    if cached.is_file():
        return np.load(cached).astype(np.float32) / 32767.0
    audio = _synthesize(text, style)
    _CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with open(partial, "wb") as handle:
        np.save(handle, np.round(audio * 32767.0).astype(np.int16))
    os.replace(partial, cached)  # atomic: concurrent runs never read half a file
    return np.round(audio * 32767.0).astype(np.float32) / 32767.0  # what a cache hit returns, to the bit


def _synthesize(text: str, style: Style) -> np.ndarray:
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        subprocess.run([check_espeak(), "-v", style.voice, "-s", str(style.speed), "-p", str(style.pitch),
                        "-w", str(wav), text], check=True, capture_output=True, timeout=30)
        raw = wav.read_bytes()
    pcm = np.frombuffer(raw[44:], dtype="<i2").astype(np.float32) / 32768.0  # espeak-ng writes a 44-byte header
    audio = resample_poly(pcm, 320, 441).astype(np.float32)                   # 22,050 -> 16,000 Hz
    loud = np.flatnonzero(np.abs(audio) > 0.02 * (np.abs(audio).max() + 1e-9))
    if loud.size:
        audio = audio[max(loud[0] - 160, 0):loud[-1] + 160]
    return audio / (np.abs(audio).max() + 1e-9)


def speak_many(items, workers: int = 4) -> list:
    """``[speak(text, style) for text, style in items]``, with ``workers`` espeak-ng processes at a time."""
    items = list(items)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda item: speak(*item), items))


def noise(rng: np.random.Generator, n: int, kind: str | None = None) -> np.ndarray:
    """``n`` samples of unit-RMS noise of ``kind`` (white, pink, brown, hum, fan; default: a random one)."""
    kind = kind or ("white", "pink", "brown", "hum", "fan")[rng.integers(5)]
    if kind == "hum":
        t = np.arange(n) / RATE
        base = (50.0, 60.0)[rng.integers(2)]
        signal = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) for k in (1, 2, 3, 5))
        signal = signal + 0.05 * rng.standard_normal(n)
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        if kind == "pink":
            spectrum /= np.sqrt(np.maximum(freqs, 20.0))
        elif kind == "brown":
            spectrum /= np.maximum(freqs, 20.0)
        elif kind == "fan":
            centre = rng.uniform(200, 2000)
            spectrum *= np.exp(-0.5 * ((freqs - centre) / (0.3 * centre)) ** 2)
        signal = np.fft.irfft(spectrum, n)
    signal = np.asarray(signal, np.float64)
    return (signal / (np.sqrt(np.mean(signal ** 2)) + 1e-12)).astype(np.float32)


def place(clip: np.ndarray | None, length: int, rng: np.random.Generator, *, snr_db: tuple = (0.0, 30.0),
          noise_level: tuple = (0.001, 0.05), offset: int | None = None):
    """A ``length``-sample window holding ``clip`` (or only noise when None) at a random gain and position,
    plus noise at a random SNR -> ``(window, clean)``, float32.

    A clip longer than the window is cut to it. Noise-only windows get a random absolute level. The clean
    window (speech only) is returned too: voice activity labels come from its energy.
    """
    window = np.zeros(length, np.float32)
    if clip is not None:
        clip = clip[:length] * np.float32(10 ** (rng.uniform(-12, 0) / 20))
        start = int(rng.integers(0, length - clip.size + 1)) if offset is None else min(offset, length - clip.size)
        window[start:start + clip.size] = clip
        speech_rms = np.sqrt(np.mean(clip ** 2))
        level = speech_rms / 10 ** (rng.uniform(*snr_db) / 20)
    else:
        level = np.exp(rng.uniform(np.log(noise_level[0]), np.log(noise_level[1])))
    clean = window.copy()
    window += np.float32(level) * noise(rng, length)
    return np.clip(window, -1.0, 1.0).astype(np.float32), clean
