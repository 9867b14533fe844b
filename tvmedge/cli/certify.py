"""``tvmedge certify ARTIFACT [--board emu:NAME] [--duration 60] [--json]``: a pass/fail report a vendor can publish."""

import click

from ._options import json_option
from ._output import emit, table


@click.command("certify")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option("--board", help="Certify on an emulated board, e.g. emu:rk3588 (reported, never PASS).")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds of sustained load.")
@click.option("--sysfs-root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="Where /sys/class/thermal is read (a board's tree mounted elsewhere).")
@json_option
def certify_cmd(artifact, board, duration, sysfs_root, as_json):
    """Check the manifest, model load (< 3 s), first inference (< 500 ms) and a sustained run with temperatures.

    \b
    Verdicts: PASS, FAIL (exit 1), INCOMPLETE (something not measurable here, or a run < 60 s),
    NOT CERTIFIABLE (emulated board: its timings are the emulator's).
    """
    from .. import api

    report = api.certify(artifact, board=board, duration=duration, sysfs_root=sysfs_root)
    emit(report, as_json, lambda r: click.echo(render(r)))
    if report["verdict"] == "FAIL":
        raise click.ClickException(f"{artifact} failed certification: {report['reason']}")


def render(report: dict) -> str:
    """The human report: a header, one table row per check, and the verdict."""
    lines = [f"tvmedge certification report — {report['date']}",
             f"artifact   {report['artifact']} (model {report['model'] or '?'}, built for {report['built_for']['board']}, "
             f"{report['built_for']['triple']})",
             f"library    sha256 {report['library_sha256'][:16]}...",
             f"ran on     {report['ran_on']}", ""]
    rows = [[c["name"], c["criterion"], c["measured"], c["status"].upper(), c["note"]] for c in report["checks"]]
    lines.append(table(rows, ["check", "criterion", "measured", "status", "note"]))
    lines += ["", f"VERDICT: {report['verdict']} ({report['reason']})"]
    return "\n".join(lines)
