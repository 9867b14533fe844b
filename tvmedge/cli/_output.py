"""Shared output helpers: human text or ``--json``, and step messages on stderr."""

from __future__ import annotations

import json
import sys
import time
from typing import Optional

import click


def emit(data, as_json: bool, render) -> None:
    """Print ``data`` as JSON, or call ``render(data)`` for humans."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def _progress_wanted() -> bool:
    """Progress displays only on a terminal (or with ``TVMEDGE_PROGRESS=1``), like most CLIs."""
    import os

    return sys.stderr.isatty() or os.environ.get("TVMEDGE_PROGRESS") == "1"


class Steps:
    """Prints ``[i/n] what`` (``[i] what`` when the number of steps is not known up front) on stderr as each step
    starts (stdout stays clean for --json)."""

    def __init__(self, total: Optional[int], quiet: bool = False):
        self.total, self.index, self.quiet = total, 0, quiet or not _progress_wanted()
        self._start = time.perf_counter()

    def __call__(self, message: str) -> None:
        self.index += 1
        if not self.quiet:
            elapsed = time.perf_counter() - self._start
            count = f"{self.index}/{self.total}" if self.total else str(self.index)
            click.echo(f"[{count}] {message} (t={elapsed:.1f} s)", err=True)


def table(rows, headers) -> str:
    """A plain aligned text table."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


class TuneProgress:
    """A tqdm bar over tuning trials, fed by the tuner's events (on stderr; silent with --json)."""

    def __init__(self, quiet: bool = False, label: str = "tuning"):
        self.quiet, self.label, self.bar = quiet or not _progress_wanted(), label, None

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if event["event"] in ("predict", "predicted"):  # the cost model's pass: a bar over tasks, nothing measured
            if event["event"] == "predict":
                if self.bar is None:
                    self.bar = tqdm(total=event["total"], unit="task", desc="predicting schedules", file=sys.stderr,
                                    dynamic_ncols=True, leave=True)
                self.bar.update(event["index"] - self.bar.n)
                self.bar.set_postfix_str(event["task"][:40], refresh=True)
            else:
                self.bar.update(event["tasks"] - self.bar.n)
                self.bar.close()
                self.bar = None
            return
        if self.bar is None:
            self.bar = tqdm(total=event.get("total"), unit="trial", desc=self.label, file=sys.stderr,
                            dynamic_ncols=True, leave=True)
        if event["event"] == "task":
            self.bar.set_postfix_str(f"{event['phase']} {event['task'][:40]}", refresh=True)
        else:
            self.bar.update(event["trials"] - self.bar.n)
            estimate = event.get("estimated_us")
            if estimate is not None:
                self.bar.set_postfix_str(f"model ~{estimate / 1e3:.3f} ms", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
