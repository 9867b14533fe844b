"""``tvmedge inspect``: inputs, outputs, op histogram and every op TVM cannot import; or, for an artifact folder,
what it holds and who built it (provenance, signature)."""

import click

from ._options import freeze_input_option, input_shape_option, json_option
from ._output import emit, table


@click.command("inspect")
@click.argument("model", type=click.Path())
@input_shape_option
@freeze_input_option
@click.option("--trust", multiple=True, metavar="PUBLIC_KEY", envvar="TVMEDGE_TRUSTED_KEYS",
              help="For an artifact: verify its signature with this key (.pem or a folder of them).")
@json_option
def inspect_cmd(model, input_shapes, frozen_inputs, trust, as_json):
    """Describe an ONNX model and check that TVM can import it, or describe an artifact folder."""
    from pathlib import Path

    from .. import api
    from ..frontend.freeze import parse_frozen_inputs
    from ..frontend.onnx import parse_input_shapes

    if Path(model).is_dir():
        emit(api.inspect_artifact(model, trust=trust or None), as_json, _render_artifact)
        return

    report = api.inspect(model, input_shapes=parse_input_shapes(input_shapes),
                         frozen_inputs=parse_frozen_inputs(frozen_inputs))
    emit(report.summary(), as_json, _render)


def _render_artifact(d):
    click.echo(f"{d['artifact']}: artifact for {d['board']} ({d['triple']}), libraries {', '.join(d['libraries'])}")
    for kind in ("inputs", "outputs"):
        click.echo(f"  {kind}: " + ", ".join(f"{t['name']} {tuple(t['shape'])} {t['dtype']}" for t in d[kind]))
    click.echo(f"  built with tvmedge {d['tvmedge_version']}, TVM {d['tvm_version']}, tvm-ffi {d['tvm_ffi_version'] or '?'}")
    prov = d.get("provenance") or {}
    source = prov.get("source_model_sha256") or (d.get("source_model") or {}).get("sha256") or "?"
    click.echo(f"  source model sha256 {source}")
    if d.get("encryption"):
        e = d["encryption"]
        click.echo(f"  encrypted: {', '.join(e['files'])} with key {e['key_id']} ({e['algorithm']})")
    sig = d["signature"]
    if not sig["present"]:
        click.echo("  signature: none (unsigned)")
    else:
        state = "verified" if sig["verified"] else "not verified (pass --trust PUBLIC_KEY)"
        click.echo(f"  signature: key {sig['key_id']}, {state}; provenance names key {prov.get('key_id')}")


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
