"""``tvmedge serve``: the REST model service over a directory of artifacts (needs ``tvmedge[serve]``)."""

import click

from ._options import json_option
from ._output import emit


@click.command("serve")
@click.option("--models", "models_dir", required=True, type=click.Path(), help="Directory with one artifact per model.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; non-loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0 picks a free port.")
@click.option("--token", envvar="TVMEDGE_SERVE_TOKEN", help="Bearer token clients must send (env TVMEDGE_SERVE_TOKEN).")
@click.option("--offline", is_flag=True, help="Only the profile's models, loopback only, no CDN-backed docs pages.")
@click.option("--profile", type=click.Path(dir_okay=False), help="Offline profile (default MODELS/offline.json).")
@click.option("--max-body", type=click.IntRange(1), default=16 << 20, show_default=True, help="Largest request body, bytes.")
@click.option("--header-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds a client has to send a request's headers; then the connection is closed.")
@click.option("--body-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds a client has to send a request's body (408 after).")
@click.option("--trust", multiple=True, type=click.Path(exists=False), metavar="PUBLIC_KEY", envvar="TVMEDGE_TRUSTED_KEYS",
              help="Refuse the artifact unless signed by this key (.pem or a folder of them; env TVMEDGE_TRUSTED_KEYS).")
@json_option
def serve_cmd(models_dir, host, port, token, offline, profile, max_body, header_timeout, body_timeout, trust, as_json):
    """Serve the artifacts under MODELS over HTTP until Ctrl-C (load/unload/infer, /metrics, /docs)."""
    from .. import api
    from ..serve import ServeOptions

    options = ServeOptions(models_dir, host=host, port=port, token=token, offline=offline, profile=profile, max_body=max_body,
                           header_timeout=header_timeout, body_timeout=body_timeout, trust=tuple(trust) or None)
    api.serve(options, on_ready=lambda summary: emit(summary, as_json, _render))


def _render(s):
    loaded = ", ".join(s["loaded"]) or "none"
    mode = "offline profile" if s["offline"] else "all models"
    click.echo(f"serving {s['models_dir']} on {s['url']} ({mode}; loaded: {loaded}; RSS {s['rss_bytes'] / 2**20:.0f} MiB)")
    for name, reason in s["skipped"].items():
        click.echo(f"skipped {name}: {reason}", err=True)
    docs = f"{s['url']}/openapi.json" if s["offline"] else f"{s['url']}/docs"
    click.echo(f"API: {docs}   metrics: {s['url']}/metrics   Ctrl-C stops", err=True)
