"""The REST model service's routes through FastAPI's test client: good requests and the bad-request table.

Issue 7 §1: unknown model, traversal names, wrong shape/dtype/name, malformed bodies, oversize bodies and a missing
token each get a one-line JSON error with a status that says what to do, never a 500 with a traceback.
"""

import io
import json
import shutil
import warnings

import numpy as np
import pytest

import tvmedge.runtime as rt
from tvmedge.serve.app import create_app
from tvmedge.serve.options import ServeOptions
from tvmedge.serve.registry import ModelRegistry

with warnings.catch_warnings():  # Starlette 1.x would rather drive its test client with `httpx2`; the extra installs httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TOKEN = "a-test-token-of-24-chars"
SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, x86_artifact):
    """Two copies of the tiny CNN, an artifact with a tampered library, a symlink out of the directory, a stray file."""
    root = tmp_path_factory.mktemp("models")
    for name in ("tiny", "tiny2", "tampered"):
        shutil.copytree(x86_artifact, root / name)
    with open(root / "tampered" / "model.so", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    outside = tmp_path_factory.mktemp("outside")
    shutil.copytree(x86_artifact, outside / "art")
    (root / "escape").symlink_to(outside / "art")
    (root / "notes.txt").write_text("not a model")
    return root


def make_client(models_dir, **settings):
    options = ServeOptions(models_dir, **settings)
    registry = ModelRegistry(models_dir, allowed=options.allowed())
    return TestClient(create_app(registry, options)), registry


@pytest.fixture(scope="module")
def client(models_dir):
    client, registry = make_client(models_dir, max_body=64 << 10)
    for name in ("tiny", "tiny2"):
        registry.load(name)
    yield client
    registry.close()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(7).random(SHAPE).astype("float32")


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_infer_json_npy_npz_match_a_direct_run(client, x86_artifact, x):
    expected = rt.load(x86_artifact).run({"input": x})["probabilities"]
    as_json = client.post("/v1/models/tiny/infer", json={"inputs": {"input": x.tolist()}})
    assert as_json.status_code == 200, as_json.text
    out = as_json.json()["outputs"]["probabilities"]
    assert out["shape"] == [1, 10] and out["dtype"] == "float32"
    np.testing.assert_array_equal(np.array(out["data"], dtype="float32"), expected)  # float32 survives JSON exactly
    as_npy = client.post("/v1/models/tiny2/infer", content=npy(x), headers={"content-type": "application/x-npy"})
    np.testing.assert_array_equal(np.array(as_npy.json()["outputs"]["probabilities"]["data"], "float32"), expected)
    buffer = io.BytesIO()
    np.savez(buffer, input=x)
    back = client.post("/v1/models/tiny/infer", content=buffer.getvalue(),
                       headers={"content-type": "application/x-npz", "accept": "application/x-npy"})
    assert back.headers["content-type"] == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(back.content)), expected)


