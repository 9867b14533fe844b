"""``serve``: check the options, load the models, listen, run uvicorn until SIGINT/SIGTERM, unload, return.

The socket is bound here (not by uvicorn) so that a busy port is a one-line ServeError and ``port=0`` reports
the port it got. uvicorn then shuts down gracefully on a signal: it stops accepting, lets running requests
finish, and the registry unloads every model.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from typing import Callable, Optional

from ..errors import ServeError, TvmedgeError, first_line
from .memory import rss_bytes
from .options import ServeOptions
from .registry import ModelRegistry

__all__ = ["serve", "start_registry", "listen"]


def start_registry(options: ServeOptions) -> tuple:
    """The registry with its start-up models loaded: the offline profile's, or every model under the directory.

    Returns ``(registry, summary)``; the summary records start-up time, RSS before and after loading, and the
    models skipped because they failed verification (offline, a profile model that fails stops the start).
    """
    options.check()
    begin, rss_start = time.perf_counter(), rss_bytes()
    registry = ModelRegistry(options.models, allowed=options.allowed(), loader=options.loader())
    loaded, skipped = [], {}
    for name in registry.available():
        try:
            loaded.append(registry.load(name)["name"])
        except Exception as err:  # noqa: BLE001 - whatever a bad artifact raises, the others are still served
            if options.offline and isinstance(err, TvmedgeError):
                raise
            skipped[name] = _reason(err)

    return registry, {"models_dir": str(registry.root), "offline": options.offline, "loaded": loaded, "skipped": skipped,
                      "token_required": bool(options.token), "load_s": time.perf_counter() - begin,
                      "rss_before_load_bytes": rss_start, "rss_bytes": rss_bytes()}


def _reason(err: Exception) -> str:
    """One line saying why a model could not be loaded (a TvmedgeError's own message, else the error's kind)."""
    if isinstance(err, TvmedgeError):
        return str(err)
    return f"cannot be loaded ({type(err).__name__}: {first_line(err, 200)})"


def listen(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket; ServeError naming the address if it cannot be bound."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as err:
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    return sock


def serve(options: ServeOptions, on_ready: Optional[Callable[[dict], None]] = None) -> dict:
    """Run the service until interrupted; ``on_ready(summary)`` is called once it accepts connections.

    Raises
    ------
    ServeError
        Unsafe options, a bad offline profile, a busy port, or the web extra not installed.
    ArtifactError
        A start-up model fails verification.
    """
    try:
        import uvicorn

        from .app import create_app
        from .limits import guarded_protocol
    except ImportError as err:
        raise ServeError(f"the model service needs the web extra ({err.name} is missing): pip install 'tvmedge[serve]'") from err
    registry, summary = start_registry(options)
    try:
        sock = listen(options.host, options.port)
        host, port = sock.getsockname()[:2]
        summary["url"] = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        # no limit_concurrency: it counts half-open sockets too (64 of them starved every client); requests in flight
        # are limited by the app's guard, slow and half-open sockets by the protocol's deadlines
        protocol = guarded_protocol(options.header_timeout, options.max_pending_per_client,
                                    max_open=16 * options.max_connections)
        config = uvicorn.Config(create_app(registry, options), log_level="warning", lifespan="off", server_header=False,
                                http=protocol, timeout_keep_alive=5)

        class _Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets)
                if self.started and on_ready is not None:
                    on_ready(dict(summary, rss_bytes=rss_bytes()))

        with _stop_on_sigterm():
            _Server(config).run(sockets=[sock])
    except (KeyboardInterrupt, _Stop):  # uvicorn has shut down gracefully, then re-raised the signal
        pass
    finally:
        registry.close(options.drain_timeout)
    return summary


class _Stop(Exception):
    """SIGTERM, turned into an exception so that the registry is closed and the command exits 0."""


@contextlib.contextmanager
def _stop_on_sigterm():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
