"""A rack of emulated boards behind TVM's RPC tracker, on loopback: what a lab with real boards looks like.

TVM's own tracker (``tvm.rpc.tracker.Tracker``) and each board's TVM RPC server (:meth:`serve_rpc` of the
emulated boards: the Python one on aarch64, ``tvmedge-rpc-server`` on riscv64), registered under the board's
name as key. Clients use TVM's protocol unchanged: ``tvmedge run --tracker``, ``tvmedge tune --tracker``,
``tvm.rpc.connect_tracker(...).request(key)``.

>>> from tvmedge.emulator.rack import emulated_rack
>>> with emulated_rack(["rk3588", "rk3588", "visionfive2"]) as rack:       # doctest: +SKIP
...     api.run("out/", tracker=rack.tracker, key="rk3588")
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from ..devices.board import load_board
from ..errors import ConfigError, TvmedgeError, first_line

__all__ = ["Rack", "RackBoard", "emulated_rack", "free_ports"]


@dataclass
class RackBoard:
    name: str
    key: str
    port: int
    process: subprocess.Popen
    log: Path
    log_handle: object = None


@dataclass
class Rack:
    """A running rack: the tracker's ``HOST:PORT`` and the boards registered with it."""

    tracker: str
    boards: list = field(default_factory=list)

    def keys(self) -> dict:
        """{key: number of boards}."""
        return dict(Counter(board.key for board in self.boards))

    def wait(self, poll_s: float = 1.0) -> None:
        """Block while every board runs: return at Ctrl-C (KeyboardInterrupt), raise TvmedgeError naming the
        first board whose server stopped. :func:`emulated_rack` stops the rest on the way out."""
        try:
            while all(board.process.poll() is None for board in self.boards):
                time.sleep(poll_s)
        except KeyboardInterrupt:
            return
        gone = next(board for board in self.boards if board.process.poll() is not None)
        raise TvmedgeError(f"emulated board {gone.name} stopped ({_last_line(gone.log)}); stopping the rack")


def free_ports(count: int, host: str = "127.0.0.1") -> list:
    """``count`` distinct free ports on ``host`` (all sockets held open together, so none is returned twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def emulated_rack(boards: Sequence[str], *, host: str = "127.0.0.1", tracker_port: Optional[int] = None,
                  timeout: float = 300, progress: Optional[Callable[[str], None]] = None) -> Iterator[Rack]:
    """Start TVM's tracker and one emulated board per name in ``boards`` (a name may repeat), wait until every
    board has registered, yield the :class:`Rack`, and stop everything on exit.

    Raises
    ------
    ConfigError
        No boards, or a board that cannot be emulated (x86_64, unknown).
    TvmedgeError
        A board's server exited or did not register within ``timeout`` seconds (its log's last line is given).
    """
    from tvm.rpc.tracker import Tracker

    from ..runtime.remote import tracker_summary
    from . import setup_board

    if not boards:
        raise ConfigError("a rack needs at least one board, e.g. rk3588 visionfive2")
    say = progress or (lambda message: None)
    if tracker_port:
        _check_port_free(host, tracker_port)
    emulated = [setup_board(load_board(name), progress=say) for name in boards]  # builds what is missing first
    port = tracker_port or free_ports(1, host)[0]
    try:
        tracker = Tracker(host=host, port=port, port_end=port + 1 if tracker_port else port + 100, silent=True)
    except Exception as err:  # TVM re-raises its worker's error (e.g. the port is taken) with a traceback text
        raise TvmedgeError(f"cannot start TVM's tracker on {host}:{port}: {first_line(err)}") from err
    rack = Rack(tracker=f"{host}:{tracker.port}")
    logs = tempfile.TemporaryDirectory(prefix="tvmedge-rack-")
    try:
        for board, server_port in zip(emulated, free_ports(len(emulated), host)):
            log = Path(logs.name) / f"{board.board.name}-{server_port}.log"
            handle = open(log, "w")
            process = board.serve_rpc(host=host, port=server_port, tracker=rack.tracker, key=board.board.name,
                                      stdout=handle)
            rack.boards.append(RackBoard(board.board.name, board.board.name, server_port, process, log, handle))
            say(f"board {board.board.name} ({board.arch}) starting on {host}:{server_port}")
        wanted = rack.keys()
        deadline = time.monotonic() + timeout
        while True:
            for board in rack.boards:
                if board.process.poll() is not None:
                    raise TvmedgeError(f"emulated board {board.name} stopped while starting: {_last_line(board.log)}")
            try:
                free = {row["key"]: row["free"] for row in tracker_summary(rack.tracker)["keys"]}
            except TvmedgeError:
                free = {}
            if all(free.get(key, 0) >= count for key, count in wanted.items()):
                break
            if time.monotonic() > deadline:
                raise TvmedgeError(f"the rack's boards did not all register with the tracker within {timeout:g} s "
                                   f"(registered: {free})")
            time.sleep(0.5)
        say(f"tracker {rack.tracker}: " + ", ".join(f"{count} x {key}" for key, count in wanted.items()))
        yield rack
    finally:
        for board in rack.boards:
            _stop(board.process)
            board.log_handle.close()
        tracker.terminate()
        logs.cleanup()


def _check_port_free(host: str, port: int) -> None:
    """Refuse a taken port up front: TVM's Tracker fails in its worker process and then prints a traceback
    from its own ``__del__`` (a half-built object), which no caller can catch."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TVM's tracker binds (TIME_WAIT is fine)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise TvmedgeError(f"cannot start TVM's tracker on {host}:{port}: {err.strerror} (another tracker "
                               "running? pick another --port)") from err


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return "<no log>"
    return lines[-1][:300] if lines else "<empty log>"
