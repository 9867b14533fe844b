"""Instruction-level evidence of the integer path on each architecture (issue 15): which int8 instructions the
compiled libraries use, and the hot loop of the heaviest integer kernel, from the disassembly.

The model is ONNX Runtime's INT8 QDQ version of a float model (``quantize_static``: uint8 activations, int8
per-channel weights), compiled with ``--search none`` (nothing measured) for each board. Counted per library:

- x86 (``x86-host`` when this CPU has AVX-512 VNNI): ``vpdpbusd`` (u8 x s8 dot products, 16 int32 lanes);
- aarch64 (rk3588: Cortex-A76 ``+dotprod``): ``sdot`` (s8 x s8, 4 int32 lanes);
- riscv64 (bananapi-f3: RVV 1.0, VLEN 256): ``vwmacc*`` (widening multiply-accumulate).

The hot loop is the loop (backward branch) densest in such instructions of the kernel with the most of them,
printed as disassembled. Static counts: not a speed prediction (emulated time here means nothing).

    .venv/bin/python benchmarks/int8_instructions.py [--model light_squeezenet] [--boards x86-host,rk3588,bananapi-f3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the ORT quantizer helper shared with the tests
sys.path.insert(0, str(REPO / "benchmarks"))

OBJDUMP = {"x86_64": "objdump", "aarch64": "aarch64-linux-gnu-objdump", "riscv64": "riscv64-linux-gnu-objdump"}
WORD = re.compile(r"\.4byte\s+0x([0-9a-f]+)")


def _rvv_widening_mac(line: str) -> bool:
    """``vwmaccu`` / ``vwmacc`` / ``vwmaccus`` / ``vwmaccsu`` (.vv or .vx): Debian 12's binutils (2.40) prints RVV
    instructions as ``.4byte`` words (it does not know the extensions in the object's arch attribute), so they are
    decoded here from the RISC-V V specification 1.0: OP-V major opcode 0x57, OPMVV / OPMVX (funct3 010 / 110),
    funct6 1111xx."""
    m = WORD.search(line)
    if not m:
        return False
    word = int(m.group(1), 16)
    return word & 0x7F == 0x57 and (word >> 12) & 0x7 in (0b010, 0b110) and word >> 28 == 0b1111


class _Decoded:
    def search(self, line):
        return _rvv_widening_mac(line) or re.search(r"\tvwmacc\w*\.v[vx]\s", line)


DOT = {"x86_64": re.compile(r"\tvpdpbusd\s"), "aarch64": re.compile(r"\tsdot\s"),
       "riscv64": _Decoded()}
NAMES = {"x86_64": "vpdpbusd", "aarch64": "sdot", "riscv64": "vwmacc*"}

BRANCH = re.compile(r"\t(?:b\.\w+|b|cbn?z|tbn?z|j\w*|bne|beq|blt|bge|bltu|bgeu)\s+(?:[^,]*,\s*)*([0-9a-f]+)\s*<")


def _readable(instruction: str) -> str:
    return f"{instruction}   # vwmacc* (decoded)" if _rvv_widening_mac(instruction) else instruction


def functions(asm: str) -> dict:
    """symbol -> its disassembly lines."""
    found, name = {}, None
    for line in asm.splitlines():
        head = re.match(r"^[0-9a-f]+ <([^>]+)>:", line)
        if head:
            name = head.group(1)
            found[name] = []
        elif name and re.match(r"^\s+[0-9a-f]+:", line):
            found[name].append(line)
    return found


def hot_loop(lines: list, dot) -> list:
    """The backward-branch loop with the most dot-product instructions per instruction (the inner loop of the
    micro-kernel)."""
    address = lambda line: int(line.split(":")[0], 16)  # noqa: E731
    best = None
    for line in lines:
        m = BRANCH.search(line)
        if not m:
            continue
        start, end = int(m.group(1), 16), address(line)
        if start >= end:
            continue
        body = [x for x in lines if start <= address(x) <= end]
        density = sum(bool(dot.search(x)) for x in body) / len(body)
        if density and (best is None or density > best[0]):
            best = (density, body)
    return best[1] if best else []


def main(argv=None) -> int:
    import onnx

    import quant_int8
    from quantized_models import ort_quantize
    from tvmedge import api
    from tvmedge.devices.target import CompileTarget
    from tvmedge.frontend.onnx import input_specs
    from tvmedge.tune.auto import TuningOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="light_squeezenet", choices=sorted(quant_int8.MODELS))
    parser.add_argument("--boards", default="x86-host,rk3588,bananapi-f3")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tvmedge-int8-asm-") as tmp:
        tmp = Path(tmp)
        source = quant_int8._prepared(quant_int8.MODELS[args.model], tmp / "float.onnx")
        spec = input_specs(onnx.load(source))[0]
        qdq = ort_quantize(source, tmp / "qdq.onnx", "qdq", "uint8", quant_int8.calibration(args.model, spec))
        print(f"# {args.model}, ONNX Runtime's INT8 QDQ model, `--search none`\n")
        for board in args.boards.split(","):
            arch = CompileTarget.resolve(board).arch
            artifact = api.compile(qdq, board, out=tmp / board, tuning=TuningOptions(search="none"))
            asm = subprocess.run([OBJDUMP[arch], "-d", "--no-show-raw-insn", str(artifact.path / "model.so")],
                                 capture_output=True, text=True, check=True).stdout
            dot = DOT[arch]
            kernels = {name: sum(bool(dot.search(x)) for x in lines) for name, lines in functions(asm).items()}
            kernels = {name: n for name, n in kernels.items() if n}
            tuning = artifact.manifest.tuning
            print(f"## {board} ({arch})\n")
            print(f"- integer layers with the int8 schedule: {tuning.get('int8', 0)} of {tuning['tasks']} tasks; "
                  f"`{NAMES[arch]}` instructions: {sum(kernels.values())} in "
                  f"{len(kernels)} kernels")
            if kernels:
                name = max(kernels, key=kernels.get)
                loop = hot_loop(functions(asm)[name], dot)
                count = sum(bool(dot.search(x)) for x in loop)
                print(f"- hot loop of `{name}`: {len(loop)} instructions, {count} dot products\n")
                print("```")
                print("\n".join(_readable(line.split(":", 1)[1].strip()) for line in loop))
                print("```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
