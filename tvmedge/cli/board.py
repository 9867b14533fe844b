"""``tvmedge board``: build (once, cached) an emulated board that runs artifacts under qemu-user, serve TVM's RPC
on it, and list the boards registered with TVM's RPC tracker."""

import click

from ._options import json_option
from ._output import emit, table


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (kill, systemd, timeout) stops a long-running board command the way Ctrl-C does, so the board
    processes it started are stopped too instead of being left running."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.group("board")
def board():
    """Emulated boards under qemu-user: aarch64 with the board's Python + TVM's runtime (no compiler), riscv64
    with TVM's runtime cross-built from the wheel's sources + the C++ loader."""


@board.command("setup")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild even if a cached board exists.")
@json_option
def setup_cmd(name, force, as_json):
    """Build the emulated board for NAME (e.g. rk3588); cached per architecture."""
    from .. import api

    progress = None if as_json else (lambda message: click.echo(f"  {message}", err=True))
    emulated = api.setup_board(name, progress=progress, force=force)
    data = {"board": name, "arch": emulated.arch, "root": str(emulated.root),
            "loader": emulated.loader_kind}
    emit(data, as_json, lambda d: click.echo(f"emulated {d['arch']} board for {d['board']} ready at {d['root']} "
                                             f"({d['loader']} loader)"))


@board.command("serve")
@click.argument("board_spec", metavar="emu:NAME")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=9090, show_default=True)
@click.option("--tracker", metavar="HOST:PORT", help="Register with TVM's RPC tracker.")
@click.option("--key", help="Key to register under (default: the board name).")
def serve_cmd(board_spec, host, port, tracker, key):
    """Run TVM's RPC server on an emulated board (for `tune --tracker` / remote measurement)."""
    from .. import api

    _terminate_like_ctrl_c()
    raise SystemExit(api.serve_board(board_spec, host=host, port=port, tracker=tracker, key=key,
                                     on_start=lambda line: click.echo(line, err=True)))


@board.command("list")
@click.option("--tracker", metavar="HOST:PORT", required=True, help="TVM's RPC tracker to ask.")
@json_option
def list_cmd(tracker, as_json):
    """List the boards registered with TVM's RPC tracker: per key free/pending counts, and each server."""
    from .. import api

    emit(api.tracker_boards(tracker), as_json, _render_list)


def _render_list(d):
    click.echo(f"tracker {d['tracker']}")
    if not d["keys"]:
        click.echo("no boards registered (start some with `tvmedge board serve emu:NAME --tracker HOST:PORT`)")
        return
    click.echo(table([[k["key"], k["servers"], k["free"], k["pending"]] for k in d["keys"]],
                     ["key", "servers", "free", "pending"]))
    click.echo()
    click.echo(table([[s["address"], s["key"]] for s in d["servers"]], ["server", "key"]))


@board.command("rack")
@click.argument("names", nargs=-1, required=True, metavar="BOARD...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the tracker and the boards.")
@click.option("--port", type=int, default=9190, show_default=True, help="The tracker's port.")
def rack_cmd(names, host, port):
    """Start TVM's RPC tracker and one emulated board per BOARD (repeat a name for several), until Ctrl-C.

    \b
    tvmedge board rack rk3588 rk3588 visionfive2
    tvmedge run out/ --tracker 127.0.0.1:9190 --key rk3588
    tvmedge tune model.onnx --target visionfive2 --tracker 127.0.0.1:9190
    """
    from .. import api

    _terminate_like_ctrl_c()
    api.rack(names, host=host, port=port, progress=lambda message: click.echo(f"  {message}", err=True),
             on_ready=lambda rack: click.echo(f"tracker {rack.tracker}: " + ", ".join(
                 f"{n} x {k}" for k, n in rack.keys().items()) + " (Ctrl-C stops the rack)"))
