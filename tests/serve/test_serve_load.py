"""`tvmedge serve` as a real uvicorn server on loopback: concurrent clients while a model is unloaded and reloaded.

Issue 7 §1's load test, bounded to a few seconds: every request gets an answer (no connection error, no 500), every
200 carries exactly the outputs a direct run gives, the model that is not churned never refuses, and the churned
one refuses only with 409/503 and a clear reason. Throughput and latency figures live in benchmarks/serve_load.py.
"""

import io
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

import tvmedge.runtime as rt

CLIENTS, SECONDS = 4, 3.0
REFUSALS = {
    409: "model 'b' is not loaded; POST /v1/models/b/load first",
    503: ("model 'b' is being unloaded and takes no new requests; retry after it is loaded again",
          "model 'b' is still loading; retry shortly"),
}


def start_server(models_dir, tmp_path, *args):
    """Start `tvmedge serve --port 0 --json` (runtime-only TVM) and return (process, its start-up summary)."""
    exe = os.path.join(os.path.dirname(sys.executable), "tvmedge")
    stderr = open(tmp_path / "server.err", "w")
    process = subprocess.Popen([exe, "serve", "--models", str(models_dir), "--port", "0", "--json", *args],
                               stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    text, deadline = "", time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert process.poll() is None, (tmp_path / "server.err").read_text()
            continue
        text += line
        if line.startswith("}"):  # the end of the pretty-printed summary
            return process, json.loads(text)
    process.kill()
    pytest.fail("server did not start within 60 s")


def stop_server(process, tmp_path):
    process.send_signal(signal.SIGTERM)  # graceful: uvicorn finishes running requests, the registry unloads
    assert process.wait(timeout=30) == 0
    log = (tmp_path / "server.err").read_text()
    assert "Traceback" not in log, log


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture
def models_dir(tmp_path, x86_artifact):
    for name in ("a", "b", "broken"):
        shutil.copytree(x86_artifact, tmp_path / "models" / name)
    (tmp_path / "models" / "broken" / "model.so").write_bytes(b"not a library")  # skipped at start, not fatal
    return tmp_path / "models"


def test_concurrent_clients_with_load_unload_churn(models_dir, tmp_path, x86_artifact):
    rng = np.random.default_rng(3)
    feeds = [rng.random((1, 3, 32, 32)).astype("float32") for _ in range(4)]
    direct = rt.load(x86_artifact)
    expected = [direct.run({"input": x})["probabilities"] for x in feeds]
    process, summary = start_server(models_dir, tmp_path)
    assert summary["loaded"] == ["a", "b"] and summary["url"].startswith("http://127.0.0.1:")
    assert list(summary["skipped"]) == ["broken"] and "does not match the sha256" in summary["skipped"]["broken"]
    url, deadline = summary["url"], time.monotonic() + SECONDS
    results, failures, churn = [], [], []

    def client(seed):
        pick = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < deadline:
                model, i = pick.choice("ab"), pick.randrange(len(feeds))
                try:
                    if pick.random() < 0.5:
                        r = http.post(f"/v1/models/{model}/infer", content=npy(feeds[i]), headers={"content-type": "application/x-npy"})
                    else:
                        r = http.post(f"/v1/models/{model}/infer", json={"inputs": {"input": feeds[i].tolist()}})
                    results.append((model, i, r.status_code, r.json()))
                except Exception as err:  # noqa: BLE001 - a lost request is a test failure, recorded with its cause
                    failures.append(repr(err))

    def churner():
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < deadline:
                for verb in ("unload", "load"):
                    r = http.post(f"/v1/models/b/{verb}")
                    churn.append((verb, r.status_code, r.json()))
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)] + [threading.Thread(target=churner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    metrics = httpx.get(f"{url}/metrics").text
    stop_server(process, tmp_path)

    assert failures == []
    assert all(status == 200 for _, status, _ in churn), churn
    assert sum(verb == "unload" for verb, _, _ in churn) >= 3
    by_status = {}
    for model, i, status, body in results:
        by_status.setdefault((model, status), 0)
        by_status[(model, status)] += 1
        if status == 200:
            np.testing.assert_array_equal(np.array(body["outputs"]["probabilities"]["data"], "float32"), expected[i])
        else:
            assert model == "b" and status in REFUSALS, (model, status, body)
            assert body["detail"] in REFUSALS[status], body
    assert by_status.get(("a", 200), 0) > 10 and by_status.get(("b", 200), 0) > 0, by_status
    assert set(by_status) <= {("a", 200), ("b", 200), ("b", 409), ("b", 503)}, by_status
    assert 'tvmedge_requests_total{endpoint="/v1/models/{name}/infer",model="a",status="200"}' in metrics
