"""``ModelRegistry``: the artifacts under one directory, loaded and unloaded while requests run.

Stdlib and :mod:`tvmedge.runtime` only (no web framework), so any front end can drive it and tests can use it
alone. A model's life::

    available --load--> loading --> ready --unload--> draining --(admitted requests done)--> available

Requests are admitted only while a model is ``ready``. An unload stops admitting at once, waits for every
request already admitted (running, or queued on the model's lock) and only then drops the model: no admitted
request is cut off, and a request that arrives meanwhile is refused with a clear reason (503, retry later).

>>> registry = ModelRegistry("models/")          # one artifact directory per model: models/<name>/manifest.json
>>> registry.load("tiny_cnn")["state"]
'ready'
>>> registry.infer("tiny_cnn", {"input": x})["probabilities"].shape
(1, 10)
>>> registry.unload("tiny_cnn")["rss_freed_bytes"] >= 0
True
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..errors import ArtifactError, ServeError, first_line
from ..runtime import load as load_artifact
from ..runtime.lm import LM_MANIFEST, LanguageModel, LMManifest, SamplingOptions, is_lm_artifact, load_lm
from ..runtime.manifest import MANIFEST_NAME, Manifest
from ..runtime.pipeline import PipelineExecutor, is_pipelined
from .memory import release_memory, rss_bytes

__all__ = ["ModelRegistry", "check_name", "NAME_RULE"]

NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name) -> str:
    """Return ``name`` if it is a safe model name (one directory level, no traversal); else ServeError 400."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        shown = repr(name[:80] if isinstance(name, str) else name)
        raise ServeError(f"invalid model name {shown}: use {NAME_RULE}", status=400)
    return name


@dataclass
class _Entry:
    """One model that is loading, ready or draining. Guarded by the registry's condition."""

    state: str
    model: object = None
    in_flight: int = 0
    served: int = 0
    run_lock: threading.Lock = field(default_factory=threading.Lock)  # the TVM VM is not re-entrant
    # a throughput-partitioned artifact runs its stages as a pipeline: concurrent requests overlap stages
    pipeline: object = None


