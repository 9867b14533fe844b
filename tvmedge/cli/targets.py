"""``tvmedge targets list|show``: the boards in targets/."""

import click

from ._options import input_shape_option, json_option
from ._output import emit, table


@click.group("targets")
def targets():
    """Boards tvmedge can compile for (one YAML each in targets/)."""


@targets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json):
    """List the known boards."""
    from .. import api

    boards = api.list_boards()
    data = [{"name": b.name, "arch": b.arch, "triple": b.triple, "mcpu": b.target.get("mcpu"),
             "units": [u.name for u in b.compute_units], "description": b.description} for b in boards]
    emit(data, as_json, lambda d: click.echo(table(
        [[r["name"], r["arch"], r["mcpu"] or "-", ",".join(r["units"]), r["description"]] for r in d],
        ["board", "arch", "mcpu", "units", "description"])))


@targets.command("show")
@click.argument("board")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show_cmd(board, as_json):
    """Show one board (a name, a YAML path or a TVM target JSON)."""
    from .. import api

    b = api.load_board(board)
    data = b.summary()
    data["resolved_target"] = b.tvm_target()
    emit(data, as_json, _render)


def _render(d):
    click.echo(f"{d['name']}: {d['description']}")
    click.echo(f"  arch {d['arch']}, cross compiler {d['cross_compiler'] or '(native)'}, memory {d['memory_gb'] or '?'} GB")
    click.echo(f"  TVM target: {d['resolved_target']}")
    if d["compute_units"]:
        click.echo("  compute units:")
        rows = [[u["name"], u["kind"], u["model"], u["cores"], u["freq_ghz"] or "-",
                 ", ".join(f"{k} {v:g}" for k, v in u["peak_gops"].items()) or "-", u["mem_bandwidth_gbps"],
                 "TVM" if u["target"] else "vendor only"] for u in d["compute_units"]]
        click.echo("    " + table(rows, ["unit", "kind", "model", "cores", "GHz", "peak GOP/s", "GB/s", "codegen"])
                   .replace("\n", "\n    "))
    if d["links"]:
        click.echo("  links:")
        for link in d["links"]:
            click.echo(f"    {link['src']} <-> {link['dst']}: {link['bandwidth_gbps']} GB/s, "
                       f"{link['latency_us']} us latency, {link['sync_us']} us sync")


@targets.command("rank")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--objective", type=click.Choice(["latency", "throughput"]), default="latency", show_default=True,
              help="Rank by predicted latency of one input, or by pipelined throughput.")
@input_shape_option
@json_option
def rank_cmd(model, objective, input_shapes, as_json):
    """Rank every board in targets/ for MODEL by the cost model's prediction (with the reasons)."""
    from .. import api
    from ..frontend.onnx import parse_input_shapes

    data = api.rank(model, objective=objective, input_shapes=parse_input_shapes(input_shapes))
    emit(data, as_json, _render_rank)


def _render_rank(d):
    click.echo(f"{d['model']} ({d['model_mb']:.2f} MB weights + largest activations), ranked by predicted "
               f"{d['objective']} ({d['plan']} plan, {d['correction']} costs):")
    rows = [[r["rank"], r["board"], f"{r['latency_ms']:.3f}", f"{r['throughput_ips']:.1f}", "; ".join(r["reasons"])]
            for r in d["ranked"]]
    click.echo(table(rows, ["#", "board", "latency ms", "inputs/s", "why"]))
    for r in d["not_ranked"]:
        click.echo(f"not ranked: {r['board']}: {r['why']}")
