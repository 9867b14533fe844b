"""``tvmedge bench --host [--artifact DIR] [--json]``: the 12-metric evaluation matrix, measured on this machine.

``tvmedge bench --board NAME`` prints the same matrix as the board declares it in ``targets/`` (data-sheet figures).
"""

import click

from ._options import json_option
from ._output import emit, table


@click.command("bench")
@click.option("--host", "on_host", is_flag=True, help="Measure this machine.")
@click.option("--board", help="Show a board's declared (data-sheet) figures from targets/ instead of measuring.")
@click.option("--artifact", type=click.Path(file_okay=False),
              help="An artifact built for this machine: enables load, first-inference, latency and throughput.")
@click.option("--budget", type=click.FloatRange(0.05, 30), default=1.0, show_default=True,
              help="Seconds per timed loop (matmul, copy, inference).")
@click.option("--storage-dir", type=click.Path(file_okay=False, exists=True),
              help="Where the storage test file is written (default: the temp directory).")
@json_option
def bench_cmd(on_host, board, artifact, budget, storage_dir, as_json):
    """Measure the 12 hardware metrics; each is labelled measured, declared or unavailable (with why)."""
    from .. import api
    from ..errors import ConfigError

    if on_host == bool(board):
        raise ConfigError("pass --host (measure this machine) or --board NAME (its declared figures from targets/); "
                          "boards are not reachable from here")
    emit(api.bench(board=board, artifact=artifact, budget=budget, storage_dir=storage_dir), as_json, _render)


def _render(d):
    rows = []
    for r in d["metrics"]:
        value = "-" if r["value"] is None else f"{r['value']:g}"
        if "p99" in r:
            value += f" (p99 {r['p99']:g})"
        rows.append([r["metric"], value, r["unit"], r["status"], r["method"]])
    click.echo(table(rows, ["metric", "value", "unit", "status", "method / reason"]))
