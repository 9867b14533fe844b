"""The runtime imports only TVM's runtime + numpy: what a board has (issue 3).

Checked twice: by running it (a probe loads and runs an artifact in runtime-only mode and lists what got
imported) and by reading it (every import statement of every module in tvmedge/runtime against an allow-list).
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

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
COMPILER_SIDE = ("tvm.relax", "tvm.s_tir", "tvm.topi", "onnx", "onnxslim", "click", "yaml", "pydantic")
# Of tvmedge, only its board-side part (an allow-list: a new subpackage is compiler side until said otherwise).
BOARD_SIDE = ("tvmedge", "tvmedge.errors", "tvmedge.versions", "tvmedge.runtime")


def test_runtime_loads_no_compiler_code(x86_artifact):
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    result = subprocess.run([sys.executable, "-c", PROBE, str(x86_artifact)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [1, 10]
    assert report["runtime_lib"] and not report["compiler_lib"]  # the 260 MB compiler library stays unloaded
    assert [m for m in report["all"] if m.startswith(COMPILER_SIDE)] == []
    tvmedge = [m for m in report["all"] if m == "tvmedge" or m.startswith("tvmedge.")]
    assert "tvmedge.runtime.loader" in tvmedge
    assert [m for m in tvmedge if not (m in BOARD_SIDE or m.startswith("tvmedge.runtime."))] == []
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


# --- the same rule, read from the source: every module of tvmedge/runtime, every import statement --------------

RUNTIME = Path(__file__).resolve().parents[2] / "tvmedge" / "runtime"
# What a board has: the standard library, numpy, TVM's runtime side and tvm-ffi, and tvmedge's board-side part
# (each with what is inside it; ``tvm`` itself only as the package: tvm.relax, tvm.s_tir ... are the compiler).
ALLOWED = ("numpy", "tvm.runtime", "tvm.rpc", "tvm_ffi", "tvmedge.runtime", "tvmedge.errors", "tvmedge.versions")
# Optional on a board, imported inside the functions that need it: signatures and decryption (issue 19).
OPTIONAL = {"tvmedge.runtime.trust": ("cryptography",)}


def _allowed(name: str) -> bool:
    return name == "tvm" or name.split(".")[0] in sys.stdlib_module_names or any(
        name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)


def runtime_imports() -> list:
    """(module, imported name) for every import in tvmedge/runtime, lazy ones included; ``from X import y``
    counts as ``X.y`` (``from tvm import relax`` is tvm.relax)."""
    found = []
    for path in sorted(RUNTIME.rglob("*.py")):
        rel = path.relative_to(RUNTIME.parent.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                prefix = ".".join(base + ([node.module] if node.module else []))
                found += [(module, f"{prefix}.{alias.name}") for alias in node.names]
    return found


def test_runtime_modules_import_only_the_allowed_list():
    # issue 12: an allow-list over every module (the probe above sees only what one run loads)
    imports = runtime_imports()
    assert {module for module, _ in imports} >= {"tvmedge.runtime.loader", "tvmedge.runtime.manifest",
                                                  "tvmedge.runtime.remote", "tvmedge.runtime.rpc_server"}
    assert [f"{module} imports {name}" for module, name in imports if not _allowed(name)
            and not any(name.startswith(p + ".") for p in OPTIONAL.get(module, ()))] == []


def test_optional_imports_are_lazy():
    """cryptography is needed only when a signature is checked or a library decrypted: never at import time."""
    for module, packages in OPTIONAL.items():
        path = RUNTIME.parent.parent / (module.replace(".", "/") + ".py")
        top = [node for node in ast.parse(path.read_text()).body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = [alias.name for node in top for alias in node.names] + [node.module or "" for node in top
                                                                         if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in packages], module


def test_the_allow_list_check_catches_a_compiler_import():
    assert not _allowed("tvm.relax.frontend") and not _allowed("tvmedge.compiler.pipeline")
    assert not _allowed("onnx") and not _allowed("tvmedge.devices.board") and _allowed("tvm.runtime.vm")
