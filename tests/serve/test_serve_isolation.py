"""The model service runs where only TVM's runtime is installed: it never imports the compiler (issue 7 §1).

Like tests/runtime/test_runtime_isolation.py, in a subprocess with TVM_USE_RUNTIME_LIB=1: build the app and the
`tvmedge serve` verb, load a model, answer a request, scrape /metrics, then list what was imported.
"""

import json
import os
import shutil
import subprocess
import sys

PROBE = r"""
import json, sys, warnings
import numpy as np
import tvmedge.cli.serve                      # the verb, as `tvmedge serve` imports it
from tvmedge.serve import ServeOptions, ModelRegistry
from tvmedge.serve.app import create_app
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient
options = ServeOptions(sys.argv[1])
client = TestClient(create_app(ModelRegistry(options.models), options))
assert client.post("/v1/models/tiny/load").status_code == 200
reply = client.post("/v1/models/tiny/infer", json={"inputs": {"input": np.zeros((1, 3, 32, 32)).tolist()}})
assert reply.status_code == 200 and "tvmedge_models_loaded 1.0" in client.get("/metrics").text
maps = open("/proc/self/maps").read()
print(json.dumps({"modules": sorted(sys.modules), "compiler_lib": "libtvm_compiler" in maps,
                  "runtime_lib": "libtvm_runtime" in maps}))
"""

# pydantic and click are allowed here: FastAPI is built on pydantic and uvicorn on click.
COMPILER_SIDE = ("tvm.relax", "tvm.s_tir", "tvm.topi", "tvmedge.frontend", "tvmedge.compiler", "tvmedge.tune",
                 "tvmedge.devices", "tvmedge.partition", "tvmedge.api", "tvmedge.peer", "onnx", "onnxslim", "yaml")


def test_service_loads_no_compiler_code(x86_artifact, tmp_path):
    shutil.copytree(x86_artifact, tmp_path / "models" / "tiny")
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "models")], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["runtime_lib"] and not report["compiler_lib"]
    assert [m for m in report["modules"] if m.startswith(COMPILER_SIDE)] == []
