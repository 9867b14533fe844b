"""``tvmedge compile``: ONNX model (or torch.export program) -> artifact directory for a board."""

import click

from ._options import freeze_input_option, input_shape_option, json_option
from ._output import Steps, TuneProgress, emit


@click.command("compile")
@click.argument("model", type=click.Path())
@click.option("--target", "board", required=True,
              help="Board name (a file in targets/), a board YAML path, or a TVM target JSON.")
@input_shape_option
@freeze_input_option
@click.option("-o", "--output", default="out", show_default=True, help="Artifact directory to write.")
@click.option("--search", default="quick", show_default=True, metavar="none|quick|naive|N",
              help="Tasks without tuning records: quick = measure 8 candidates each (native boards), N = N each, "
                   "none = measure nothing (convolution and GEMV schedules written for them, the shipped cost "
                   "model's picks for the rest), naive = TVM's default build.")
@click.option("--tuning-records", type=click.Path(file_okay=False), help="Tuning database folder to use.")
@click.option("--no-tuning", is_flag=True, help="Ignore tuning records.")
@click.option("--tracker", metavar="HOST:PORT", help="Quick search measured on boards behind TVM's RPC tracker.")
@click.option("--key", help="Board key at the tracker (default: the board name).")
@click.option("--opt-level", type=click.IntRange(0, 3), default=3, show_default=True)
@click.option("--quant", type=click.Path(dir_okay=False), metavar="QUANT.yaml",
              help="Quantize first with this config (see `tvmedge quantize`); weights stay quantized in the artifact.")
@click.option("--partition", type=click.Choice(["latency", "throughput"]), default=None,
              help="Partition over the board's compute units first (see `tvmedge partition`) and write one "
                   "library per stage; off by default.")
@click.option("--sign", type=click.Path(dir_okay=False), envvar="TVMEDGE_SIGNING_KEY", metavar="PRIVATE_KEY",
              help="Sign the artifact with this Ed25519 key (`tvmedge keys generate`; env TVMEDGE_SIGNING_KEY).")
@click.option("--encrypt", type=click.Path(dir_okay=False), envvar="TVMEDGE_ENCRYPTION_KEY", metavar="KEYFILE",
              help="Encrypt the libraries (and weights) at rest with this key (`tvmedge keys secret`; env "
                   "TVMEDGE_ENCRYPTION_KEY); boards decrypt in memory with --decrypt.")
@click.option("--expose-layers", is_flag=True,
              help="Debug build: every intermediate ONNX tensor is also an output, by name (for `tvmedge compare`).")
@json_option
def compile_cmd(model, board, input_shapes, frozen_inputs, output, search, tuning_records, no_tuning, tracker, key, opt_level,
                quant, partition, sign, encrypt, expose_layers, as_json):
    """Compile an ONNX model (or a torch.export .pt2 program, or an LM package folder: prefill + decode graphs and
    lm.json) into a deployable artifact for a board."""
    from .. import api
    from ..frontend.freeze import parse_frozen_inputs
    from ..frontend.onnx import parse_input_shapes
    from ..tune.auto import TuningOptions

    tuning = TuningOptions(search=search, records=tuning_records, use_records=not no_tuning, tracker=tracker, key=key)
    progress = TuneProgress(quiet=as_json, label="quick search")
    try:
        artifact = api.compile(model, board, plan=partition, quant=quant, tuning=tuning,
                               input_shapes=parse_input_shapes(input_shapes), out=output, opt_level=opt_level,
                               progress=Steps(total=4 if partition is None else None, quiet=as_json),
                               tune_progress=progress, frozen_inputs=parse_frozen_inputs(frozen_inputs), sign=sign,
                               encrypt=encrypt, expose_layers=expose_layers)
    finally:
        progress.close()
    emit(artifact.summary(), as_json, _render)