class ModelRegistry:
    """The models under ``root`` (one artifact directory each), loaded on demand.

    Parameters
    ----------
    root : str or Path
        Directory whose sub-directories are artifacts; only these are ever loaded.
    allowed : iterable of str, optional
        If given (the offline profile), the only names that may be listed and loaded.
    loader : callable, optional
        ``loader(path) -> model`` with ``.inputs``, ``.outputs`` and ``.run(dict) -> dict``; default
        :func:`tvmedge.runtime.load`, which verifies the manifest and hashes before loading native code (for an
        LM artifact, :func:`tvmedge.runtime.load_lm`: both graphs verified the same way).

    Raises
    ------
    ServeError
        ``root`` is not a directory, or ``allowed`` names an invalid or missing model.
    """

    def __init__(self, root, *, allowed: Optional[Iterable[str]] = None, loader: Optional[Callable] = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ServeError(f"models directory {root} does not exist; pass a directory of compiled artifacts")
        self.allowed = None if allowed is None else frozenset(check_name(n) for n in allowed)
        self._loader = loader or _load_any
        self._cond = threading.Condition()
        self._entries: dict = {}
        for name in sorted(self.allowed or ()):
            self.path_of(name)  # a profile naming a missing model fails at start, not at first use

    # --- what exists -------------------------------------------------------------------------------
    def available(self) -> list:
        """Names of the artifacts under ``root`` (restricted to the offline profile if there is one)."""
        names = []
        for child in sorted(self.root.iterdir()):
            if _NAME.fullmatch(child.name) and ".." not in child.name and self._inside(child) \
                    and _is_artifact(child) and (self.allowed is None or child.name in self.allowed):
                names.append(child.name)
        return names

    def _inside(self, path: Path) -> bool:
        return path.resolve().parent == self.root  # a symlink to elsewhere is not "under DIR"

    def path_of(self, name: str) -> Path:
        """The artifact directory of ``name``; ServeError 400 (bad name), 403 (outside / not in profile) or 404."""
        check_name(name)
        path = self.root / name
        if self.allowed is not None and name not in self.allowed:
            raise ServeError(f"offline mode: model '{name}' is not in the profile ({', '.join(sorted(self.allowed))})", 403)
        if not path.exists():
            known = ", ".join(self.available()) or "none"
            raise ServeError(f"no model '{name}' under {self.root}; available: {known}", 404)
        if not self._inside(path):
            raise ServeError(f"model '{name}' links outside {self.root}; only artifacts under the models directory are served", 403)
        if not _is_artifact(path):
            raise ServeError(f"{path} has no {MANIFEST_NAME}; it is not a tvmedge artifact", 404)
        return path.resolve()

    def status(self) -> list:
        """One record per available or loaded model: name, state, inputs, outputs, in-flight and served counts."""
        with self._cond:
            live = {name: (e.state, e.in_flight, e.served) for name, e in self._entries.items()}
        records = []
        for name in sorted(set(self.available()) | set(live)):
            state, in_flight, served = live.get(name, ("available", 0, 0))
            record = {"name": name, "state": state, "in_flight": in_flight, "served": served}
            try:
                if is_lm_artifact(self.root / name):
                    lm = LMManifest.read(self.root / name)
                    record.update(kind="lm", context=lm.context, board=Manifest.read(self.root / name / "decode").board)
                    records.append(record)
                    continue
                manifest = Manifest.read(self.root / name)
                record.update(inputs=[s.to_json() for s in manifest.inputs], outputs=[s.to_json() for s in manifest.outputs],
                              board=manifest.board)
            except ArtifactError as err:
                record["error"] = str(err)
            except Exception as err:  # noqa: BLE001 - one unreadable manifest must not fail the whole listing
                record["error"] = f"manifest cannot be read ({type(err).__name__}: {first_line(err, 200)})"
            records.append(record)
        return records

    def loaded(self) -> list:
        with self._cond:
            return sorted(name for name, e in self._entries.items() if e.state == "ready")

    # --- load / unload -----------------------------------------------------------------------------
    def load(self, name: str) -> dict:
        """Load ``name`` (verified first); idempotent. Concurrent loads of one name wait for the first."""
        path = self.path_of(name)
        with self._cond:
            while name in self._entries and self._entries[name].state == "loading":
                self._cond.wait()
            entry = self._entries.get(name)
            if entry is not None and entry.state == "ready":
                return {"name": name, "state": "ready", "already_loaded": True}
            if entry is not None:
                raise ServeError(f"model '{name}' is being unloaded; load it again once the unload has returned", 409)
            entry = self._entries[name] = _Entry(state="loading")
        before, start = rss_bytes(), time.perf_counter()
        try:
            model = self._loader(path)
            manifest = getattr(model, "manifest", None)
            pipeline = PipelineExecutor(model) if manifest is not None and is_pipelined(manifest) else None
        except BaseException:
            with self._cond:
                del self._entries[name]
                self._cond.notify_all()
            raise
        with self._cond:
            entry.model, entry.pipeline, entry.state = model, pipeline, "ready"
            self._cond.notify_all()
        return {"name": name, "state": "ready", "already_loaded": False, "load_ms": (time.perf_counter() - start) * 1e3,
                "rss_before_bytes": before, "rss_after_bytes": rss_bytes()}

    def unload(self, name: str, timeout: float = 30.0) -> dict:
        """Stop admitting requests for ``name``, wait up to ``timeout`` s for the admitted ones, then free it.

        Raises ServeError 404 if there is no such model, 409 if it is not loaded or already unloading, 503 if
        requests still run after ``timeout`` (the model then stays loaded and admits requests again).
        """
        check_name(name)
        start = time.perf_counter()
        with self._cond:
            while name in self._entries and self._entries[name].state == "loading":
                self._cond.wait()
            entry = self._entries.get(name)
            if entry is None:
                self.path_of(name)  # 404 / 403 when there is no such artifact at all
                raise ServeError(f"model '{name}' is not loaded", 409)
            if entry.state == "draining":
                raise ServeError(f"model '{name}' is already being unloaded", 409)
            entry.state, drained = "draining", entry.in_flight
            deadline = start + timeout
            while entry.in_flight:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    entry.state = "ready"
                    self._cond.notify_all()
                    raise ServeError(f"model '{name}' still has {entry.in_flight} running request(s) after {timeout:g} s; "
                                     "unload cancelled, try again", 503)
                self._cond.wait(remaining)
            del self._entries[name]
            self._cond.notify_all()
        waited = (time.perf_counter() - start) * 1e3
        release_memory()  # first return what is already free, so the difference below is this model alone
        before = rss_bytes()
        if entry.pipeline is not None:
            entry.pipeline.close()
            entry.pipeline = None
        entry.model = None  # the last reference: the VM, its module and the dlopen'ed library go with it
        release_memory()
        after = rss_bytes()
        freed = before - after if before is not None and after is not None else None
        return {"name": name, "state": "available", "drained_requests": drained, "waited_ms": waited,
                "rss_before_bytes": before, "rss_after_bytes": after, "rss_freed_bytes": freed}

    def close(self, timeout: float = 30.0) -> None:
        """Unload every model (at shutdown)."""
        for name in self.loaded():
            try:
                self.unload(name, timeout)
            except ServeError:
                pass

    # --- requests ----------------------------------------------------------------------------------
    @contextmanager
    def use(self, name: str):
        """Admit one request on ``name`` and yield its model; ServeError 409/503/404 if it cannot be admitted."""
        check_name(name)
        with self._cond:
            entry = self._entries.get(name)
            if entry is not None and entry.state == "ready":
                entry.in_flight += 1
            else:
                entry = None
                state = self._entries[name].state if name in self._entries else None
        if entry is None:
            raise self._refusal(name, state)
        try:
            yield entry
        finally:
            with self._cond:
                entry.in_flight -= 1
                entry.served += 1
                if entry.in_flight == 0:
                    self._cond.notify_all()

    def _refusal(self, name: str, state: Optional[str]) -> ServeError:
        if state == "loading":
            return ServeError(f"model '{name}' is still loading; retry shortly", 503)
        if state == "draining":
            return ServeError(f"model '{name}' is being unloaded and takes no new requests; retry after it is loaded again", 503)
        self.path_of(name)  # 404 / 403 when there is no such artifact
        return ServeError(f"model '{name}' is not loaded; POST /v1/models/{name}/load first", 409)

    def infer(self, name: str, inputs) -> dict:
        """Run ``name`` once; returns ``{output name: array}``.

        Parameters
        ----------
        name : str
            A loaded model.
        inputs : dict or callable
            ``{input name: array}``, or ``decode(input specs) -> dict`` called once the request is admitted
            (a service decodes a request body against the model it will actually run).

        Raises
        ------
        InputError
            From the loader: wrong input name, shape or dtype.
        ServeError
            The model cannot take the request (see :meth:`use`).
        """
        with self.use(name) as entry:
            if isinstance(entry.model, LanguageModel):
                raise ServeError(f"model '{name}' is a language model; POST /v1/models/{name}/generate instead", 400)
            feed = inputs(entry.model.inputs) if callable(inputs) else inputs
            if entry.pipeline is not None:  # stages in their own threads: requests queue up, no global lock
                return entry.pipeline.submit(feed).result()
            with entry.run_lock:
                return entry.model.run(feed)

    def check_generate(self, name: str, prompt: str, options: SamplingOptions) -> None:
        """Refuse a generate request before its stream starts: ServeError (not loaded, not an LM) or InputError
        (bad prompt or stop token), as one line."""
        with self.use(name) as entry:
            if not isinstance(entry.model, LanguageModel):
                raise ServeError(f"model '{name}' is not a language model; POST /v1/models/{name}/infer instead", 400)
            entry.model.encode(prompt)
            for stop in options.stop:
                entry.model.tokenizer.token(stop)

    def generate(self, name: str, prompt: str, options: SamplingOptions):
        """Generate with the LM ``name``: yields each :class:`~tvmedge.runtime.lm.GeneratedToken`, then the
        :class:`~tvmedge.runtime.lm.GenerationResult`. The request is admitted (an unload waits for it) and holds
        the model for the whole generation: its KV cache is one request's."""
        with self.use(name) as entry:
            if not isinstance(entry.model, LanguageModel):
                raise ServeError(f"model '{name}' is not a language model; POST /v1/models/{name}/infer instead", 400)
            with entry.run_lock:
                generation = entry.model.stream(prompt, options)
                yield from generation
                yield generation.result


def _is_artifact(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file() or (path / LM_MANIFEST).is_file()


def _load_any(path):
    """An LM artifact as a :class:`~tvmedge.runtime.lm.LanguageModel`, any other as a ``Model``."""
    return load_lm(path) if is_lm_artifact(path) else load_artifact(path)
