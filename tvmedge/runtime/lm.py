"""Language models on the runtime: an LM artifact (prefill + decode libraries, tokenizer) and text generation
with the KV cache kept as device tensors between steps. Imports numpy, ``tvm.runtime`` and tvmedge.runtime only.

An LM artifact is a folder of two ordinary artifacts, one file of weights and a small LM manifest::

    out/
      lm.json               format "tvmedge-lm-artifact" version 2: which sub-artifact is which (and its manifest
                            digest), context, prefill length, KV-cache pairs (past input -> present output),
                            tokenizer, the weights file
      weights.safetensors   every weight once, shared by both graphs (:mod:`.weights`)
      prefill/              manifest.json + model.so: tokens [1, P], length [1] -> logits [1, V], present caches
      decode/               manifest.json + model.so: tokens [1, 1], position [1], past caches -> logits, caches

Each sub-artifact is verified as any artifact is (digest, sha256, architecture); ``lm.json`` pins their
manifest digests, so a sub-artifact swapped for another model's is refused. The libraries hold no weights: each
manifest lists the tensors its ``main`` takes after the inputs, by content hash, and the weights are loaded once
(each tensor checked against its hash) and handed to both graphs, so generation holds one copy of them. An
encrypted LM artifact (``--encrypt``) keeps the weights inside its (encrypted) libraries instead, as format 1
artifacts did; format 1 ``lm.json`` files are still read.

>>> import tvmedge.runtime as rt
>>> lm = rt.load_lm("out-lm/")                                           # doctest: +SKIP
>>> lm.generate("The licensee ", max_tokens=20).text                     # doctest: +SKIP
'shall not be liable f'
>>> for token in lm.stream("GNU ", max_tokens=5, temperature=0.8, top_k=20, seed=1):   # doctest: +SKIP
...     print(token.text, end="", flush=True)

From a shell on a board: ``python -m tvmedge.runtime.lm out-lm/ --prompt "GNU " --max-tokens 40 --json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from ..errors import ArtifactError, ConfigError, InputError
from .manifest import Manifest
from .tokenizer import Tokenizer

__all__ = ["LM_MANIFEST", "LM_FORMAT", "LMManifest", "SamplingOptions", "Sampler", "GeneratedToken",
           "GenerationResult", "Generation", "LanguageModel", "load_lm", "is_lm_artifact"]

LM_MANIFEST = "lm.json"
LM_FORMAT = "tvmedge-lm-artifact"
LM_FORMAT_VERSION = 2  # 2: the weights file (``weights``); 1: weights inside each library
LM_READABLE_VERSIONS = (1, 2)
GRAPHS = ("prefill", "decode")


def is_lm_artifact(path) -> bool:
    """Does ``path`` hold an LM artifact (``lm.json`` of the artifact format)?"""
    try:
        return json.loads((Path(path) / LM_MANIFEST).read_text()).get("format") == LM_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class LMManifest:
    """``lm.json`` of an LM artifact (written by :mod:`tvmedge.compiler.lm`, read here)."""

    context: int
    prefill_length: int
    cache: tuple  # ((past input name, present output name), ...)
    tokenizer: dict
    digests: dict  # "prefill"/"decode" -> that sub-artifact's manifest digest
    model: dict = field(default_factory=dict)
    quantization: Optional[dict] = None
    # {"file": "weights.safetensors", "bytes": ..., "tensors": ...}: the weights both graphs share (None: inside
    # the libraries, as in format 1 and encrypted artifacts)
    weights: Optional[dict] = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["cache"] = [list(pair) for pair in self.cache]
        if data["weights"] is None:
            del data["weights"]
        return {"format": LM_FORMAT, "format_version": LM_FORMAT_VERSION,
                **{g: g for g in GRAPHS}, **data}

    def write(self, directory) -> Path:
        path = Path(directory) / LM_MANIFEST
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, directory) -> "LMManifest":
        path = Path(directory) / LM_MANIFEST
        if not path.is_file():
            raise ArtifactError(f"{directory} has no {LM_MANIFEST}; it is not a language-model artifact "
                                "(compile an LM package folder with `tvmedge compile`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ArtifactError(f"{path} is not valid JSON: {err}") from err
        if not isinstance(data, dict) or data.get("format") != LM_FORMAT:
            raise ArtifactError(f"{path} is not a {LM_FORMAT} manifest")
        if data.get("format_version") not in LM_READABLE_VERSIONS:
            raise ArtifactError(f"{path} has format version {data.get('format_version')}; this runtime reads "
                                f"{', '.join(map(str, LM_READABLE_VERSIONS))}")
        try:
            manifest = cls(context=int(data["context"]), prefill_length=int(data["prefill_length"]),
                           cache=tuple((str(a), str(b)) for a, b in data["cache"]), tokenizer=dict(data["tokenizer"]),
                           digests={g: str(data["digests"][g]) for g in GRAPHS}, model=dict(data.get("model") or {}),
                           quantization=data.get("quantization"),
                           weights=dict(data["weights"]) if data.get("weights") is not None else None)
            if manifest.weights is not None and (not isinstance(manifest.weights.get("file"), str)
                                                 or Path(manifest.weights["file"]).name != manifest.weights["file"]):
                raise ValueError("weights.file must be a file name in the artifact folder")
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"{path} is missing or has a malformed field: {err}") from err
        if not 0 < manifest.prefill_length <= manifest.context:
            raise ArtifactError(f"{path}: prefill length {manifest.prefill_length} must be in 1..{manifest.context}")
        return manifest

    def check(self, directory) -> dict:
        """Each sub-artifact is the one this LM was built with (its manifest digest is the recorded one), and
        reads its weights from this LM's weights file -> the sub-artifacts' manifests by graph."""
        manifests = {}
        for graph in GRAPHS:
            manifests[graph] = Manifest.read(Path(directory) / graph)
            if manifests[graph].digest != self.digests[graph]:
                raise ArtifactError(f"{Path(directory) / graph} is not the {graph} graph {LM_MANIFEST} was built with "
                                    "(its manifest digest differs); rebuild the LM artifact")
            record = manifests[graph].weights
            if record and (self.weights is None or record["file"] != self.weights["file"]):
                raise ArtifactError(f"{Path(directory) / graph} reads weights from {record['file']}, which "
                                    f"{LM_MANIFEST} does not name; rebuild the LM artifact")
        return manifests


@dataclass(frozen=True)
class SamplingOptions:
    """How tokens are picked. ``temperature`` 0 is greedy (argmax); above 0 the logits are divided by it and a
    token is drawn (seeded) from the ``top_k`` most likely (0 = all) within the smallest set whose probability
    reaches ``top_p``. ``stop``: tokens (as text) that end generation; they are not part of the output."""

    max_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple = ()

    def __post_init__(self):
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not math.isfinite(self.temperature) \
                or self.temperature < 0:
            raise ConfigError(f"temperature must be a number >= 0 (0 = greedy), got {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be an integer >= 0 (0 = no limit), got {self.top_k!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Sampler:
    """Picks the next token from a logits vector (in float64, so the choice does not depend on the board's
    float rounding beyond the logits themselves)."""

    def __init__(self, options: SamplingOptions):
        self.options = options
        self.rng = np.random.default_rng(options.seed)

    def __call__(self, logits: np.ndarray) -> int:
        logits = np.asarray(logits, np.float64).reshape(-1)
        if self.options.greedy:
            return int(np.argmax(logits))
        order = np.argsort(-logits, kind="stable")
        if self.options.top_k:
            order = order[: self.options.top_k]
        scaled = logits[order] / self.options.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if self.options.top_p < 1:
            keep = int(np.searchsorted(np.cumsum(probs), self.options.top_p)) + 1  # smallest set reaching top_p
            probs = probs[:keep] / probs[:keep].sum()
            order = order[:keep]
        pick = int(np.searchsorted(np.cumsum(probs), self.rng.random() * probs.sum(), side="right"))
        return int(order[min(pick, len(order) - 1)])


@dataclass(frozen=True)
class GeneratedToken:
    """One generated token as it streams out: its id, text, index and time since generation started (ms)."""

    id: int
    text: str
    index: int
    elapsed_ms: float


@dataclass
class GenerationResult:
    """A whole generation: text, token ids, why it stopped (``stop``, ``length``, ``context``) and timings.

    ``ttft_ms``: prompt in -> first token out (prefill + sampling); ``decode_tokens_per_s``: tokens after the
    first over the decode steps' time."""

    prompt: str
    text: str
    tokens: list
    prompt_tokens: int
    stop_reason: str
    ttft_ms: float
    prefill_ms: float
    decode_ms: float
    decode_steps: int
    where: str = "host"

    @property
    def decode_tokens_per_s(self) -> Optional[float]:
        return self.decode_steps / (self.decode_ms / 1e3) if self.decode_steps and self.decode_ms > 0 else None

    def to_json(self) -> dict:
        data = asdict(self)
        data["decode_tokens_per_s"] = self.decode_tokens_per_s
        return data


