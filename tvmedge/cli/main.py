"""Root command group. Verbs load lazily, so ``tvmedge --help`` and ``tvmedge run`` never import TVM's compiler."""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import TvmedgeError

# verb -> "module:attribute"; adding a verb is adding a file and a line here.
_VERBS = {
    "targets": "tvmedge.cli.targets:targets",
    "inspect": "tvmedge.cli.inspect:inspect_cmd",
    "compile": "tvmedge.cli.compile:compile_cmd",
    "run": "tvmedge.cli.run:run_cmd",
    "profile": "tvmedge.cli.profile:profile_cmd",
    "compare": "tvmedge.cli.compare:compare_cmd",
    "tune": "tvmedge.cli.tune:tune_cmd",
    "logs": "tvmedge.cli.logs:logs",
    "board": "tvmedge.cli.board:board",
    "devices": "tvmedge.cli.devices:devices",
    "partition": "tvmedge.cli.partition:partition_cmd",
    "serve": "tvmedge.cli.serve:serve_cmd",
    "thermal": "tvmedge.cli.thermal:thermal",
    "quantize": "tvmedge.cli.quantize:quantize_cmd",
    "certify": "tvmedge.cli.certify:certify_cmd",
    "bench": "tvmedge.cli.bench:bench_cmd",
    "bundle": "tvmedge.cli.bundle:bundle_cmd",
    "deploy": "tvmedge.cli.deploy:deploy_cmd",
    "keys": "tvmedge.cli.keys:keys",
    "generate": "tvmedge.cli.generate:generate_cmd",
}


class _UserError(click.ClickException):
    """A TvmedgeError shown as Click shows its own errors: ``Error: <message>`` on stderr."""

    def __init__(self, err: TvmedgeError):
        super().__init__(" ".join(str(err).split("\n")))
        self.exit_code = err.exit_code


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(_VERBS)

    def get_command(self, ctx, name):
        if name not in _VERBS:
            return None
        module, attr = _VERBS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TvmedgeError as err:
            if ctx.params.get("debug"):
                raise
            raise _UserError(err) from err
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:  # a bug or an error a library raised that we did not anticipate: still one line
            if ctx.params.get("debug"):
                raise
            raise _UserError(_InternalError(err)) from err


class _InternalError(TvmedgeError):
    exit_code = 70  # EX_SOFTWARE

    def __init__(self, err: Exception):
        from ..errors import first_line

        super().__init__(f"internal error ({type(err).__name__}): {first_line(err)} "
                         "(a bug in tvmedge; rerun with --debug for the traceback)")


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tvmedge")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug):
    """tvmedge: compile ONNX models for edge boards with Apache TVM, and run them.

    \b
    Typical flow:
      tvmedge targets list
      tvmedge inspect model.onnx
      tvmedge tune model.onnx --target x86-host --trials 200
      tvmedge compile model.onnx --target rk3588 -o out/
      tvmedge board setup rk3588
      tvmedge run out/ --board emu:rk3588 --random
      tvmedge deploy out/ --to root@board:/opt/tvmedge --check
    """


def main(argv=None):
    """Console entry point."""
    return cli.main(args=argv, prog_name="tvmedge")


if __name__ == "__main__":
    sys.exit(main())
