"""``tvmedge board setup``: build (once, cached) an emulated board that runs artifacts under qemu-user."""

import click

from ._options import json_option
from ._output import emit


@click.group("board")
def board():
    """Emulated boards (qemu-user + the board's Python + TVM's runtime, no compiler)."""


@board.command("setup")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild even if a cached board exists.")
@json_option
def setup_cmd(name, force, as_json):
    """Build the emulated board for NAME (e.g. rk3588); cached per architecture."""
    from ..devices.board import load_board
    from ..devices.emulator import setup_board

    progress = None if as_json else (lambda message: click.echo(f"  {message}", err=True))
    emulated = setup_board(load_board(name), progress=progress, force=force)
    data = {"board": name, "arch": emulated.arch, "root": str(emulated.root)}
    emit(data, as_json, lambda d: click.echo(f"emulated {d['arch']} board for {d['board']} ready at {d['root']}"))
