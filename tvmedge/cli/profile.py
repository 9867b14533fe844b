"""``tvmedge profile``: per-kernel time, share, FLOPs and GFLOP/s of an artifact, grouped by ONNX layer."""

import click

from ._options import json_option
from ._output import emit, table


@click.command("profile")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option("--input", "input_files", multiple=True, metavar="[NAME=]FILE",
              help="Input .npy (NAME=file.npy, repeatable) or one .npz holding every input (default: seeded random).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--repeat", type=click.IntRange(1), default=10, show_default=True, help="Profiled runs (medians).")
@click.option("--board", help="Profile on an emulated board, e.g. emu:rk3588 (default: this machine).")
@click.option("--top", type=click.IntRange(1), default=15, show_default=True, help="Kernel calls in the table.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a bar chart of the slowest kernel calls (PNG).")
@json_option
def profile_cmd(artifact, input_files, seed, repeat, board, top, plot, as_json):
    """Time every kernel call of an artifact and tie it to the ONNX layers it computes."""
    from .. import api

    report = api.profile(artifact, input_files=input_files, seed=seed, repeat=repeat, board=board, plot=plot)
    data = report.to_json()
    data["top"] = top
    emit(data, as_json, _render)


def _mb(value) -> str:
    return "-" if value is None else f"{value / 1e6:.2f} MB"


def _render(d):
    where = d["where"] + (" (emulated: times are qemu's, not the board's)" if d["emulated"] else "")
    plain = f"; {d['plain_ms']:.3f} ms without the profiler" if d.get("plain_ms") is not None else ""
    click.echo(f"profile of {d['artifact']} on {where}: {d['total_ms']:.3f} ms per run (median of {d['repeat']}"
               f"{plain})")
    rows = []
    for r in sorted(d["kernels"], key=lambda r: -r["ms"])[:d["top"]]:
        layers = ", ".join(r["layers"][:4]) + (f" +{len(r['layers']) - 4}" if len(r["layers"]) > 4 else "")
        rows.append([r["stage"], r["kernel"][:40], layers or "?", f"{r['ms']:.4f}", f"{100 * r['share']:.1f}%",
                     "-" if r["flops"] is None else f"{r['flops'] / 1e6:.2f}",
                     "-" if r["gflops"] is None else f"{r['gflops']:.2f}" + (" i" if r.get("integer") else ""),
                     "-" if r["peak_pct"] is None else f"{r['peak_pct']:.1f}%"])
    click.echo(table(rows, ["stage", "kernel", "ONNX layers", "ms", "share", "MFLOP", "GFLOP/s", "of peak"]))
    if len(d["kernels"]) > d["top"]:
        click.echo(f"({len(d['kernels']) - d['top']} more kernel calls; --top N or --json for all)")
    for s in d["stages"]:
        click.echo(f"stage {s['index']} ({s['unit'] or 'cpu'}): {s['total_ms']:.3f} ms = kernels {s['kernel_ms']:.3f}"
                   f" + VM builtins {s['builtin_ms']:.3f} ({s['builtin_calls']} calls) + dispatch/copies/profiler "
                   f"{s['other_ms']:.3f}")
    m = d["memory"]
    click.echo(f"memory: weights {_mb(m.get('weight_bytes'))}, activations {_mb(m.get('activation_bytes'))} "
               f"(planned), workspace {_mb(m.get('workspace_bytes'))}, measured peak RSS {_mb(m.get('peak_rss_bytes'))}")
    for note in d["notes"]:
        click.echo(f"note: {note}")
    if d.get("plot"):
        click.echo(f"chart written to {d['plot']}")
