"""``tvmedge inspect``: inputs, outputs, op histogram and every op TVM cannot import."""

import click

from ._options import freeze_input_option, input_shape_option, json_option
from ._output import emit, table


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@input_shape_option
@freeze_input_option
@json_option
def inspect_cmd(model, input_shapes, frozen_inputs, as_json):
    """Describe an ONNX model and check that TVM can import it."""
    from .. import api
    from ..frontend.freeze import parse_frozen_inputs
    from ..frontend.onnx import parse_input_shapes

    report = api.inspect(model, input_shapes=parse_input_shapes(input_shapes),
                         frozen_inputs=parse_frozen_inputs(frozen_inputs))
    emit(report.summary(), as_json, _render)


def _render(d):
    click.echo(f"{d['model']}  (opset {d['opset']}, sha256 {d['sha256'][:12]}...)")
    for kind in ("inputs", "outputs"):
        click.echo(f"{kind}:")
        for t in d[kind]:
            click.echo(f"  {t['name']}: {tuple(t['shape'])} {t['dtype']}")
    click.echo("ops:")
    click.echo("  " + table([[op, n] for op, n in d["ops"].items()], ["op", "count"]).replace("\n", "\n  "))
    if d["unsupported_ops"]:
        listed = ", ".join(f"{op} (x{n})" for op, n in d["unsupported_ops"].items())
        click.echo(f"ops the importer lacks ({len(d['unsupported_ops'])}): {listed}")
    if d["needs_input_shape"]:
        click.echo(f"symbolic input shapes: {', '.join(d['needs_input_shape'])} (fix them with --input-shape NAME=D0,D1,...)")
    if d["needs_freeze_input"]:
        listed = "; ".join(f"{name} ({where})" for name, where in d["needs_freeze_input"].items())
        click.echo(f"inputs that set shapes: {listed} (freeze them with --freeze-input NAME=VALUE)")
    if d["frozen_inputs"]:
        click.echo("frozen: " + ", ".join(f"{k}={v}" for k, v in d["frozen_inputs"].items()))
    for problem in d["problems"]:
        click.echo(f"problem: {problem}")
    click.echo("importable: " + ("yes" if d["importable"] else "no"))
