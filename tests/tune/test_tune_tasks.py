"""tvmedge.tune.tasks: tensor intrinsics imported without the minutes-long inspect.stack scan (issue 13)."""

import subprocess
import sys


def test_tensor_intrinsics_load_and_inspect_stack_is_standard_again():
    # In a fresh interpreter: the intrinsics MetaSchedule uses are registered, and inspect.stack is restored.
    probe = (
        "import inspect; standard = inspect.stack\n"
        "from tvmedge.tune.tasks import load_tensor_intrinsics\n"
        "load_tensor_intrinsics(); load_tensor_intrinsics()\n"
        "from tvm.s_tir.tensor_intrin.x86 import VNNI_DOT_16x4_INTRIN\n"
        "from tvm.s_tir import TensorIntrin\n"
        "assert TensorIntrin.get(VNNI_DOT_16x4_INTRIN) is not None\n"
        "assert inspect.stack is standard\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]