def test_list_health_metrics_openapi(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"tiny", "tiny2", "tampered"}  # not the symlink out, not the stray file
    assert models["tiny"]["state"] == "ready" and models["tampered"]["state"] == "available"
    assert models["tiny"]["inputs"] == [{"name": "input", "shape": list(SHAPE), "dtype": "float32"}]
    assert client.get("/healthz").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for line in ("tvmedge_models_loaded 2.0", 'tvmedge_requests_total{endpoint="/v1/models",model="-",status="200"}',
                 "tvmedge_rss_bytes", "tvmedge_inference_seconds_bucket", "process_resident_memory_bytes"):
        assert line in metrics.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/models/{name}/load", "/v1/models/{name}/unload", "/v1/models/{name}/infer",
            "/healthz", "/metrics"} <= set(paths)
    assert "application/x-npy" in paths["/v1/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


LOADER_SHAPE = "input 'input': expected shape (1, 3, 32, 32) float32, got (1, 3, 32) float32"
LOADER_DTYPE = "input 'input': expected shape (1, 3, 32, 32) float32, got (1, 3, 32, 32) float64"
NPY_TYPE = {"content-type": "application/x-npy"}
ZEROS = np.zeros(SHAPE).tolist()

# (method, path, request kwargs, status, detail: exact text, or the start of it when it ends with "...")
BAD_REQUESTS = [
    ("post", "/v1/models/nope/infer", {"json": {"inputs": {}}}, 404, "no model 'nope' under ..."),
    ("post", "/v1/models/nope/load", {}, 404, "no model 'nope' under ..."),
    ("post", "/v1/models/nope/unload", {}, 404, "no model 'nope' under ..."),
    ("post", "/v1/models/tampered/unload", {}, 409, "model 'tampered' is not loaded"),
    ("post", "/v1/models/%2e%2e/load", {}, 400, "invalid model name '..': use 1-64 letters, digits, ..."),
    ("post", "/v1/models/.hidden/load", {}, 400, "invalid model name '.hidden': ..."),
    ("post", "/v1/models/a..b/load", {}, 400, "invalid model name 'a..b': ..."),
    ("post", "/v1/models/x%00y/load", {}, 400, "invalid model name 'x\\x00y': ..."),
    ("post", "/v1/models/" + "m" * 65 + "/load", {}, 400, "invalid model name ..."),
    ("post", "/v1/models/m%C3%B6del/load", {}, 400, "invalid model name 'mödel': ..."),
    ("post", "/v1/models/..%2F..%2Fetc/load", {}, 404, "Not Found"),  # a '/' never reaches a name
    ("post", "/v1/models/escape/load", {}, 403, "model 'escape' links outside ..."),
    ("post", "/v1/models/tampered/load", {}, 422, "... does not match the sha256 in its manifest (tampered or corrupt); refusing to load it"),
    ("post", "/v1/models/tampered/infer", {"json": {"inputs": {}}}, 409, "model 'tampered' is not loaded; POST /v1/models/tampered/load first"),
    ("post", "/v1/models/tiny/unload/extra", {}, 404, "Not Found"),
    ("get", "/v1/models/tiny/infer", {}, 405, "Method Not Allowed"),
    ("post", "/v1/models/tiny/infer", {"json": {"inputs": {"input": np.zeros((1, 3, 32)).tolist()}}}, 400, LOADER_SHAPE),
    ("post", "/v1/models/tiny/infer", {"content": npy(np.zeros((1, 3, 32), "float32")), "headers": NPY_TYPE}, 400, LOADER_SHAPE),
    ("post", "/v1/models/tiny/infer", {"content": npy(np.zeros(SHAPE)), "headers": NPY_TYPE}, 400, LOADER_DTYPE),
    ("post", "/v1/models/tiny/infer", {"json": {"inputs": {"input": {"data": ZEROS, "dtype": "float64"}}}}, 400, LOADER_DTYPE),
    ("post", "/v1/models/tiny/infer", {"json": {"inputs": {"image": ZEROS}}}, 400, "unknown input 'image'; the model's inputs are: input"),
    ("post", "/v1/models/tiny/infer", {"json": {"inputs": {}}}, 400, "missing input 'input' (expected input (1, 3, 32, 32) float32)"),
    ("post", "/v1/models/tiny/infer", {"content": npy(np.zeros(SHAPE, "float32")), "headers": NPY_TYPE, "params": {"input": "image"}},
     400, "unknown input 'image'; the model's inputs are: input"),
    ("post", "/v1/models/tiny/infer", {"content": b'{"inputs": ', "headers": {"content-type": "application/json"}}, 400,
     "request body is not valid JSON: Expecting value: line 1 column 12 (char 11)"),
    ("post", "/v1/models/tiny/infer", {"content": b"[" * 5_000, "headers": {"content-type": "application/json"}}, 400,
     "request body is not valid JSON: nested too deeply"),
    ("post", "/v1/models/tiny/infer", {"json": [1, 2]}, 400, 'JSON body must be {"inputs": {"<input name>": [[...]], ...}}'),
    ("post", "/v1/models/tiny/infer", {"json": {"inputs": {"input": [[1, 2], [3]]}}}, 400, "input 'input' is not a rectangular array of numbers: ..."),
    ("post", "/v1/models/tiny/infer", {"json": {"inputs": {"input": ["a", "b"]}}}, 400, "input 'input' holds <U1 values; send numbers"),
    ("post", "/v1/models/tiny/infer", {"json": {"inputs": {"input": {"data": [1], "dtype": "float99"}}}}, 400, "input 'input': unknown dtype 'float99'"),
    ("post", "/v1/models/tiny/infer", {"content": b"\x93NUMPY garbage", "headers": NPY_TYPE}, 400, "request body is not a valid .npy array: ..."),
    ("post", "/v1/models/tiny/infer", {"content": npy(np.zeros(SHAPE, "float32"))[:200], "headers": NPY_TYPE}, 400,
     "request body is not a valid .npy array: its header declares 12288 bytes of data but the body holds 72"),
    ("post", "/v1/models/tiny/infer", {"content": b"PK\x03\x04 not a zip", "headers": {"content-type": "application/x-npz"}}, 400,
     "request body is not a valid .npz archive: ..."),
    ("post", "/v1/models/tiny/infer", {"content": b"x=1", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported content type 'text/plain'; send application/json, application/x-npy or application/x-npz"),
    ("post", "/v1/models/tiny/infer", {"content": b"0" * (64 << 10 + 1), "headers": NPY_TYPE}, 413,
     "request body is larger than the limit of 65536 bytes"),
    ("post", "/v1/models/tiny/infer", {"content": iter([b"0" * 40_000] * 2), "headers": NPY_TYPE}, 413,  # chunked, no length
     "request body is larger than the limit of 65536 bytes"),
]


@pytest.mark.parametrize("method, path, kwargs, status, detail", BAD_REQUESTS, ids=[f"{r[1]}-{r[3]}" for r in BAD_REQUESTS])
def test_bad_requests_get_one_line_json(client, method, path, kwargs, status, detail):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert "Traceback" not in response.text and "\n" not in body["detail"]
    if detail.startswith("..."):
        assert body["detail"].endswith(detail[3:]), body["detail"]
    elif detail.endswith("..."):
        assert body["detail"].startswith(detail[:-3]), body["detail"]
    else:
        assert body["detail"] == detail
    if status not in (404, 405) or "nope" in path:
        assert body["error"] in {"ServeError", "InputError", "ArtifactError"}


def test_token_is_required_except_for_health(models_dir):
    client, _ = make_client(models_dir, token=TOKEN)
    assert client.get("/healthz").status_code == 200
    for headers in ({}, {"authorization": "Bearer wrong-token-of-enough-length"}, {"authorization": TOKEN}):
        response = client.get("/v1/models", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == "missing or wrong bearer token; send 'Authorization: Bearer <token>'"
    assert client.get("/openapi.json").status_code == 401  # nothing about the models leaks without the token
    assert client.get("/v1/models", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_offline_profile_limits_models_and_extras(models_dir, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"models": ["tiny2"]}))
    client, registry = make_client(models_dir, offline=True, profile=profile)
    assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["tiny2"]
    refused = client.post("/v1/models/tiny/load")
    assert refused.status_code == 403 and refused.json()["detail"] == "offline mode: model 'tiny' is not in the profile (tiny2)"
    assert client.post("/v1/models/tiny2/load").json()["state"] == "ready"
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404  # they fetch scripts from a CDN
    assert client.get("/openapi.json").status_code == 200
    registry.close()


def test_a_bug_answers_500_without_traceback(models_dir):
    def broken_loader(path):
        raise RuntimeError("boom\nTraceback (most recent call last): secret")

    options = ServeOptions(models_dir)
    client = TestClient(create_app(ModelRegistry(models_dir, loader=broken_loader), options))
    response = client.post("/v1/models/tiny/load")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (logged by the server); the request was not completed",
                               "error": "InternalError"}
