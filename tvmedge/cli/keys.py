"""``tvmedge keys generate -o DIR``: an Ed25519 key pair for signing artifacts (``compile --sign``)."""

import click

from ._options import json_option
from ._output import emit


@click.group("keys")
def keys():
    """Signing keys: artifacts signed with private.pem are verified with public.pem (`run --trust`)."""


@keys.command("generate")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False), help="Folder to write the keys to.")
@json_option
def generate_cmd(out, as_json):
    """Write DIR/private.pem (mode 0600) and DIR/public.pem; never overwrites a key."""
    from ..compiler.signing import generate_keys

    emit(generate_keys(out), as_json, _render)


@keys.command("secret")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Key file to write.")
@json_option
def secret_cmd(out, as_json):
    """Write a 32-byte encryption key (mode 0600) for `compile --encrypt` / `run --decrypt`."""
    from ..compiler.signing import generate_secret

    emit(generate_secret(out), as_json, lambda d: click.echo(
        f"encryption key {d['key_id']}: {d['key']} (compile --encrypt {d['key']}; the board needs it: --decrypt)"))


def _render(d):
    click.echo(f"key {d['key_id']}: {d['private']} (keep it secret; sign with `tvmedge compile ... --sign {d['private']}`)")
    click.echo(f"  public key {d['public']}: give it to boards (`tvmedge run ... --trust {d['public']}`)")
