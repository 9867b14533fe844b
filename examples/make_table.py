"""Write the table of all scenario packs into examples/README.md from each pack's ``results.json``.

Every ``examples/<pack>/results.json`` (written by that pack's measuring script, never by hand) becomes one row;
packs without one are simply absent. The table goes between the two marker comments in the README (added at
the end when missing); everything else in the README is left as it is.

    python examples/make_table.py            # rewrite the table
    python examples/make_table.py --check    # exit 1 if the README's table is not what the results give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = "<!-- packs-table:start (written by examples/make_table.py from examples/*/results.json; do not edit) -->"
END = "<!-- packs-table:end -->"
KEYS = ("pack", "task", "model", "params", "size_kb_fp32", "size_kb_int8", "accuracy_fp32", "accuracy_int8",
        "host_latency_ms", "host_fps", "predicted_rk3588_ms", "predicted_riscv_ms", "riscv_board",
        "emulated_outputs_match", "notes")


class TableError(Exception):
    """A results.json that cannot be read or lacks a key, or a README the table cannot be put into."""


def load_results(root=HERE) -> list:
    """Every ``<root>/*/results.json``, sorted by folder name; TableError names a bad file and what is wrong."""
    rows = []
    for path in sorted(Path(root).glob("*/results.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise TableError(f"{path}: not readable JSON ({err})") from err
        if not isinstance(data, dict):
            raise TableError(f"{path}: expected a JSON object")
        missing = [key for key in KEYS if key not in data]
        if missing:
            raise TableError(f"{path}: missing key(s) {', '.join(missing)}")
        rows.append({**data, "folder": path.parent.name})
    return rows


def _num(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def render(rows: list) -> str:
    """The markdown table (plus a legend) for ``rows``."""
    lines = [
        "| pack | task | params | ONNX KB fp32 / INT8 | accuracy fp32 / INT8 (measured) | host ms / fps, INT8 "
        "(measured) | rk3588 ms (predicted) | RISC-V ms (predicted) | emulated = host |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| [`{r['pack']}`]({r['folder']}/) | {r['task']} | {r['params']:,} | "
            f"{_num(r['size_kb_fp32'], '.1f')} / {_num(r['size_kb_int8'], '.1f')} | "
            f"{_num(r['accuracy_fp32'], '.1%')} / {_num(r['accuracy_int8'], '.1%')} | "
            f"{_num(r['host_latency_ms'], '.3f')} / {_num(r['host_fps'], ',.0f')} | "
            f"{_num(r['predicted_rk3588_ms'], '.3f')} | "
            f"{_num(r['predicted_riscv_ms'], '.3f')} ({r['riscv_board']}) | "
            f"{'yes' if r['emulated_outputs_match'] else 'no'} |")
    if not rows:
        lines.append("| (no pack has a results.json yet) | | | | | | | | |")
    lines += [
        "",
        "Measured: accuracy on each pack's held-out test split (float model / INT8 as the pack's notes say), "
        "host latency = median of one-image calls of the INT8 artifact on this host (x86, 2 shared cores; "
        "fps = 1000 / median). Predicted: tvmedge's cost model for the INT8 model on the board's main CPU, no board involved (for the "
        "float model where the cost model has no INT8 rate for that CPU, e.g. the RISC-V boards: the notes say "
        "which). "
        "\"emulated = host\": the INT8 artifacts built for the ARM and RISC-V boards, run under qemu-user, give "
        "the host's outputs. Each pack's `results.json` has the details in `notes`.",
    ]
    return "\n".join(lines)


def update(readme: Path, table: str) -> str:
    """The README text with ``table`` between the markers (appended with the markers when they are missing)."""
    text = readme.read_text() if readme.exists() else "# examples\n"
    block = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        if END not in rest:
            raise TableError(f"{readme}: the end marker comes before the start marker")
        return head + block + rest.split(END, 1)[1]
    if START in text or END in text:
        raise TableError(f"{readme}: only one of the two table markers is there; restore both or remove both")
    return text.rstrip("\n") + "\n\n## Scenario packs\n\n" + block + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(HERE), help="the examples folder (default: the one holding this script)")
    parser.add_argument("--readme", help="README to update (default: ROOT/README.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the README is out of date")
    args = parser.parse_args(argv)
    root = Path(args.root)
    readme = Path(args.readme) if args.readme else root / "README.md"
    try:
        rows = load_results(root)
        new = update(readme, render(rows))
    except TableError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if args.check:
        if not readme.exists() or readme.read_text() != new:
            print(f"{readme}: the packs table is out of date; run python examples/make_table.py", file=sys.stderr)
            return 1
        print(f"{readme}: the packs table is up to date ({len(rows)} pack(s))")
        return 0
    readme.write_text(new)
    print(f"wrote the table of {len(rows)} pack(s) into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
