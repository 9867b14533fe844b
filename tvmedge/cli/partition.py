"""``tvmedge partition``: place a model's ops on a board's compute units with the cost model, and compare plans."""

import click

from ._options import input_shape_option, json_option
from ._output import emit, table


@click.command("partition")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", "board", required=True, help="Board name, e.g. rk3588 (a file in targets/), or a YAML path.")
@click.option("--objective", type=click.Choice(["latency", "throughput"]), default="latency", show_default=True,
              help="Minimise one input's latency, or maximise pipelined throughput.")
@click.option("--algorithm", type=click.Choice(["mincut", "dp", "pipeline", "balance", "greedy", "fixed-rule",
                                               "single-unit", "host-only"]),
              help="Plan to choose (default: mincut for latency, balance for throughput).")
@click.option("--costs", "correction", type=click.Choice(["learned", "none", "uniform"]), default="learned",
              show_default=True, help="learned: measured CPU correction, accelerators at peak; none: every unit "
                                      "at peak; uniform: the CPU correction for every unit.")
@input_shape_option
@json_option
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Draw the plan (ops coloured by unit) into a PNG.")
@click.option("--explain", is_flag=True, help="Per-op costs on every unit and why each placement won.")
def partition_cmd(model, board, objective, algorithm, correction, input_shapes, as_json, plot_path, explain):
    """Partition an ONNX model over a board's units; show the plan next to the baselines."""
    from .. import api
    from ..frontend.onnx import parse_input_shapes

    report = api.partition(model, board, objective=objective, input_shapes=parse_input_shapes(input_shapes),
                           costs=correction, algorithm=algorithm)
    data = report.summary()
    if explain:
        data["explain"] = report.explain()
    if plot_path:
        data["plot"] = report.plot(plot_path)
    emit(data, as_json, _render)


def _render(d):
    p = d["predicted"]
    click.echo(f"{d['model']} on {d['board']}: {d['algorithm']} plan for {d['objective']} "
               f"(costs: {d['correction']}; {', '.join(f'{u} {s}' for u, s in d['cost_sources'].items())})")
    click.echo(f"predicted: {p['latency_ms']:.3f} ms per input ({p['compute_ms']:.3f} compute + "
               f"{p['transfer_ms']:.3f} transfers), {p['throughput_ips']:.1f} inputs/s pipelined "
               f"(bottleneck {p['bottleneck_unit']})")
    click.echo("stages:")
    click.echo(table([[s["index"], s["unit"], s["ops"], f"{s['first']} .. {s['last']}", f"{s['compute_ms']:.3f}",
                       f"{s['transfer_in_ms']:.3f}", s["codegen"]] for s in d["stages"]],
                     ["#", "unit", "ops", "range", "compute ms", "in-transfer ms", "codegen"]))
    if "explain" in d:
        _render_explain(d["explain"])
    click.echo("plans compared (same costs and rules; speedups vs the best single unit):")
    rows = []
    for r in d["comparison"]:
        if "error" in r:
            rows.append([r["plan"], "-", "-", "-", "-", "-", "-", f"no plan: {r['error']}"])
            continue
        ratio = lambda x: f"{x:.2f}x" if x is not None else "-"  # noqa: E731
        rows.append([r["plan"] + (" *" if r["chosen"] else ""), f"{r['latency_ms']:.3f}", ratio(r["latency_speedup"]),
                     f"{r['throughput_ips']:.1f}", ratio(r["throughput_speedup"]), r["transfers"], r["stages"],
                     ",".join(r["units"]) + (f" ({r['vendor_ops']} ops vendor)" if r["vendor_ops"] else "")])
    click.echo(table(rows, ["plan", "latency ms", "speedup", "inputs/s", "speedup", "transfers", "stages", "units"]))
    for note in d["notes"]:
        click.echo(f"note: {note}")
    if d.get("plot"):
        click.echo(f"plot: {d['plot']}")


def _render_explain(rows):
    units = list(rows[0]["costs_us"]) if rows else []
    click.echo("per-op costs (us; - = cannot run) and why:")
    body = [[r["op"], "x".join(map(str, r["shape"])), f"{r['mflops']:.2f}"]
            + [f"{r['costs_us'][u]:.1f}" if r["costs_us"][u] is not None else "-" for u in units]
            + [r["unit"], r["why"]] for r in rows]
    click.echo(table(body, ["op", "shape", "MFLOP"] + units + ["placed on", "why"]))