class Generation:
    """An iterator of :class:`GeneratedToken` (streaming); ``result`` is the :class:`GenerationResult` once it
    is exhausted. Built by :meth:`LanguageModel.stream`."""

    def __init__(self, model: "LanguageModel", prompt: str, options: SamplingOptions):
        self.result: Optional[GenerationResult] = None
        self._tokens = model._run(prompt, options, self)

    def __iter__(self) -> Iterator[GeneratedToken]:
        return self._tokens

    def __next__(self) -> GeneratedToken:
        return next(self._tokens)

    def finish(self) -> GenerationResult:
        """Run to the end (if not yet) and return the result."""
        for _ in self._tokens:
            pass
        return self.result


class LanguageModel:
    """A loaded LM artifact: the prefill and decode libraries (each a verified :class:`~.loader.Model`) and
    the tokenizer. ``session``: a TVM RPC session, to run on a remote board (the caches then live there).

    Other keyword arguments are :class:`~.loader.Model`'s (``verify``, ``trust``, ``decrypt``, ...)."""

    def __init__(self, path, device: str = "cpu", session=None, where: str = "host", **load_options):
        from .loader import Model
        from .weights import Weights

        self.path = Path(path)
        self.lm = LMManifest.read(self.path)
        manifests = self.lm.check(self.path)
        self.tokenizer = Tokenizer.from_json(self.lm.tokenizer)
        # One copy of the weights for both graphs: what either library needs, loaded once (by the first Model to
        # use it, on its device) and shared.
        self.weights = None
        if self.lm.weights is not None:
            names = [n for g in GRAPHS for n in (manifests[g].weights or {}).get("names", [])]
            self.weights = Weights(self.path / self.lm.weights["file"], names)
        self.prefill = Model(self.path / "prefill", device=device, session=session, weights=self.weights,
                             **load_options)
        self.decode = Model(self.path / "decode", device=device, session=session, weights=self.weights,
                            **load_options)
        self.where = where
        self._check_io()
        updated = set(self.decode.manifest.build.updated_in_place or ())
        self._in_place = [(past, present) for past, present in self.lm.cache if past in updated]

    def _check_io(self) -> None:
        P, names = self.lm.prefill_length, {s.name: s for s in self.decode.inputs}
        pre = {s.name: s for s in self.prefill.inputs}
        expected = [(pre, "tokens", (1, P), "int64"), (pre, "length", (1,), "int64"),
                    (names, "tokens", (1, 1), "int64"), (names, "position", (1,), "int64")]
        for specs, name, shape, dtype in expected:
            spec = specs.get(name)
            if spec is None or tuple(spec.shape) != shape or spec.dtype != dtype:
                raise ArtifactError(f"{self.path}: an LM graph needs input '{name}' {shape} {dtype}")
        outputs = {s.name for s in self.decode.outputs}
        for past, present in self.lm.cache:
            if past not in names or present not in outputs or present not in {s.name for s in self.prefill.outputs}:
                raise ArtifactError(f"{self.path}: KV-cache pair {past} -> {present} is not in both graphs' IO")

    @property
    def context(self) -> int:
        return self.lm.context

    def encode(self, prompt: str) -> list:
        """Prompt ids, checked against the context (InputError for an empty or too long prompt)."""
        ids = self.tokenizer.encode(prompt)
        if not ids:
            raise InputError("prompt is empty; give at least one token")
        if len(ids) >= self.context:
            raise InputError(f"prompt is {len(ids)} tokens; the model's context is {self.context}, so at most "
                             f"{self.context - 1} prompt tokens leave room to generate")
        return ids

    def stream(self, prompt: str, options: Optional[SamplingOptions] = None, **sampling) -> Generation:
        """Generate token by token: an iterator of :class:`GeneratedToken` (see :class:`SamplingOptions` for
        ``sampling``). Bad options or prompt fail here, before anything runs."""
        options = options or SamplingOptions(**sampling)
        self.encode(prompt)
        for stop in options.stop:
            self.tokenizer.token(stop)
        return Generation(self, prompt, options)

    def generate(self, prompt: str, options: Optional[SamplingOptions] = None, **sampling) -> GenerationResult:
        """Generate to the end -> :class:`GenerationResult`."""
        return self.stream(prompt, options, **sampling).finish()

    def _step(self, token: int, position: int, cache: dict) -> dict:
        """One decode step: the caches go in as the tensors the previous step returned (they stay on the device)."""
        tensors = {"tokens": self.decode.tensor(np.array([[token]], np.int64)),
                   "position": self.decode.tensor(np.array([position], np.int64)), **cache}
        # caches the graph updates in place come back as the very tensors passed in (not fetched again)
        known = {present: cache[past] for past, present in self._in_place}
        return self.decode.run_stage(0, tensors, known=known)

    def _caches(self, out: dict) -> dict:
        return {past: out[present] for past, present in self.lm.cache}

    def _run(self, prompt: str, options: SamplingOptions, generation: Generation) -> Iterator[GeneratedToken]:
        ids = self.encode(prompt)
        stops = {self.tokenizer.token(s) for s in options.stop}
        sampler, P = Sampler(options), self.lm.prefill_length
        start = time.perf_counter()
        first = ids[:P]
        padded = np.zeros((1, P), np.int64)
        padded[0, : len(first)] = first
        out = self.prefill.run_stage(0, {"tokens": self.prefill.tensor(padded),
                                         "length": self.prefill.tensor(np.array([len(first)], np.int64))})
        for position in range(len(first), len(ids)):  # a prompt longer than the prefill graph: the rest by decode
            out = self._step(ids[position], position, self._caches(out))
        token = sampler(out["logits"].numpy())  # the only copy back per token: V logits
        prefill_ms = ttft_ms = (time.perf_counter() - start) * 1e3
        generated, position, reason, decode_start = [], len(ids), "length", time.perf_counter()
        while True:
            if token in stops:
                reason = "stop"
                break
            generated.append(token)
            yield GeneratedToken(token, self.tokenizer.decode([token]), len(generated) - 1,
                                 (time.perf_counter() - start) * 1e3)
            if len(generated) >= options.max_tokens:
                break
            if position >= self.context:
                reason = "context"
                break
            out = self._step(token, position, self._caches(out))
            position += 1
            token = sampler(out["logits"].numpy())
        decode_ms = (time.perf_counter() - decode_start) * 1e3
        generation.result = GenerationResult(
            prompt=prompt, text=self.tokenizer.decode(generated), tokens=generated, prompt_tokens=len(ids),
            stop_reason=reason, ttft_ms=ttft_ms, prefill_ms=prefill_ms, decode_ms=decode_ms,
            decode_steps=position - len(ids), where=self.where)


def load_lm(path, device: str = "cpu", session=None, **load_options) -> LanguageModel:
    """Load an LM artifact folder; see :class:`LanguageModel`."""
    return LanguageModel(path, device=device, session=session, **load_options)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m tvmedge.runtime.lm ARTIFACT --prompt TEXT [--max-tokens N ...] [--json]`` (board side)."""
    import argparse
    import sys

    from ..errors import TvmedgeError

    parser = argparse.ArgumentParser(prog="python -m tvmedge.runtime.lm", description="Generate text with an LM artifact.")
    parser.add_argument("artifact")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop", action="append", default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        options = SamplingOptions(max_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, seed=args.seed, stop=tuple(args.stop))
        generation = load_lm(args.artifact).stream(args.prompt, options)
        for token in generation:
            if not args.json:
                print(token.text, end="", flush=True)
        result = generation.result
    except TvmedgeError as err:
        print(f"Error: {' '.join(str(err).split())}", file=sys.stderr)
        return err.exit_code
    print(json.dumps(result.to_json()) if args.json else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
