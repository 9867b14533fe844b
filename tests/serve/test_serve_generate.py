"""The service's streaming generate route (issue 16): server-sent events, one per token, then the result."""

import json
import shutil
import warnings

import pytest

from tvmedge.runtime.lm import SamplingOptions
from tvmedge.serve.app import create_app
from tvmedge.serve.options import ServeOptions
from tvmedge.serve.registry import ModelRegistry

from lm_reference import ort_generate

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_lm_artifact, x86_artifact):
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_lm_artifact, root / "lm")
    shutil.copytree(x86_artifact, root / "cnn")
    options = ServeOptions(root)
    registry = ModelRegistry(root, allowed=options.allowed())
    with TestClient(create_app(registry, options)) as client:
        assert client.post("/v1/models/lm/load").status_code == 200
        yield client


def events(text):
    for block in text.strip().split("\n\n"):
        kind, data = block.split("\n")
        yield kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def test_generate_streams_server_sent_events(client, tiny_lm_package):
    response = client.post("/v1/models/lm/generate", json={"prompt": "The ", "max_tokens": 5})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    got = list(events(response.text))
    assert [kind for kind, _ in got] == ["token"] * 5 + ["done"]
    expected = ort_generate(tiny_lm_package, "The ", SamplingOptions(max_tokens=5))
    assert [data["id"] for _, data in got[:-1]] == expected == got[-1][1]["tokens"]
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert listed["lm"]["kind"] == "lm" and listed["lm"]["context"] == 16


def test_generate_without_streaming(client):
    data = client.post("/v1/models/lm/generate", json={"prompt": "ab", "max_tokens": 3, "stream": False}).json()
    assert data["model"] == "lm" and len(data["tokens"]) == 3


@pytest.mark.parametrize("body, status, detail", [
    ({"prompt": "é"}, 400, "prompt character 'é'"),
    ({"prompt": "ab", "top_k": -1}, 400, "top_k must be an integer >= 0"),
    ({"prompt": "ab", "temp": 1}, 400, "unknown generate field 'temp'"),
    ({"max_tokens": 3}, 400, 'a JSON object with a "prompt" string'),
])
def test_bad_generate_requests_are_one_line(client, body, status, detail):
    response = client.post("/v1/models/lm/generate", json=body)
    assert response.status_code == status and detail in response.json()["detail"]


def test_generate_and_infer_refuse_the_other_kind(client):
    client.post("/v1/models/cnn/load")
    assert "is not a language model" in client.post("/v1/models/cnn/generate", json={"prompt": "a"}).json()["detail"]
    assert "is a language model" in client.post("/v1/models/lm/infer", json={"inputs": {}}).json()["detail"]
