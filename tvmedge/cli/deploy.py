"""``tvmedge deploy``: ship an artifact and the board's runtime to a board, verify the copy there."""

import click

from ._options import json_option
from ._output import emit


@click.command("deploy")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option("--to", "to", metavar="emu:NAME|DIR|USER@HOST:PATH", default=None,
              help="Where to: an emulated board's disk (emu:rk3588), a directory, or a real board over SSH "
                   "(rsync/scp).")
@click.option("--for-board", "board", metavar="NAME", default=None,
              help="Board whose runtime to ship (default: the artifact's).")
@click.option("--no-runtime", is_flag=True, help="Ship the artifact only (the runtime is already there).")
@click.option("--loader", type=click.Choice(["python", "cpp"]), default=None, help="Runtime kind (see `bundle`).")
@click.option("--check", is_flag=True, help="Run the artifact once at the destination with the shipped runtime.")
@click.option("--board", "old_to", metavar="emu:NAME", default=None, hidden=True, help="Deprecated: --to emu:NAME.")
@click.option("--as-board", "old_board", default=None, hidden=True, help="Deprecated: --for-board.")
@click.option("--trust", multiple=True, type=click.Path(exists=False), metavar="PUBLIC_KEY", envvar="TVMEDGE_TRUSTED_KEYS",
              help="Refuse the artifact unless signed by this key (.pem or a folder of them; env TVMEDGE_TRUSTED_KEYS).")
@json_option
def deploy_cmd(artifact, to, board, no_runtime, loader, check, old_to, old_board, trust, as_json):
    """Copy ARTIFACT and its runtime bundle to a board and verify every file's sha256 on arrival."""
    from .. import api
    from ..devices.board import emulated_board_name
    from ..errors import ConfigError

    if old_to is not None:  # `--board emu:NAME` read as "a board" next to --as-board; --to says where
        emulated_board_name(old_to, hint="; use --to for directories and SSH")
        click.echo("Warning: deploy --board is deprecated; use --to emu:NAME", err=True)
    if old_board is not None:
        click.echo("Warning: deploy --as-board is deprecated; use --for-board", err=True)
    if bool(old_to) == bool(to):
        raise ConfigError("give one destination: --to emu:NAME|DIR|USER@HOST:PATH")
    progress = None if as_json else (lambda message: click.echo(f"  {message}", err=True))
    result = api.deploy(artifact, to or old_to, board=board or old_board, runtime=not no_runtime, loader=loader,
                        check=check, progress=progress, trust=trust or None)
    emit(result.to_json(), as_json, _render)


def _render(d):
    runtime = f" + {d['kind']} runtime" if d["runtime"] else ""
    click.echo(f"deployed {d['artifact'].rsplit('/', 1)[-1]}{runtime} to {d['destination']}: {d['files']} files, "
               f"{d['bytes'] / 1e6:.1f} MB, every sha256 verified on arrival")
    if d.get("check"):
        stats = d["check"].get("stats", {})
        click.echo(f"  check run on the board: ok (first inference {stats.get('first_ms', float('nan')):.2f} ms)")
    click.echo(f"  run it there:   {d['run_command']}")
    if d.get("host_command"):
        click.echo(f"  or from here:   {d['host_command']}")
