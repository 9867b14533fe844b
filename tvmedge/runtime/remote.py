"""Remote boards through TVM's own RPC: a session to one server (``HOST:PORT``) or to a board of a kind
registered with TVM's tracker (``HOST:PORT`` + key). Runtime side: ``tvm.rpc`` is part of TVM's runtime.

>>> from tvmedge.runtime import load
>>> from tvmedge.runtime.remote import connect, tracker_summary
>>> session, where = connect(rpc="192.168.1.20:9090")          # doctest: +SKIP
>>> load("out/", session=session).run(x)                        # doctest: +SKIP
>>> tracker_summary("127.0.0.1:9190")["keys"]                   # doctest: +SKIP
[{'key': 'rk3588', 'servers': 2, 'free': 2, 'pending': 0}]
"""

from __future__ import annotations

import socket
import struct
from typing import Optional

from ..errors import ConfigError, TvmedgeError, first_line

__all__ = ["connect", "tracker_summary", "parse_address"]


def parse_address(text: str, what: str = "address") -> tuple:
    """``"127.0.0.1:9190"`` -> ``("127.0.0.1", 9190)``: the one parser of the ``HOST:PORT`` of RPC servers and
    trackers. ConfigError ``<what> '<text>' must look like HOST:PORT`` for anything else."""
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{what} '{text}' must look like HOST:PORT")
    return host, int(port)


def connect(rpc: Optional[str] = None, tracker: Optional[str] = None, key: Optional[str] = None,
            timeout: float = 600) -> tuple:
    """``(RPC session, description)`` for ``rpc="HOST:PORT"`` or ``tracker="HOST:PORT"`` plus ``key``."""
    from tvm import rpc as tvm_rpc

    if rpc and tracker:
        raise ConfigError("give --rpc or --tracker, not both")
    if tracker and not key:
        raise ConfigError("--tracker needs --key, the name the boards registered under (e.g. rk3588)")
    try:
        if rpc:
            host, port = parse_address(rpc, "--rpc")
            return tvm_rpc.connect(host, port, session_timeout=timeout), f"rpc {rpc}"
        host, port = parse_address(tracker, "--tracker")
        _probe_tracker(host, port, 10)  # fail in seconds, not after TVM's minute of retries
        return tvm_rpc.connect_tracker(host, port).request(key, session_timeout=timeout), f"tracker {tracker} key {key}"
    except TvmedgeError:
        raise
    except Exception as err:  # socket errors, TVMError from the handshake
        raise TvmedgeError(f"cannot reach {'RPC server ' + rpc if rpc else 'tracker ' + tracker}: {first_line(err)}") from err


def _probe_tracker(host: str, port: int, timeout: float) -> None:
    """Fail fast (``OSError``/``RuntimeError``) unless a TVM tracker answers at ``host:port``.

    ``tvm.rpc.connect_tracker`` retries a refused connection for a minute and waits forever on a peer that
    never answers its handshake; this is the same handshake (TVM's tracker magic) with a timeout.
    """
    from tvm.rpc import base

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                break
            reply += chunk
        if not reply:
            raise RuntimeError("the connection closed before a TVM RPC tracker's handshake")
        if len(reply) != 4 or struct.unpack("<i", reply)[0] != base.RPC_TRACKER_MAGIC:
            raise RuntimeError("something answered, but not a TVM RPC tracker")


def tracker_summary(tracker: str, timeout: float = 10) -> dict:
    """What TVM's RPC tracker at ``tracker="HOST:PORT"`` knows (as ``python -m tvm.exec.query_rpc_tracker``).

    Returns ``{"tracker", "keys": [{"key", "servers", "free", "pending"}], "servers": [{"address", "key"}]}``:
    per key the servers registered, how many are free (a server serving a session is not) and the requests
    waiting for one; per server its address and key. Raises ``ConfigError`` for a malformed address and
    ``TvmedgeError`` when no tracker answers within ``timeout`` seconds.
    """
    from tvm import rpc as tvm_rpc

    host, port = parse_address(tracker, "--tracker")
    try:
        _probe_tracker(host, port, timeout)
        session = tvm_rpc.connect_tracker(host, port)
        try:
            sock = getattr(session, "_sock", None)
            if sock is not None:
                sock.settimeout(timeout)
            raw = session.summary()
        finally:
            session.close()
    except Exception as err:  # socket errors (refused, timeout, unknown host), a peer that is not a tracker
        text = "no answer (timed out)" if isinstance(err, TimeoutError) else first_line(err)
        raise TvmedgeError(f"cannot reach tracker {tracker}: {text}") from err
    servers = [{"address": ":".join(str(part) for part in item.get("addr", ("?", "?"))),
                "key": item["key"].partition(":")[2]}  # TVM's server registers as "server:<key>"
               for item in raw.get("server_info", [])]
    servers.sort(key=lambda s: (s["key"], s["address"]))
    counts: dict = {}
    for server in servers:
        counts[server["key"]] = counts.get(server["key"], 0) + 1
    queues = raw.get("queue_info", {})
    keys = [{"key": key, "servers": counts.get(key, 0), "free": queues.get(key, {}).get("free", 0),
             "pending": queues.get(key, {}).get("pending", 0)}
            for key in sorted(set(queues) | set(counts))]
    # like TVM's text summary: a key whose boards have all gone and that nobody waits for is not listed
    keys = [row for row in keys if row["servers"] or row["pending"] or row["free"]]
    return {"tracker": tracker, "keys": keys, "servers": servers}
