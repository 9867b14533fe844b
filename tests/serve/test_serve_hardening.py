"""The model service against the attacks of issue 19 ("found by trying to break it", findings 1-4).

1. an ``.npz`` whose zip entry declares a small size but inflates to hundreds of MB must not be inflated;
2. half-open / slow clients must not starve a normal request (header deadline, no connection-count 503);
3. a JSON subarray dtype (``"(12000,12000)f8"``) must be refused before anything is allocated;
4. one malformed manifest must not stop ``serve`` or make ``/v1/models`` and ``/metrics`` answer 500.
"""

import io
import json
import shutil
import socket
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib

import httpx
import numpy as np
import pytest

from tvmedge.errors import InputError
from tvmedge.runtime.manifest import TensorSpec
from tvmedge.serve.app import create_app
from tvmedge.serve.codec import decode_inputs
from tvmedge.serve.options import ServeOptions
from tvmedge.serve.registry import ModelRegistry
from tvmedge.serve.server import start_registry

from test_serve_load import start_server, stop_server

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SHAPE = (1, 3, 32, 32)
SPECS = [TensorSpec("input", SHAPE, "float32")]


def _zip_bomb(inflated: int, declared: int) -> bytes:
    """An .npz whose only member is an .npy of the right header followed by ``inflated`` zero bytes, deflated,
    with its local and central headers claiming ``declared`` bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": SHAPE})
    header = buffer.getvalue()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts, crc, block = [deflate.compress(header)], zlib.crc32(header), bytes(1 << 20)
    for _ in range(inflated >> 20):
        parts.append(deflate.compress(block))
        crc = zlib.crc32(block, crc)
    parts.append(deflate.flush())
    data = b"".join(parts)
    name = b"input.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), declared, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), declared, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def test_npz_member_lying_about_its_size_is_not_inflated():
    # finding 1: a 300 KB body inflating to 300 MB took the server to gigabytes; now at most the input's size is read
    body = _zip_bomb(inflated=300 << 20, declared=12_416)
    assert len(body) < 1 << 20 and zipfile.ZipFile(io.BytesIO(body)).infolist()[0].file_size == 12_416
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="not a valid .npz|inflates to more than"):
            decode_inputs(body, "application/x-npz", SPECS, limit=16 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"decoding the bomb allocated {peak / 2**20:.0f} MiB"


def test_npz_member_bigger_than_its_input_is_refused_while_inflating():
    body = _zip_bomb(inflated=64 << 20, declared=(64 << 20) + 128)  # honest about its size, over the input's
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="inflates to more than .* bytes input 'input'"):
            decode_inputs(body, "application/x-npz", SPECS, limit=128 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_npz_member_for_an_unknown_input_is_not_inflated():
    buffer = io.BytesIO()
    np.savez(buffer, other=np.zeros(SHAPE, "float32"))
    with pytest.raises(InputError, match="unknown input 'other'; the model's inputs are: input"):
        decode_inputs(buffer.getvalue(), "application/x-npz", SPECS)


@pytest.mark.parametrize("dtype", ["(12000,12000)f8", "(2,)f4", "f4,f4", "O", "U8", "V16"])
def test_json_subarray_or_structured_dtype_is_refused_before_allocating(dtype):
    # finding 3: a 66-byte body with a subarray dtype allocated ~1.2 GB before the shape check
    body = json.dumps({"inputs": {"input": {"data": [0], "dtype": dtype}}}).encode()
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"input 'input': dtype .* is not a plain number type; the model takes float32"):
            decode_inputs(body, "application/json", SPECS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_json_for_an_unknown_input_is_refused_before_allocating():
    body = json.dumps({"inputs": {"image": {"data": [0], "dtype": "(12000,12000)f8"}}}).encode()
    with pytest.raises(InputError, match="unknown input 'image'; the model's inputs are: input"):
        decode_inputs(body, "application/json", SPECS)


@pytest.fixture
def models_with_a_bad_manifest(tmp_path, x86_artifact):
    root = tmp_path / "models"
    shutil.copytree(x86_artifact, root / "good")
    (root / "nested").mkdir()
    (root / "nested" / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError in json
    (root / "typed").mkdir()
    data = json.loads((root / "good" / "manifest.json").read_text())
    data["files"] = 5  # wrong type: verify() used to raise TypeError
    (root / "typed" / "manifest.json").write_text(json.dumps(data))
    return root


def test_one_bad_manifest_does_not_stop_start_up(models_with_a_bad_manifest):
    # finding 4: serve exited 70 on start-up when one manifest was malformed in an unexpected way
    registry, summary = start_registry(ServeOptions(models_with_a_bad_manifest))
    try:
        assert summary["loaded"] == ["good"]
        assert set(summary["skipped"]) == {"nested", "typed"}
        assert all("\n" not in reason for reason in summary["skipped"].values())
    finally:
        registry.close()


def test_one_bad_manifest_added_at_run_time_is_listed_as_failed(tmp_path, x86_artifact):
    # finding 4: one manifest added while serving made GET /v1/models and /metrics answer 500
    root = tmp_path / "models"
    shutil.copytree(x86_artifact, root / "good")
    options = ServeOptions(root)
    registry = ModelRegistry(root)
    client = TestClient(create_app(registry, options))
    registry.load("good")
    (root / "late").mkdir()
    (root / "late" / "manifest.json").write_text("[" * 100_000)
    listing = client.get("/v1/models")
    assert listing.status_code == 200, listing.text
    models = {m["name"]: m for m in listing.json()["models"]}
    assert models["good"]["state"] == "ready" and "error" not in models["good"]
    assert models["late"]["error"]
    assert client.get("/metrics").status_code == 200
    failed = client.post("/v1/models/late/load")
    assert failed.status_code == 422 and "\n" not in failed.json()["detail"]
    registry.close()


def test_half_open_clients_do_not_starve_a_normal_request(tmp_path, x86_artifact):
    # finding 2: 64 half-open connections made every client get 503 for as long as they stayed open
    root = tmp_path / "models"
    shutil.copytree(x86_artifact, root / "tiny")
    process, summary = start_server(root, tmp_path, "--header-timeout", "3")
    host, port = summary["url"].removeprefix("http://").rsplit(":", 1)
    slow = []
    try:
        for _ in range(80):  # more than uvicorn's old connection limit of 64, each stuck in its headers
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            slow.append(sock)
        time.sleep(0.3)
        start = time.monotonic()
        answer = httpx.post(f"{summary['url']}/v1/models/tiny/infer", timeout=10,
                            json={"inputs": {"input": np.zeros(SHAPE).tolist()}})
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - start < 3  # answered while the slow clients still hang, not after they time out
        # and the slow ones are closed by the header deadline
        time.sleep(3.5)
        closed = 0
        for sock in slow:
            sock.settimeout(2)
            try:
                closed += sock.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
        assert closed == len(slow)
    finally:
        for sock in slow:
            sock.close()
        stop_server(process, tmp_path)


def test_slow_body_gets_408_and_does_not_block_others(tmp_path, x86_artifact):
    root = tmp_path / "models"
    shutil.copytree(x86_artifact, root / "tiny")
    process, summary = start_server(root, tmp_path, "--body-timeout", "1.5")
    host, port = summary["url"].removeprefix("http://").rsplit(":", 1)
    try:
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"inputs\"")
        ok = httpx.get(f"{summary['url']}/v1/models", timeout=5)
        assert ok.status_code == 200
        sock.settimeout(5)
        reply = b""
        while chunk := sock.recv(4096):  # the server closes the connection after the 408
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"request body not received within 1.5 s" in reply
        sock.close()
    finally:
        stop_server(process, tmp_path)


def test_requests_in_flight_per_client_are_limited(tmp_path, x86_artifact):
    import asyncio

    from tvmedge.serve.app import _Guard

    async def slow_app(scope, receive, send):
        await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = _Guard(slow_app, token=None, max_body=1024, metrics=_NoMetrics(), max_in_flight=3, max_per_client=2)

    async def request(client):
        sent = []
        scope = {"type": "http", "path": "/x", "headers": [], "client": (client, 1), "method": "GET"}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await guard(scope, receive, send)
        return sent[0]["status"]

    async def main():
        return await asyncio.gather(request("a"), request("a"), request("a"), request("b"), request("c"))

    statuses = asyncio.run(main())
    assert statuses == [200, 200, 429, 200, 503]
    assert guard.in_flight == 0 and guard.per_client == {}


class _NoMetrics:
    class _Any:
        def labels(self, *args):
            return self

        def inc(self, *args):
            pass

        def observe(self, *args):
            pass

    requests = request_seconds = _Any()

    def model_label(self, name):
        return "-"
