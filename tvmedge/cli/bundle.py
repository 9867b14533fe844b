"""``tvmedge bundle``: the runtime a board needs to run artifacts, as one archive (no TVM compiler in it)."""

import click

from ._options import json_option
from ._output import emit


@click.command("bundle")
@click.option("--board", "board_name", required=True, help="Board to bundle for (name or YAML), e.g. rk3588.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Archive to write: .tar.gz, .tgz or .tar.xz (smallest). [default: tvmedge-runtime-BOARD.tar.xz]")
@click.option("--loader", type=click.Choice(["python", "cpp"]), default=None,
              help="python: the board's python3 runs tvmedge.runtime; cpp: the C++ loader, no Python needed. "
                   "[default: python where a TVM wheel exists for the arch, else cpp]")
@json_option
def bundle_cmd(board_name, output, loader, as_json):
    """Write the runtime bundle for BOARD: TVM's runtime library, tvm-ffi and tvmedge's loader."""
    from .. import api

    progress = None if as_json else (lambda message: click.echo(f"  {message}", err=True))
    emit(api.bundle(board_name, output, loader=loader, progress=progress).info, as_json, _render)


def _render(info):
    click.echo(f"wrote {info['path']}: {info['kind']} runtime bundle for {info['board']} ({info['arch']}), "
               f"{info['files']} files")
    click.echo(f"  size: {info['compressed_bytes'] / 1e6:.1f} MB compressed, "
               f"{info['uncompressed_bytes'] / 1e6:.1f} MB unpacked (no TVM compiler library in it)")
    click.echo(f"  on the board: tar xf {info['path'].rsplit('/', 1)[-1]} && {info['run']}")
