"""Instruction-level evidence for cross targets, where no honest timing exists here (emulated time means nothing).

For each board, the same model is compiled three times with nothing measured — the no-search fallback (parallel +
vectorise), every schedule predicted by the shipped cost model, and the zero-measurement default (convolutions
with the schedule written for them, tvmedge/tune/conv.py; the rest predicted) — and the convolution/matmul
kernels of each ``.so`` are disassembled with the board's cross objdump. Counted per build:

- vector FMAs (aarch64 ``fmla v``, RISC-V ``vfmacc``/``vfmadd``) vs scalar FMAs/multiplies (``fmadd s``,
  ``fmul s``, ``fmadd.s``, ``fmul.s``): the share of the arithmetic the vector unit does;
- FMAs per floating-point load in those kernels: register blocking (each value loaded feeds several FMAs)
  is what a tiled schedule buys and a naive loop lacks.

These are static counts over the kernels' code, not dynamic counts and not a speed prediction.

    .venv/bin/python benchmarks/instruction_mix.py [--models tiny_cnn,light_squeezenet] [--boards rk3588,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIGHT = Path(__import__("onnx").__file__).parent / "backend" / "test" / "data" / "light"
MODELS = {"tiny_cnn": REPO / "examples" / "models" / "tiny_cnn.onnx",
          "light_squeezenet": LIGHT / "light_squeezenet.onnx",
          "light_resnet50": LIGHT / "light_resnet50.onnx"}
BOARDS = ("rk3588", "bananapi-f3", "visionfive2")
OBJDUMP = {"aarch64": "aarch64-linux-gnu-objdump", "riscv64": "riscv64-linux-gnu-objdump"}
PATTERNS = {
    "aarch64": {"vector_fma": re.compile(r"^\s*fml[as]\s+v\d+\.(4s|2s)"),
                "scalar_fma": re.compile(r"^\s*(fmadd|fmsub|fmul|fmla)\s+s\d+"),
                "fp_load": re.compile(r"^\s*(ldr|ldp|ldur|ld1\w*)\s+[qsv]\d+")},
    "riscv64": {"vector_fma": re.compile(r"^\s*(vfmacc|vfmadd|vfnmsac|vfmul)\.v[vf]"),
                "scalar_fma": re.compile(r"^\s*(fmadd|fmsub|fmul)\.s\b"),
                "fp_load": re.compile(r"^\s*(vle32\.v|vlse32\.v|flw)\b")},
}
KERNEL = re.compile(r"conv|matmul|dense")


def _variants() -> dict:
    from tvmedge.tune.auto import TuningOptions

    return {"fallback": TuningOptions(search="none", predict=False),
            "predicted": TuningOptions(search="none", conv=False),
            "zero": TuningOptions(search="none")}


def _rvv_kind(word: int):
    """Decode the RVV 1.0 instructions Debian 12's binutils (2.40) prints as ``.4byte``: it does not know the
    extensions LLVM lists in the object's arch attribute, so it decodes none of the V instructions. Encodings from
    the RISC-V V specification 1.0 (OP-V major opcode 0x57; vector loads share LOAD-FP 0x07 with flw/fld, told
    apart by the width field)."""
    opcode, funct3, funct6 = word & 0x7F, (word >> 12) & 0x7, word >> 26
    if opcode == 0x57 and funct3 in (0b001, 0b101):  # OPFVV / OPFVF
        if funct6 in (0b101100, 0b101000, 0b101110, 0b101010, 0b100100):  # vfmacc vfmadd vfnmsac vfnmsub vfmul
            return "vector_fma"
    if opcode == 0x07 and funct3 in (0b000, 0b101, 0b110, 0b111):  # vle8/16/32/64 (and strided/indexed forms)
        return "fp_load"
    return None


def count(so: Path, arch: str) -> dict:
    text = subprocess.run([OBJDUMP[arch], "-d", "--no-show-raw-insn", str(so)], check=True, capture_output=True,
                          text=True).stdout
    totals = {k: 0 for k in PATTERNS[arch]}
    in_kernel = False
    for line in text.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            in_kernel = bool(KERNEL.search(header.group(1)))
            continue
        if not in_kernel or "\t" not in line:
            continue
        instruction = line.split("\t", 1)[1]
        word = re.match(r"^\s*\.4byte\s+0x([0-9a-f]+)", instruction)
        if word and arch == "riscv64":
            kind = _rvv_kind(int(word.group(1), 16))
            if kind:
                totals[kind] += 1
            continue
        for name, pattern in PATTERNS[arch].items():
            if pattern.match(instruction):
                totals[name] += 1
    arithmetic = totals["vector_fma"] + totals["scalar_fma"]
    totals["vector_share"] = round(totals["vector_fma"] / arithmetic, 3) if arithmetic else None
    totals["fma_per_load"] = round(arithmetic / totals["fp_load"], 2) if totals["fp_load"] else None
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny_cnn,light_squeezenet")
    parser.add_argument("--boards", default=",".join(BOARDS))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "instruction_mix"))
    args = parser.parse_args(argv)

    from tvmedge import api

    variants = _variants()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TVMEDGE_TUNING_LOGS"] = str(Path(tmp) / "no-records")  # nothing recorded, nothing measured
        (Path(tmp) / "no-records").mkdir()
        for model in args.models.split(","):
            for board in args.boards.split(","):
                row = {"model": model, "board": board}
                for variant, options in variants.items():
                    artifact = api.compile(MODELS[model], board, out=Path(tmp) / f"{model}-{board}-{variant}",
                                           tuning=options)
                    arch = artifact.manifest.arch
                    row[variant] = count(artifact.path / artifact.manifest.library, arch)
                    row["arch"] = arch
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    lines = ["Static instruction counts in the convolution/matmul kernels of each `.so`, every build made with "
             "nothing measured (fallback = parallel + vectorise, predicted = every schedule predicted by the "
             "shipped cost model, zero = the default: convolutions with the written schedule, the rest "
             "predicted). Evidence of code shape, not a timing or a speed prediction.", "",
             "| model | board | build | vector FMA | scalar FMA/mul | FP loads | vector share | FMA per load |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        for variant in variants:
            c = row[variant]
            lines.append(f"| {row['model']} | {row['board']} ({row['arch']}) | {variant} | {c['vector_fma']} | "
                         f"{c['scalar_fma']} | {c['fp_load']} | {c['vector_share']} | {c['fma_per_load']} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
