"""``tvmedge compile``: ONNX model -> artifact directory for a board."""

import click

from ._options import input_shape_option, json_option
from ._output import Steps, emit


@click.command("compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", "board", required=True,
              help="Board name (a file in targets/), a board YAML path, or a TVM target JSON.")
@input_shape_option
@click.option("-o", "--output", default="out", show_default=True, help="Artifact directory to write.")
@click.option("--opt-level", type=click.IntRange(0, 3), default=3, show_default=True)
@json_option
def compile_cmd(model, board, input_shapes, output, opt_level, as_json):
    """Compile an ONNX model into a deployable artifact for a board."""
    from .. import api
    from ..frontend.onnx import parse_input_shapes

    with Steps(total=3, quiet=as_json) as steps:
        artifact = api.compile(model, board, input_shapes=parse_input_shapes(input_shapes), out=output,
                               opt_level=opt_level, progress=steps)
    emit(artifact.summary(), as_json, _render)


def _render(d):
    ins = ", ".join(f"{t['name']} {tuple(t['shape'])} {t['dtype']}" for t in d["inputs"])
    outs = ", ".join(f"{t['name']} {tuple(t['shape'])} {t['dtype']}" for t in d["outputs"])
    click.echo(f"wrote {d['artifact']}/ for {d['board']} ({d['triple']}): {d['library']} "
               f"{d['library_bytes'] / 1024:.0f} KiB, sha256 {d['library_sha256'][:12]}...")
    click.echo(f"  inputs:  {ins}")
    click.echo(f"  outputs: {outs}")
