"""Board-side command: ``python -m tvmedge.runtime ARTIFACT [--inputs F ...] [--random] [--output F] [--repeat N] [--json]``.

argparse rather than click: a board has only the runtime, numpy and the stdlib.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import TvmedgeError, first_line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tvmedge.runtime", description="Run a tvmedge artifact.")
    parser.add_argument("artifact", help="artifact directory (manifest.json + library)")
    parser.add_argument("--inputs", action="append", default=[], metavar="[NAME=]FILE",
                        help="input .npy (NAME=file.npy, repeatable) or one .npz with every input")
    parser.add_argument("--random", action="store_true", help="random inputs (seeded) instead of files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write outputs to .npz (or .npy for one output)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs after the first one (default 1)")
    parser.add_argument("--json", action="store_true", help="print statistics as one JSON line")
    parser.add_argument("--trust", action="append", default=[], metavar="PUBLIC_KEY",
                        help="refuse the artifact unless signed by this key (.pem, or a folder of them; repeatable; "
                             "default $TVMEDGE_TRUSTED_KEYS)")
    parser.add_argument("--decrypt", metavar="KEYFILE",
                        help="key of an encrypted artifact (default $TVMEDGE_DECRYPTION_KEY); decrypted in memory only")
    parser.add_argument("--allow-version-mismatch", action="store_true",
                        help="load an artifact built with another TVM / tvm-ffi version")
    parser.add_argument("--threads", type=int, help="TVM threads (default: TVM's)")
    parser.add_argument("--cores", help="big, little, a cluster name or CPU numbers (0-3); from the manifest")
    args = parser.parse_args(argv)
    try:
        from . import inputs as io
        from .loader import load

        model = load(args.artifact, trust=args.trust or None, allow_version_mismatch=args.allow_version_mismatch,
                     decrypt=args.decrypt)
        feed = io.random_inputs(model.inputs, args.seed) if args.random or not args.inputs else io.read_inputs(args.inputs, model.inputs)
        outputs, stats = timed_run(model, feed, args.repeat, threads=args.threads, cores=args.cores)
        if args.output:
            io.write_outputs(args.output, outputs)
    except TvmedgeError as err:
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    except (ImportError, OSError) as err:  # a broken runtime installation on the board, not a bad artifact
        print(f"Error: ToolchainError: cannot start TVM's runtime ({type(err).__name__}): {first_line(err)}",
              file=sys.stderr)
        return 1
    report = {"stats": stats.to_json(), "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in outputs.items()}}
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in outputs.items():
            print(f"{name}: shape {tuple(value.shape)} {value.dtype}")
        if stats.repeat:
            print(f"latency: first {stats.first_ms:.3f} ms, median {stats.median_ms:.3f} ms over {stats.repeat} runs")
    return 0


def timed_run(model, feed, repeat: int, *, threads=None, cores=None) -> tuple:
    """``model.timed_run`` with ``--threads``/``--cores`` (clusters from the manifest) applied in the thread that
    runs it; for a throughput-partitioned artifact also the pipelined throughput over ``repeat`` inputs
    (``stats.extra["pipeline"]``) -> ``(outputs, LatencyStats)``."""
    from dataclasses import replace

    from .execution import Execution
    from .pipeline import is_pipelined, measure_throughput

    execution = Execution.parse(threads, cores, model.manifest.build.cpu_clusters)

    def run():
        outputs, stats = model.timed_run(feed, repeat=repeat)
        extra = {}
        if repeat >= 1 and is_pipelined(model.manifest):
            extra["pipeline"] = measure_throughput(model, feed, repeat)
        if not execution.is_default:
            extra["execution"] = execution.to_json()
        return outputs, replace(stats, extra={**stats.extra, **extra})

    return execution.call(run)


if __name__ == "__main__":
    sys.exit(main())