def _render(d):
    if d.get("kind") == "lm":
        click.echo(f"wrote LM artifact {d['artifact']}/ for {d['board']}: context {d['context']}, prefill "
                   f"{d['prefill_length']} tokens, vocabulary {d['vocab']}, {d['layers_cached']} KV-cache tensors")
        shared = d.get("weights_file")
        if shared:
            click.echo(f"weights: {shared['file']} {shared['bytes'] / 1e6:.1f} MB, {shared['tensors']} tensors, one "
                       "copy shared by both graphs")
        else:
            click.echo("weights: inside each (encrypted) library")
        for graph, summary in d["graphs"].items():
            click.echo(f"{graph}:")
            _render(summary)
        return
    ins = ", ".join(f"{t['name']} {tuple(t['shape'])} {t['dtype']}" for t in d["inputs"])
    shown = d["outputs"][:len(d["outputs"]) - (d.get("exposed_layers") or 0)]
    outs = ", ".join(f"{t['name']} {tuple(t['shape'])} {t['dtype']}" for t in shown)
    click.echo(f"wrote {d['artifact']}/ for {d['board']} ({d['triple']}): {d['library']} "
               f"{d['library_bytes'] / 1024:.0f} KiB, sha256 {d['library_sha256'][:12]}...")
    click.echo(f"  inputs:  {ins}")
    click.echo(f"  outputs: {outs}" + (f" + {d['exposed_layers']} exposed intermediate tensors (debug build)"
                                      if d.get("exposed_layers") else ""))
    m = d.get("memory") or {}
    if m:
        mb = lambda v: "?" if v is None else f"{v / 1e6:.2f} MB"  # noqa: E731
        click.echo(f"  memory: weights {mb(m.get('weight_bytes'))}, activations {mb(m.get('activation_bytes'))} "
                   f"(Relax static plan), workspace {mb(m.get('workspace_bytes'))}")
    t = d.get("tuning") or {}
    if t.get("search") == "naive":
        click.echo("  schedules: TVM default build (naive loops)")
    elif t:
        click.echo(f"  schedules: {t['tasks']} tasks: {t['tuned']} from tuning records"
                   + (f" ({t['records']})" if t.get("records") else "")
                   + (f", {t['transferred']} from records of a sibling CPU" if t.get("transferred") else "")
                   + (f", {t['conv']} with the convolution schedule" if t.get("conv") else "")
                   + (f", {t['gemv']} with the GEMV schedule" if t.get("gemv") else "")
                   + (f", {t['int8']} with the int8 dot-product schedule" if t.get("int8") else "")
                   + (f", {t['pool']} with the pooling schedule" if t.get("pool") else "")
                   + f", {t.get('predicted', 0)} predicted by the cost model"
                   + (f" ({t['cost_model']}, nothing measured for them)" if t.get("cost_model") else "")
                   + f", {t['fallback']} parallelised+vectorised without search"
                   + (f"; {t['trials']} trials measured on {_where(t['measured_on'])}" if t.get("trials") else ""))
        if t.get("note"):
            click.echo(f"  note: {t['note']}")
    p = d.get("plan")
    if p:
        pred = p.get("predicted") or {}
        click.echo(f"  plan: {len(p['stages'])} stage(s), {p['objective']} ({p['algorithm']}), predicted "
                   f"{pred.get('latency_ms', 0):.3f} ms latency, {pred.get('throughput_ips', 0):.1f} inputs/s pipelined")
        for s in p["stages"]:
            where = s["unit"] + (f" -> built for {s['built_for']} (fallback: {s['fallback']})" if s.get("fallback") else "")
            click.echo(f"    {s['library']}: {len(s['ops'])} ops on {where}, predicted {s['predicted']['total_ms']:.3f} ms")
            if s.get("reason"):
                click.echo(f"      {s['reason']}")
    prov = d.get("provenance") or {}
    if prov.get("key_id"):
        click.echo(f"  signed: key {prov['key_id']} (manifest.sig)")
    if d.get("encryption"):
        click.echo(f"  encrypted: {', '.join(d['encryption']['files'])} with key {d['encryption']['key_id']} "
                   f"({d['encryption']['algorithm']})")
    if d.get("frozen_inputs"):
        click.echo("  frozen: " + ", ".join(f"{k}={v}" for k, v in d["frozen_inputs"].items()))
    q = d.get("quantization")
    if q:
        bits = ", ".join(f"{name} {b}" for name, b in (q.get("layers") or {}).items())
        w = q.get("artifact_weights") or {}
        integer = q.get("integer") or {}
        click.echo(f"  quantized: {bits or 'quantized model'}; {integer.get('integer_layers', 0)} layer(s) compute "
                   f"on integers (int8 x int8 -> int32)"
                   + (f"; {w.get('int8_kept', 0)} INT8 and {w.get('int4_packed', 0)} packed INT4 weights dequantized "
                      f"inside {w.get('fused', 0)} float layer kernels" if w.get("fused") is not None else "")
                   + (f"; {w['matmul_nbits']} MatMulNBits layer(s) read {w['int4_packed_bytes']} bytes of packed "
                      f"group-wise INT4" if w.get("matmul_nbits") else ""))
        for note in integer.get("float_fallback", []):
            click.echo(f"    float fallback: {note}")


def _where(measured_on: str) -> str:
    return "this host" if measured_on == "host" else measured_on
