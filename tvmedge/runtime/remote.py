"""Remote boards through TVM's own RPC: a session to one server (``HOST:PORT``) or to a board of a kind
registered with TVM's tracker (``HOST:PORT`` + key). Runtime side: ``tvm.rpc`` is part of TVM's runtime.

>>> from tvmedge.runtime import load
>>> from tvmedge.runtime.remote import connect
>>> session, where = connect(rpc="192.168.1.20:9090")          # doctest: +SKIP
>>> load("out/", session=session).run(x)                        # doctest: +SKIP
"""

from __future__ import annotations

from typing import Optional

from ..errors import ConfigError, TvmedgeError, first_line

__all__ = ["connect"]


def _address(text: str, what: str) -> tuple:
    host, _, port = text.rpartition(":")
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
            host, port = _address(rpc, "--rpc")
            return tvm_rpc.connect(host, port, session_timeout=timeout), f"rpc {rpc}"
        host, port = _address(tracker, "--tracker")
        return tvm_rpc.connect_tracker(host, port).request(key, session_timeout=timeout), f"tracker {tracker} key {key}"
    except TvmedgeError:
        raise
    except Exception as err:  # socket errors, TVMError from the handshake
        raise TvmedgeError(f"cannot reach {'RPC server ' + rpc if rpc else 'tracker ' + tracker}: {first_line(err)}") from err
