"""``tvmedge logs list``: what the tuning databases hold."""

import click

from ._options import json_option
from ._output import emit, table


@click.group("logs")
def logs():
    """Tuning databases: yours ($TVMEDGE_CACHE/tuning_logs/<target key>/) and the shipped ones."""


@logs.command("list")
@click.option("--root", type=click.Path(file_okay=False),
              help="Log root (default: $TVMEDGE_TUNING_LOGS or $TVMEDGE_CACHE/tuning_logs, plus the shipped records).")
@json_option
def list_cmd(root, as_json):
    """Summarise every target's tuning database."""
    show_databases(as_json, root)


def show_databases(as_json: bool, root=None) -> None:
    from .. import api
    from ..tune.database import default_log_root

    data = api.tuning_logs(root)
    emit(data, as_json, lambda d: click.echo(
        table([[x["key"], "shipped" if x.get("shipped") else "yours", x["workloads"], x["tuned_workloads"], x["records"],
                f"{x['bytes'] / 1024:.0f} KiB"] for x in d],
              ["target key", "source", "workloads", "tuned", "records", "size"]) if d
        else f"no tuning records under {root or default_log_root()}"))
