"""Every scenario pack end to end in its reduced form, in the default suite (issue 18: "the reduced versions run in
CI").

``run.sh --ci`` on a copy of each pack (what a fresh clone has: no data, no out/): tiny data, quantize, partition,
compile for rk3588, visionfive2 and this host, run on both emulated boards with the outputs checked equal to
the host's, serve and answer a request, measure. TVM's default schedules (``SEARCH=naive``) and one Python
process for the builds keep it to well under a minute or two per pack on a quiet 2-core machine. The full runs
stay in the slow tests of each pack (``test_examples_packs.py``, ``test_examples_smart_home.py``,
``test_examples_assistant.py``).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
KEYS = ("pack", "task", "model", "params", "size_kb_fp32", "size_kb_int8", "accuracy_fp32", "accuracy_int8",
        "host_latency_ms", "host_fps", "predicted_rk3588_ms", "predicted_riscv_ms", "riscv_board",
        "emulated_outputs_match", "notes")
AUDIO = ("smart-home", "assistant")  # espeak-ng data, examples/audio shared


def _copy(name: str, root: Path) -> Path:
    """The pack and the shared code it uses, without data, out/, caches or measured results."""
    ignore = shutil.ignore_patterns("data", "out", ".cache", "__pycache__", "results.json", "measurements.json",
                                    "*.png")
    shared = ("audio",) if name in AUDIO else ("packlib",)
    for folder in (name,) + shared:
        shutil.copytree(EXAMPLES / folder, root / "examples" / folder, ignore=ignore)
    return root / "examples" / name


def _servers_of(folder: Path) -> list:
    """PIDs of `tvmedge serve` processes whose command line names ``folder`` (orphans, after the run)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "serve" in cmdline and str(folder) in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.mark.emulated
@pytest.mark.parametrize("name", ("industrial-qc", "automotive", "smart-home", "assistant"))
def test_run_sh_ci_end_to_end(name, tmp_path):
    if shutil.which("qemu-aarch64") is None or shutil.which("qemu-riscv64") is None:
        pytest.skip("qemu-user not installed")
    if name in AUDIO and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (scripts/setup.sh)")
    pack = _copy(name, tmp_path)
    env = dict(os.environ, PYTHON=sys.executable, TVMEDGE_SPEECH_CACHE=str(tmp_path / "speech"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("SEARCH", None)
    done = subprocess.run(["bash", str(pack / "run.sh"), "--ci"], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert not _servers_of(tmp_path), "run.sh left a tvmedge serve process behind"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((pack / "out" / "results.json").read_text())
    assert not (pack / "results.json").exists()  # written to out/, never where the committed results live
    assert results["pack"] == name and tuple(results)[:len(KEYS)] == KEYS
    assert results["emulated_outputs_match"] is True  # both emulated boards gave the host's outputs
    assert results["riscv_board"] == "visionfive2"
    assert results["predicted_rk3588_ms"] > 0 and results["predicted_riscv_ms"] > 0
    assert 0 <= results["accuracy_int8"] <= 1 and results["host_latency_ms"] > 0
    assert "schedule search: naive" in results["notes"]  # the reduced run says how it was built
    manifests = [str(path.relative_to(pack)) for path in (pack / "out").rglob("manifest.json")]
    for board in ("rk3588", "visionfive2"):
        assert any(board in m for m in manifests), (board, manifests)  # an artifact built for each board
    if name in ("industrial-qc", "automotive"):
        assert "emulated boards: outputs match the host's" in done.stdout
        assert '"logits"' in done.stdout  # the served reply
    elif name == "smart-home":
        assert "infer: '" in done.stdout and "unload: freed" in done.stdout
    else:
        offline = results["details"]["offline"]
        assert offline["profile"] == ["vad", "command"] and offline["same_replies_online_offline"] == offline["windows"]
        assert offline["rss_mib_after_unload"] <= offline["rss_mib_online"]
