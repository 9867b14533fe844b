"""Shared output helpers: human text or ``--json``, and step messages on stderr."""

from __future__ import annotations

import json
import sys
import time

import click


def emit(data, as_json: bool, render) -> None:
    """Print ``data`` as JSON, or call ``render(data)`` for humans."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


class Steps:
    """Prints ``[i/n] what ... 1.2 s`` lines on stderr (stdout stays clean for --json).

    A context manager: a step that raises ends its line with ``failed`` so the error stands on its own line.
    Quiet unless stderr is a terminal (or ``TVMEDGE_PROGRESS=1``), like most progress displays.
    """

    def __init__(self, total: int, quiet: bool = False):
        import os

        wanted = sys.stderr.isatty() or os.environ.get("TVMEDGE_PROGRESS") == "1"
        self.total, self.index, self.quiet = total, 0, quiet or not wanted
        self._start = None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None and self._start is not None and not self.quiet:
            click.echo(" failed", err=True)
            self._start = None
        self.done()
        return False

    def __call__(self, message: str) -> None:
        self._finish()
        self.index += 1
        self._start = time.perf_counter()
        if not self.quiet:
            click.echo(f"[{self.index}/{self.total}] {message} ...", err=True, nl=False)

    def _finish(self) -> None:
        if self._start is not None and not self.quiet:
            click.echo(f" {time.perf_counter() - self._start:.1f} s", err=True)
        self._start = None

    def done(self) -> None:
        self._finish()


def table(rows, headers) -> str:
    """A plain aligned text table."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])
