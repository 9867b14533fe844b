"""``tvmedge devices show BOARD``: a board's compute units and links, as the partitioner sees them."""

import click

from ._options import json_option
from ._output import emit, table


@click.group("devices")
def devices():
    """Device graphs: compute units (nodes) and links (edges) of a board."""


@devices.command("show")
@click.argument("board")
@json_option
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Also draw the graph into a PNG.")
def show_cmd(board, as_json, plot_path):
    """Show a board's device graph (a name in targets/ or a YAML path)."""
    from .. import api

    graph = api.device_graph(board)
    data = graph.summary()
    if plot_path:
        data["plot"] = graph.plot(plot_path)
    emit(data, as_json, _render)


def _render(d):
    click.echo(f"{d['board']}: {d['description']}  (host unit: {d['host']})")
    rows = [[u["name"], u["kind"], u["model"], u["cores"], ", ".join(f"{k} {v:g}" for k, v in u["peak_gops"].items()) or "-",
             f"{u['mem_bandwidth_gbps']:g}", "all" if u["ops"] == "all" else (", ".join(u["ops"]) or "none"),
             "TVM " + u["tvm_target"]["kind"] if u["tvm_target"] else u["codegen"]] for u in d["units"]]
    click.echo(table(rows, ["unit", "kind", "model", "cores", "peak GOP/s", "GB/s", "ops", "codegen"]))
    if d["links"]:
        click.echo("links (transfer time = latency + sync + bytes / bandwidth):")
        click.echo(table([[f"{l['src']} <-> {l['dst']}", f"{l['bandwidth_gbps']:g} GB/s", f"{l['latency_us']:g} us",
                           f"{l['sync_us']:g} us"] for l in d["links"]], ["link", "bandwidth", "latency", "sync"]))
    else:
        click.echo("links: none (one unit)")
    if d.get("plot"):
        click.echo(f"plot: {d['plot']}")
