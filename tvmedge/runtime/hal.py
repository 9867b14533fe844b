"""``HardwareAdapter``: which devices this machine has, and tensors on the best one. Runtime side (stdlib + TVM runtime).

The same code runs on x86, aarch64 and riscv64 (and on the emulated boards): accelerators TVM's runtime can drive
(CUDA, ROCm, Vulkan, OpenCL, Metal) are found with ``tvm.device(kind, 0).exist``; NPUs and FPGAs have no TVM
runtime device, so they are reported from their device nodes (``/dev/rknpu``, ``/dev/accel/accel0``,
``/sys/class/fpga_manager/...``) as present-but-not-drivable, or honestly as not present.

>>> from tvmedge.runtime.hal import HardwareAdapter
>>> hal = HardwareAdapter("auto")                 # a GPU TVM can drive if there is one, else the CPU
>>> [(d["kind"], d["backend"], d["present"]) for d in hal.devices()][:2]
[('cpu', 'cpu', True), ('gpu', 'cuda', False)]
>>> hal.allocate_tensor((1, 3, 32, 32), "float32").device
cpu:0
>>> HardwareAdapter("npu")
Traceback (most recent call last):
tvmedge.errors.HardwareError: no NPU present: none of /dev/rknpu, /dev/accel/accel*, ... exists; use device_type 'cpu' or 'auto'

From a shell (what a board runs): ``python -m tvmedge.runtime.hal [--json]``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import HardwareError, InputError
from .manifest import machine_arch

__all__ = ["HardwareAdapter", "DEVICE_TYPES", "GPU_BACKENDS", "NPU_NODES", "FPGA_NODES"]

DEVICE_TYPES = ("auto", "cpu", "gpu", "npu", "fpga")
# TVM runtime device kinds that are GPUs, in order of preference for "auto"/"gpu".
GPU_BACKENDS = ("cuda", "rocm", "vulkan", "opencl", "metal")
# Device nodes of NPUs / FPGAs (globs under the root). TVM's runtime has no device type for any of them.
NPU_NODES = (
    "dev/rknpu",                 # Rockchip RKNPU (rk3588 vendor kernels)
    "dev/accel/accel*",          # Linux accel subsystem (Intel NPU, Rockchip rocket, ...)
    "dev/galcore",               # VeriSilicon Vivante VIP (Amlogic, NXP i.MX 8M Plus)
    "dev/vipcore",
    "dev/apex_*",                # Google Coral Edge TPU (PCIe)
    "dev/hailo*",                # Hailo-8
    "sys/class/misc/rknpu",
)
FPGA_NODES = (
    "sys/class/fpga_manager/fpga*",  # Linux FPGA manager (Zynq, Agilex SoC)
    "dev/xdma*",                     # Xilinx XDMA PCIe
    "dev/xclmgmt*",                  # Xilinx XRT
    "dev/intel-fpga-*",              # Intel OPAE
)


class HardwareAdapter:
    """Find the devices of this machine and allocate TVM tensors on the chosen one.

    Parameters
    ----------
    device_type : str
        ``"auto"`` (a GPU TVM can drive, else the CPU), ``"cpu"``, ``"gpu"``, ``"npu"`` or ``"fpga"``.
    root : str or Path
        Where ``/dev`` and ``/sys`` are looked up (a fake tree in tests).

    Raises
    ------
    HardwareError
        Unknown device type, or the requested device is absent or not drivable by TVM's runtime (one line).
    """

    def __init__(self, device_type: str = "auto", root="/"):
        kind = str(device_type).strip().lower()
        if kind not in DEVICE_TYPES:
            raise HardwareError(f"unknown device type '{device_type}'; choose from: {', '.join(DEVICE_TYPES)}")
        self.requested = kind
        self.root = Path(root)
        self._devices = _probe(self.root)
        self.kind, self.backend = self._choose(kind)

    def _choose(self, kind: str) -> tuple:
        usable = [d for d in self._devices if d["present"] and d["tvm_device"]]
        if kind == "cpu":
            return "cpu", "cpu"  # TVM's runtime always has the CPU
        if kind == "auto":
            gpus = [d for d in usable if d["kind"] == "gpu"]
            return ("gpu", gpus[0]["backend"]) if gpus else ("cpu", "cpu")
        if kind == "gpu":
            gpus = [d for d in usable if d["kind"] == "gpu"]
            if not gpus:
                raise HardwareError(f"no GPU present: TVM's runtime finds no {', '.join(GPU_BACKENDS)} device "
                                    "(or was built without them); use device_type 'cpu' or 'auto'")
            return "gpu", gpus[0]["backend"]
        found = [d for d in self._devices if d["kind"] == kind and d["present"]]
        label = kind.upper()
        if found:
            raise HardwareError(f"{label} {found[0]['detail']} is present but TVM's runtime cannot allocate on it "
                                f"(it has no {label} device type; use the vendor SDK); use device_type 'cpu' or 'auto'")
        nodes = NPU_NODES if kind == "npu" else FPGA_NODES
        raise HardwareError(f"no {label} present: none of {', '.join('/' + n for n in nodes[:2])}, ... exists; "
                            "use device_type 'cpu' or 'auto'")

    @property
    def device(self):
        """The chosen ``tvm.runtime.Device``."""
        import tvm

        return tvm.device(self.backend, 0)

    def devices(self) -> list:
        """Every device kind looked for: ``{"kind", "backend", "present", "tvm_device", "detail"}`` each."""
        return [dict(d) for d in self._devices]

    def summary(self) -> dict:
        """The machine, the chosen device and every device looked for (JSON-ready)."""
        return {"arch": machine_arch(), "requested": self.requested, "chosen": {"kind": self.kind, "backend": self.backend},
                "devices": self.devices()}

    def allocate_tensor(self, shape, dtype: str = "float32"):
        """An uninitialised TVM tensor of ``shape`` / ``dtype`` on the chosen device.

        Raises
        ------
        InputError
            A negative or non-integer dimension, or a dtype TVM does not know.
        """
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError) as err:
            raise InputError(f"shape {shape!r} is not a sequence of integers") from err
        if any(d < 0 for d in dims):
            raise InputError(f"shape {dims} has a negative dimension")
        import tvm

        try:
            return tvm.runtime.empty(dims, str(dtype), self.device)
        except Exception as err:  # TVM's own error types: report the bad dtype / device in one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"cannot allocate {dims} {dtype} on {self.backend}:0: {first}") from err


def _probe(root: Path) -> list:
    """CPU and GPUs through TVM's runtime; NPUs and FPGAs through their device nodes."""
    import tvm

    found = [{"kind": "cpu", "backend": "cpu", "present": True, "tvm_device": True,
              "detail": f"{machine_arch()}, {os.cpu_count()} logical cores"}]
    for backend in GPU_BACKENDS:
        try:
            present = bool(tvm.device(backend, 0).exist)
        except Exception:  # a runtime built without that backend may raise instead of answering False
            present = False
        name = None
        if present:
            try:
                name = tvm.device(backend, 0).device_name
            except Exception:
                name = None
        found.append({"kind": "gpu", "backend": backend, "present": present, "tvm_device": True,
                      "detail": (name or f"{backend}:0") if present else "not present"})
    for kind, patterns in (("npu", NPU_NODES), ("fpga", FPGA_NODES)):
        nodes = sorted({p for pattern in patterns for p in glob.glob(str(root / pattern))})
        found.append({"kind": kind, "backend": "device node", "present": bool(nodes), "tvm_device": False,
                      "detail": nodes[0] if nodes else "not present"})
    return found


def main(argv=None) -> int:
    """``python -m tvmedge.runtime.hal [--device auto] [--json]``: print what this machine has."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m tvmedge.runtime.hal", description="List this machine's devices.")
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu, npu or fpga (default auto)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        summary = HardwareAdapter(args.device).summary()
    except HardwareError as err:
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['arch']}: using {summary['chosen']['backend']}:0 ({summary['chosen']['kind']})")
        for d in summary["devices"]:
            print(f"  {d['kind']:<5} {d['backend']:<12} {'present' if d['present'] else 'not present':<12} {d['detail']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
