"""``tvmedge tune``: MetaSchedule over a model's tasks, into the reusable ``tuning_logs/`` database."""

import click

from ._options import input_shape_option, json_option
from ._output import TuneProgress, emit, table


@click.command("tune")
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@click.option("--target", "board", help="Board name, board YAML path or TVM target JSON.")
@input_shape_option
@click.option("--trials", type=click.IntRange(1), help="Total trials for this run (sampling, then evolutionary search).")
@click.option("--minutes", type=click.FloatRange(min=0.1), help="Wall-clock budget for this run.")
@click.option("--per-task", type=click.IntRange(0), default=8, show_default=True,
              help="Candidates sampled per task before any task is searched further.")
@click.option("--log-dir", type=click.Path(file_okay=False), help="Tuning database folder (default: tuning_logs/<target key>/).")
@click.option("--tracker", metavar="HOST:PORT", help="Measure on boards registered with TVM's RPC tracker.")
@click.option("--key", help="Board key at the tracker (default: the board name).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the tuning curve PNG here (default: next to the logs).")
@click.option("--show", is_flag=True, help="Only summarise the tuning databases that exist.")
@json_option
def tune_cmd(model, board, input_shapes, trials, minutes, per_task, log_dir, tracker, key, plot, show, as_json):
    """Tune MODEL for a board; stop any time (Ctrl-C) and run again to resume."""
    from .logs import show_databases

    if show:
        return show_databases(as_json)
    if not model or not board:
        raise click.UsageError("tune needs MODEL and --target (or --show)")
    from .. import api
    from ..frontend.onnx import parse_input_shapes
    from ..tune.tuner import Budget

    progress = TuneProgress(quiet=as_json)
    try:
        report = api.tune(model, board, input_shapes=parse_input_shapes(input_shapes),
                          budget=Budget(per_task=per_task, total=trials, minutes=minutes), log_dir=log_dir,
                          tracker=tracker, key=key, progress=progress, plot=plot or True)
    finally:
        progress.close()
    emit(report.summary(), as_json, _render)
    if report.interrupted:
        raise click.exceptions.Exit(130)


def _render(d):
    rows = [[t["name"][:48], t["calls"], t["records_before"], t["trials"],
             "-" if t["best_us"] is None else f"{t['best_us']:.3g}"] for t in d["tasks"]]
    click.echo(table(rows, ["task", "calls", "records before", "trials now", "best (us)"]))
    estimate = d["estimated_model_us"]
    click.echo(f"{d['trials']} trials in {d['seconds']:.0f} s; {d['tuned_tasks']}/{len(d['tasks'])} tasks have records; "
               f"estimated model latency {'-' if estimate is None else f'{estimate / 1e3:.3f} ms'}")
    click.echo(f"records: {d['database']}" + (f"; curve: {d['plot']}" if d.get("plot") else ""))
    for t in d["tasks"]:
        if t.get("error"):
            click.echo(f"task {t['name']} could not be searched (it keeps the no-search schedule): {t['error']}")
    if d["interrupted"]:
        click.echo("interrupted: every measured record was kept; run the same command again to resume")
