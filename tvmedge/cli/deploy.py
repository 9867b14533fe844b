"""``tvmedge deploy``: ship an artifact and the board's runtime to a board, verify the copy there."""

import click

from ._options import json_option
from ._output import emit


@click.command("deploy")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option("--board", "destination", metavar="emu:NAME", default=None,
              help="Deploy to an emulated board's disk, e.g. emu:rk3588.")
@click.option("--to", "to", metavar="DIR|USER@HOST:PATH", default=None,
              help="Deploy to a directory or, over SSH (rsync/scp), to a real board.")
@click.option("--as-board", "board", default=None, help="Board whose runtime to ship (default: the artifact's).")
@click.option("--no-runtime", is_flag=True, help="Ship the artifact only (the runtime is already there).")
@click.option("--loader", type=click.Choice(["python", "cpp"]), default=None, help="Runtime kind (see `bundle`).")
@click.option("--check", is_flag=True, help="Run the artifact once at the destination with the shipped runtime.")
@json_option
def deploy_cmd(artifact, destination, to, board, no_runtime, loader, check, as_json):
    """Copy ARTIFACT and its runtime bundle to a board and verify every file's sha256 on arrival."""
    from ..deploy.ship import deploy
    from ..devices.board import emulated_board_name
    from ..errors import ConfigError

    if bool(destination) == bool(to):
        raise ConfigError("give one destination: --board emu:NAME or --to DIR|USER@HOST:PATH")
    if destination:
        emulated_board_name(destination, hint="; use --to for directories and SSH")
    progress = None if as_json else (lambda message: click.echo(f"  {message}", err=True))
    result = deploy(artifact, destination or to, board=board, runtime=not no_runtime, loader=loader, check=check,
                    progress=progress)
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
