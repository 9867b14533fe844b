"""The runtime imports only TVM's runtime + numpy: what a board has (issue 3)."""

import json
import os
import subprocess
import sys

PROBE = r"""
import json, sys
import numpy as np
import tvm
baseline = set(sys.modules)              # what `import tvm` itself loads in runtime-only mode
import tvmedge.runtime as rt
model = rt.load(sys.argv[1])
out = model.run({"input": np.zeros((1, 3, 32, 32), "float32")})
maps = open("/proc/self/maps").read()
print(json.dumps({"shape": list(out["probabilities"].shape), "added": sorted(set(sys.modules) - baseline),
                  "all": sorted(sys.modules), "compiler_lib": "libtvm_compiler" in maps,
                  "runtime_lib": "libtvm_runtime" in maps}))
"""

# `import tvm` itself (runtime-only mode) loads some Python packages such as tvm.te and tvm.driver; the
# native compiler library is what a board must not need, and the /proc/self/maps check proves it is absent.
COMPILER_SIDE = ("tvm.relax", "tvm.s_tir", "tvm.topi", "tvmedge.frontend", "tvmedge.compiler",
                 "tvmedge.devices", "tvmedge.cli", "tvmedge.api", "onnx", "onnxslim", "click", "yaml", "pydantic")


def test_runtime_loads_no_compiler_code(x86_artifact):
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    result = subprocess.run([sys.executable, "-c", PROBE, str(x86_artifact)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [1, 10]
    assert report["runtime_lib"] and not report["compiler_lib"]  # the 260 MB compiler library stays unloaded
    assert [m for m in report["all"] if m.startswith(COMPILER_SIDE)] == []
    # tvm.runtime.vm pulls in tvm.rpc and tvm.support helpers: Python-only parts of TVM's runtime side.
    assert [m for m in report["added"] if m.startswith("tvm.") and not m.startswith(("tvm.runtime", "tvm.rpc", "tvm.support"))] == []


def test_board_side_command(x86_artifact, tmp_path):
    # `python -m tvmedge.runtime` is what an emulated or real board runs (argparse, no click).
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    out = tmp_path / "out.npz"
    result = subprocess.run([sys.executable, "-m", "tvmedge.runtime", str(x86_artifact), "--random", "--output", str(out),
                             "--repeat", "2", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outputs"]["probabilities"]["shape"] == [1, 10] and report["stats"]["repeat"] == 2
    assert out.is_file()


def test_board_side_command_reports_errors_in_one_line(tmp_path):
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    result = subprocess.run([sys.executable, "-m", "tvmedge.runtime", str(tmp_path / "nothing")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"Error: {tmp_path / 'nothing'} is not an artifact directory (compile one with `tvmedge compile`)"]
