"""``tvmedge thermal run``: keep this board under a temperature limit, or compare governors on a simulated one."""

import click

from ._options import json_option
from ._output import emit, table


@click.group("thermal")
def thermal():
    """Thermal governor: cap the CPU frequency to stay under a temperature limit."""


@thermal.command("run")
@click.option("--sysfs-root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="Root holding sys/class/thermal and sys/devices/system/cpu/cpufreq.")
@click.option("--limit", type=float, default=45.0, show_default=True, help="Temperature limit, degC.")
@click.option("--governor", "kind", type=click.Choice(["pid", "step"]), default="pid", show_default=True)
@click.option("--period", type=click.FloatRange(min=0.05), default=1.0, show_default=True, help="Seconds between readings.")
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after this many seconds (default: at Ctrl-C).")
@click.option("--dry-run", is_flag=True, help="Decide and print caps but write nothing (no root needed).")
@click.option("--simulate", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Instead, compare the governors on a simulated board for SECONDS of simulated time.")
@json_option
def run_cmd(sysfs_root, limit, kind, period, duration, dry_run, simulate, as_json):
    """Govern this machine's CPU frequency from its thermal zones (PID by default)."""
    from .. import api

    if simulate:
        emit(api.compare_governors(limit, simulate), as_json, _render_comparison)
        return
    tick = None if as_json else (lambda t, temp, cap: click.echo(f"t={t:7.1f} s  {temp:5.1f} degC  cap {cap / 1000:.0f} MHz"))
    emit(api.govern(sysfs_root, kind, limit_c=limit, period=period, duration=duration, dry_run=dry_run, on_tick=tick),
         as_json, lambda s: click.echo(f"{s['periods']} periods, max {s['max_c']} degC, {s['cap_changes']} cap changes; "
                                       f"cap restored to {s['restored_cap_khz']} kHz" if not s["dry_run"] else "dry run: nothing written"))


def _render_comparison(rows):
    click.echo(table([[r["governor"], f"{r['peak_c']:.2f}", f"{r['seconds_above_limit']:.1f}", f"{r['throughput']:.1%}",
                       "-" if r["loss_vs_ideal"] is None else f"{r['loss_vs_ideal']:+.1%}", r["cap_changes"], f"{r['ripple_c']:.2f}"] for r in rows],
                     ["governor", "peak degC", "s above limit", "throughput", "loss vs ideal", "cap changes", "ripple degC"]))
