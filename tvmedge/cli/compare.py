"""``tvmedge compare A B``: per-layer accuracy of two runs on the same inputs (host vs board, float vs quantized,
tvmedge vs ONNX Runtime)."""

import click

from ._options import json_option
from ._output import emit, table


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--input", "input_files", multiple=True, metavar="[NAME=]FILE",
              help="Input .npy (NAME=file.npy, repeatable) or one .npz (default: seeded random for A's inputs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-cosine", type=float, default=0.999, show_default=True,
              help="A layer below this cosine similarity has diverged.")
@click.option("--rtol", type=float, default=1e-2, show_default=True,
              help="A layer whose max |a-b| / max |a| exceeds this has diverged.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the per-layer error curve (PNG).")
@click.option("--all", "show_all", is_flag=True, help="Show every layer (default: up to 40 around the divergence).")
@json_option
def compare_cmd(a, b, input_files, seed, min_cosine, rtol, plot, show_all, as_json):
    """Compare every intermediate tensor of A and B by ONNX name; A is the reference.

    \b
    A side is ort:MODEL.onnx (ONNX Runtime), an artifact directory (compile --expose-layers to
    compare every layer) or DIR@emu:NAME (that artifact on an emulated board), e.g.
      tvmedge compare out-x86/ out-rk3588/@emu:rk3588        # host build vs board build
      tvmedge compare ort:model.onnx out-x86/               # ONNX Runtime vs tvmedge
      tvmedge compare ort:model.onnx out-int8/              # float vs quantized
    """
    from .. import api

    report = api.compare(a, b, input_files=input_files, seed=seed, min_cosine=min_cosine, rtol=rtol, plot=plot)
    data = report.to_json()
    data["show_all"] = show_all
    emit(data, as_json, _render)


def _render(d):
    rows = d["layers"]
    click.echo(f"compare {d['a']} (reference) vs {d['b']}: {len(rows)} tensors in common "
               f"({d['only_in_a']} only in A, {d['only_in_b']} only in B)")
    shown = rows
    if not d["show_all"] and len(rows) > 40:
        names = [r["layer"] for r in rows]
        at = names.index(d["first_diverging"]) if d["first_diverging"] in names else 0
        start = max(0, min(at - 10, len(rows) - 40))
        shown = rows[start:start + 40]
    table_rows = [[r["layer"][:40], "x".join(map(str, r["shape"])), f"{r['cosine']:.6f}", f"{r['max_abs']:.3g}",
                   f"{r['max_rel']:.3g}", "<-- first" if r["layer"] == d["first_diverging"] else
                   ("diverged" if r["diverged"] else "")] for r in shown]
    click.echo(table(table_rows, ["layer (ONNX tensor)", "shape", "cosine", "max abs", "max rel", ""]))
    if len(shown) < len(rows):
        click.echo(f"({len(rows) - len(shown)} more layers; --all or --json for every one)")
    if d["first_diverging"]:
        click.echo(f"first diverging layer: {d['first_diverging']} (cosine < {d['min_cosine']} or max rel > {d['rtol']})")
    else:
        click.echo(f"no layer diverges (cosine >= {d['min_cosine']}, max rel <= {d['rtol']} everywhere)")
    j = d["largest_jump"]
    if j:
        click.echo(f"largest jump: {j['layer']} (1 - cosine {j['to']:.3g}, x{j['factor']:.3g} the largest before it)")
    for note in d["notes"]:
        click.echo(f"note: {note}")
    if d.get("plot"):
        click.echo(f"plot written to {d['plot']}")
