"""The pipeline executor (issue 17): a throughput-partitioned artifact's stages in threads of their own, inputs
streaming through bounded queues. Its outputs must equal the stage-after-stage run's exactly (same libraries,
same inputs: any difference is a hand-over bug); run, serve and certify use it for such artifacts."""

import threading

import numpy as np
import pytest

from tvmedge import api
from tvmedge.errors import InputError
from tvmedge.runtime import load
from tvmedge.runtime.inputs import random_inputs
from tvmedge.runtime.pipeline import PipelineExecutor, is_pipelined, stage_executions


@pytest.fixture(scope="module")
def pipelined(tmp_path_factory, tiny_cnn, two_cpu_board, naive_tuning):
    out = tmp_path_factory.mktemp("pipeline") / "tp"
    return api.compile(tiny_cnn, str(two_cpu_board), plan="throughput", tuning=naive_tuning, out=out).path


def test_pipeline_outputs_equal_the_sequential_run(pipelined):
    model = load(pipelined)
    assert is_pipelined(model.manifest) and model.stage_count >= 2
    inputs = [random_inputs(model.inputs, seed) for seed in range(12)]
    expected = [model.run(x) for x in inputs]
    with PipelineExecutor(model, depth=1) as pipe:
        got = pipe.run_many(inputs)
        single = pipe.submit(inputs[3]).result()
    assert len(got) == 12
    for e, g in zip(expected, got):
        assert e.keys() == g.keys() and all(np.array_equal(e[k], g[k]) for k in e)
    assert np.array_equal(single["probabilities"], expected[3]["probabilities"])


def test_each_unit_gets_its_own_core(pipelined):
    model = load(pipelined)
    executions = stage_executions(model.manifest, cpus=[0, 1])
    units = [s.built_for or s.unit for s in model.manifest.stages()]
    by_unit = {u: e.cpus for u, e in zip(units, executions)}
    assert len(set(by_unit.values())) == len(by_unit) == 2  # big and little on different cores
    assert all(e.threads == 1 for e in executions)


def test_a_bad_input_fails_its_future_and_the_pipeline_goes_on(pipelined):
    model = load(pipelined)
    with PipelineExecutor(model) as pipe:
        bad = pipe.submit({"input": np.zeros((1, 3, 8, 8), "float32")})
        good = pipe.submit(random_inputs(model.inputs, 0))
        with pytest.raises(InputError, match="expected shape"):
            bad.result()
        assert good.result()["probabilities"].shape == (1, 10)


def test_run_reports_pipelined_throughput(pipelined):
    result = api.run(pipelined, repeat=8)
    pipe = result.stats.extra["pipeline"]
    assert pipe["count"] == 8 and pipe["pipelined_ips"] > 0 and pipe["sequential_ips"] > 0
    assert len(pipe["executions"]) == load(pipelined).stage_count


def test_serve_runs_concurrent_requests_through_the_pipeline(pipelined, tmp_path):
    from tvmedge.serve.registry import ModelRegistry

    import shutil

    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(pipelined, root / "tp")  # served models live under the models directory (no symlinks out)
    registry = ModelRegistry(root)
    registry.load("tp")
    assert registry._entries["tp"].pipeline is not None
    model = load(pipelined)
    inputs = [random_inputs(model.inputs, seed) for seed in range(8)]
    results = [None] * 8

    def request(i):
        results[i] = registry.infer("tp", inputs[i])

    threads = [threading.Thread(target=request, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, r in zip(inputs, results):
        assert np.array_equal(r["probabilities"], model.run(x)["probabilities"])
    registry.unload("tp")
    assert not any(t.name.startswith("tvmedge-stage") for t in threading.enumerate())


def test_certify_measures_the_pipeline(pipelined):
    from tvmedge.runtime.certify import measure

    m = measure(pipelined, duration=0.5)
    assert m["pipeline"]["throughput_ips"] > 0 and m["pipeline"]["inputs"] >= 16
