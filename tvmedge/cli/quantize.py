"""``tvmedge quantize``: ONNX model + quantization YAML -> quantized (QDQ) ONNX model and an accuracy report."""

import click

from ._options import json_option
from ._output import Steps, emit


@click.command("quantize")
@click.argument("model", type=click.Path())
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), metavar="QUANT.yaml",
              help="Quantization config: a 'quantization:' block (type, bit_width, calibration_dataset, ...).")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Quantized ONNX model to write (a folder for an LM package).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write the report as JSON here.")
@click.option("--evaluate", metavar="DATASET",
              help="Measure float vs quantized accuracy on this data (.npz / folder / list file, with 'labels').")
@json_option
def quantize_cmd(model, config_path, output, report_path, evaluate, as_json):
    """Quantize an ONNX model (INT8, INT4 or mixed weights; static or dynamic activations), or both graphs of an
    LM package folder into a new one.

    \b
    The result is a standard QDQ ONNX model: run it with ONNX Runtime, or compile it with
    `tvmedge compile` (weights stay quantized in the artifact); `tvmedge compile --quant QUANT.yaml`
    does both steps at once.
    """
    from .. import api

    result = api.quantize(model, config_path, out=output, evaluate=evaluate, report=report_path,
                          progress=Steps(total=4, quiet=as_json))
    if as_json:
        emit(result.report.to_dict(), as_json, None)
        return
    click.echo(result.report.table())
    click.echo(f"wrote {output}" + (f" and {report_path}" if report_path else ""))
