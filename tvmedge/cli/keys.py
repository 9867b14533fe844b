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


def _render(d):
    click.echo(f"key {d['key_id']}: {d['private']} (keep it secret; sign with `tvmedge compile ... --sign {d['private']}`)")
    click.echo(f"  public key {d['public']}: give it to boards (`tvmedge run ... --trust {d['public']}`)")
