"""``tvmedge run``: run an artifact here or on an emulated board, with latency statistics."""

import click
import numpy as np

from ._options import json_option
from ._output import emit, table


@click.command("run")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option("--input", "input_files", multiple=True, metavar="[NAME=]FILE",
              help="Input .npy (NAME=file.npy, repeatable) or one .npz holding every input.")
@click.option("--random", "random_inputs", is_flag=True, help="Seeded random inputs (the default without --input).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write outputs to .npz (or .npy for one output).")
@click.option("--repeat", type=click.IntRange(0), default=10, show_default=True, help="Timed runs after the first.")
@click.option("--board", help="Run on an emulated board, e.g. emu:rk3588 (default: this machine).")
@click.option("--rpc", metavar="HOST:PORT", help="Run on a board serving TVM's RPC (e.g. `tvmedge board serve`).")
@click.option("--tracker", metavar="HOST:PORT", help="Run on a board from TVM's RPC tracker (with --key).")
@click.option("--key", help="Board key at the tracker, e.g. rk3588.")
@click.option("--reference", type=click.Path(dir_okay=False),
              help="ONNX model to run with ONNX Runtime on the same inputs, and compare.")
@click.option("--trust", multiple=True, type=click.Path(exists=False), metavar="PUBLIC_KEY", envvar="TVMEDGE_TRUSTED_KEYS",
              help="Refuse the artifact unless signed by this key (.pem or a folder of them; env TVMEDGE_TRUSTED_KEYS).")
@click.option("--decrypt", type=click.Path(dir_okay=False), envvar="TVMEDGE_DECRYPTION_KEY", metavar="KEYFILE",
              help="Key of an encrypted artifact (env TVMEDGE_DECRYPTION_KEY); its libraries are decrypted in memory.")
@click.option("--allow-version-mismatch", is_flag=True,
              help="Load an artifact built with another TVM / tvm-ffi than this runtime's.")
@click.option("--threads", type=click.IntRange(1), help="TVM threads (default: TVM's pool; on x86 half the CPUs).")
@click.option("--cores", metavar="big|little|UNIT|0-3",
              help="Cores to run on: a CPU cluster of the board YAML (big, little, or its name) or CPU numbers.")
@json_option
def run_cmd(artifact, input_files, random_inputs, seed, output, repeat, board, rpc, tracker, key, reference, trust,
            decrypt, allow_version_mismatch, threads, cores, as_json):
    """Run a compiled artifact and print outputs and latency (first inference separately)."""
    from .. import api

    result = api.run(artifact, input_files=input_files, random=random_inputs, seed=seed, repeat=repeat, board=board,
                     rpc=rpc, tracker=tracker, key=key, reference=reference, output=output, trust=trust or None,
                     allow_version_mismatch=allow_version_mismatch, decrypt=decrypt, threads=threads,
                     cores=cores)
    data = {"artifact": artifact, "where": result.where, "emulated": result.emulated,
            "latency_ms": result.stats.to_json(), "outputs": {k: _describe(v) for k, v in result.outputs.items()}}
    if result.written:
        data["written"] = result.written
    if result.comparison is not None:
        data.update(comparison=result.comparison, reference=result.reference)
    emit(data, as_json, _render)
    if result.matches_reference is False:
        raise click.ClickException("outputs differ from ONNX Runtime's beyond 1e-4")


def _describe(value: np.ndarray) -> dict:
    flat = value.reshape(-1)
    return {"shape": list(value.shape), "dtype": str(value.dtype), "head": flat[:4].tolist(),
            "argmax": int(flat.argmax()) if flat.size and value.dtype.kind in "fiu" else None}


def _render(d):
    where = d["where"] + (" (emulated: timings say nothing about the real board)" if d["emulated"] else "")
    click.echo(f"ran {d['artifact']} on {where}")
    comparison = {row["name"]: row for row in d.get("comparison", [])}
    rows = []
    for name, out in d["outputs"].items():
        head = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in out["head"])
        row = [name, tuple(out["shape"]), out["dtype"], out["argmax"], f"[{head}, ...]"]
        if comparison:
            c = comparison.get(name, {})
            diff = c.get("max_abs_diff")
            row += ["-" if diff is None else f"{diff:.2e}", "match" if c.get("match") else "MISMATCH"]
        rows.append(row)
    headers = ["output", "shape", "dtype", "argmax", "values"]
    if comparison:
        headers += ["max |tvmedge - onnxruntime|", "vs ORT"]
    click.echo(table(rows, headers))
    s = d["latency_ms"]
    line = f"latency: first {s['first_ms']:.3f} ms"
    if s.get("repeat"):
        line += (f"; then {s['repeat']} runs: median {s['median_ms']:.3f} ms, mean {s['mean_ms']:.3f}, "
                 f"p90 {s['p90_ms']:.3f}, min {s['min_ms']:.3f}, max {s['max_ms']:.3f}")
    click.echo(line)
    if s.get("execution"):
        click.echo(f"execution: {s['execution']['describe']}")
    p = s.get("pipeline")
    if p:
        click.echo(f"pipelined ({' | '.join(p['executions'])}): {p['pipelined_ips']:.1f} inputs/s vs "
                   f"{p['sequential_ips']:.1f} stage after stage ({p['speedup']:.2f}x) over {p['count']} inputs")
    if d.get("written"):
        click.echo(f"outputs written to {d['written']}")
