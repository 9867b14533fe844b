"""``ServeOptions``: how the model service runs, checked before anything listens. Stdlib only.

Security rules enforced here, before a socket is opened:

- the default bind is loopback (127.0.0.1); any other address needs a token (clients send
  ``Authorization: Bearer <token>``);
- ``offline`` serves loopback only and needs a profile: a JSON file ``{"models": ["name", ...]}`` naming the
  only models it loads (default ``<models>/offline.json``).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ServeError

__all__ = ["ServeOptions", "is_loopback", "read_profile", "DEFAULT_MAX_BODY", "PROFILE_NAME"]

DEFAULT_MAX_BODY = 16 << 20  # 16 MiB: a 1x3x224x224 float32 image is 0.6 MB as .npy and ~4 MB as JSON
PROFILE_NAME = "offline.json"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for 0.0.0.0, :: and names."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeOptions:
    """Settings of ``tvmedge serve``.

    Parameters
    ----------
    models : Path
        Directory of artifacts, one sub-directory per model; nothing outside it is served.
    host, port : str, int
        Where to listen; port 0 picks a free port (reported once listening).
    token : str, optional
        Bearer token every request but ``/healthz`` must carry; required for a non-loopback ``host``.
    offline : bool
        Start with only the profile's models, refuse others, no network-facing extras (see :func:`create_app`).
    profile : Path, optional
        Offline profile (default ``<models>/offline.json``).
    max_body : int
        Largest request body in bytes (413 above it); also bounds what an ``.npz`` body may expand to.
    drain_timeout : float
        Seconds an unload waits for running requests before giving up (503).
    max_connections : int
        Requests in flight (headers received, not yet answered) before the service answers 503.
    max_per_client : int
        Requests in flight from one client address before it gets 429.
    header_timeout, body_timeout : float
        Seconds a client has to send a request's headers (else the connection is closed) and then its body
        (else 408): slow or half-open clients cannot hold the service (see :mod:`tvmedge.serve.limits`).
    max_pending_per_client : int
        Connections of one address still sending their headers; a new one closes the oldest.
    """

    models: Path
    host: str = "127.0.0.1"
    port: int = 8080
    token: Optional[str] = None
    offline: bool = False
    profile: Optional[Path] = None
    max_body: int = DEFAULT_MAX_BODY
    drain_timeout: float = 30.0
    max_connections: int = 64
    max_per_client: int = 16
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_pending_per_client: int = 32
    trust: Optional[tuple] = None  # public key files/folders every model must be signed by ($TVMEDGE_TRUSTED_KEYS)

    def loader(self):
        """``path -> Model`` that loads with the trusted keys (read once, here), or None for the default."""
        from functools import partial

        from ..runtime import load
        from ..runtime.trust import trusted_keys

        keys = trusted_keys(self.trust)
        return None if keys is None else partial(load, trust=keys)

    def check(self) -> None:
        """ServeError (one line) when the settings are unsafe or inconsistent."""
        if self.token is not None and len(self.token) < 16:
            raise ServeError("token is shorter than 16 characters; use e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`")
        if self.offline and not is_loopback(self.host):
            raise ServeError(f"offline mode serves loopback only; drop --host {self.host} or --offline")
        if not is_loopback(self.host) and not self.token:
            raise ServeError(f"binding to {self.host} exposes the service beyond this machine; pass --token "
                             "(or TVMEDGE_SERVE_TOKEN) so clients must authenticate")
        if not (self.header_timeout > 0 and self.body_timeout > 0):
            raise ServeError("header and body timeouts must be positive numbers of seconds")
        if min(self.max_connections, self.max_per_client, self.max_pending_per_client) < 1:
            raise ServeError("connection limits must be at least 1")
        if self.max_body < 1024:
            raise ServeError(f"max body of {self.max_body} bytes is too small; use at least 1024")

    def allowed(self) -> Optional[list]:
        """The offline profile's model names, or None (every model under ``models``) when not offline."""
        if not self.offline:
            return None
        return read_profile(self.profile or Path(self.models) / PROFILE_NAME)


def read_profile(path) -> list:
    """Model names from a profile file ``{"models": [...]}``; ServeError on a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ServeError(f'offline mode needs a profile: {path} not found; write {{"models": ["name", ...]}} there or pass --profile')
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ServeError(f"profile {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or set(data) != {"models"} or not isinstance(data["models"], list) \
            or not all(isinstance(n, str) for n in data["models"]):
        raise ServeError(f'profile {path} must be {{"models": ["name", ...]}} and nothing else')
    return list(data["models"])
