"""An RPC session to an emulated board for as long as a ``with`` block: TVM's RPC server started on the board
(the board's Python one on aarch64, ``tvmedge-rpc-server`` on riscv64) on a free loopback port, connected to,
and stopped on exit. What ``generate`` on an emulated board drives: the libraries and the KV cache live on
the board, the loop that picks tokens runs here (as a host driving a real board over RPC would)."""

from __future__ import annotations

import contextlib
import subprocess
import time

from ..errors import TvmedgeError

__all__ = ["board_session"]


@contextlib.contextmanager
def board_session(emulated, *, start_timeout: float = 600.0, session_timeout: float = 3600.0):
    """``(session, where)`` for the emulated board ``emulated`` while the block runs."""
    from ..runtime.remote import connect
    from .rack import free_ports

    port = free_ports(1)[0]
    server = emulated.serve_rpc(port=port, stdout=subprocess.DEVNULL)  # no key: a direct session, no tracker
    try:
        deadline = time.monotonic() + start_timeout
        while True:  # an emulated server takes seconds to start
            try:
                session, _ = connect(rpc=f"127.0.0.1:{port}", timeout=session_timeout)
                break
            except TvmedgeError:
                if server.poll() is not None:
                    raise TvmedgeError(f"the RPC server of emulated {emulated.board.name} exited with code "
                                       f"{server.returncode}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield session, f"emu:{emulated.board.name}"
    finally:
        server.kill()
        server.wait()
