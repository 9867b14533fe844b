"""Measure training data for the shipped schedule cost model on synthetic single-layer workloads.

The shipped tuning records cover the layers of a handful of models; a cost model that must rank schedules for
layers it has never seen learns more from many different shapes than from more trials on the same ones. This
script draws conv2d (dense, grouped, depthwise; kernel 1-11, stride 1-4), dense/matmul and pooling layers at
random (seeded; shapes from the ranges CNNs and small transformers use, capped in FLOPs so one layer measures in
seconds), wraps each in a one-node ONNX model (or takes whole ONNX models with ``--model``), and measures on this
host, per task: the current shipped model's top predictions (active learning: the data says where the model's
own picks are wrong, which is what a zero-measurement compile depends on) plus a few random draws from the
design space. Resumable: layers already in the folder are skipped. Held-out benchmark models must not be given.

    .venv/bin/python scripts/costmodel_data.py tvmedge/tune/models/data/x86_64-znver4-2c --layers 120
    .venv/bin/python scripts/costmodel_data.py tvmedge/tune/models/data/x86_64-znver4-2c \
        --model .venv/lib/python3.11/site-packages/onnx/backend/test/data/light/light_vgg19.onnx
    .venv/bin/python -m tvmedge.tune.costmodel train --logs tuning_logs/x86_64-znver5-2c \\
        --logs tvmedge/tune/models/data/x86_64-znver4-2c
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _conv(rng):
    while True:
        cin = int(rng.choice([3, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024]))
        cout = int(rng.choice([8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024]))
        size = int(rng.choice([7, 13, 14, 27, 28, 55, 56, 112, 224]))
        kernel = int(rng.choice([1, 1, 3, 3, 3, 5, 7, 11]))
        stride = int(rng.choice([1, 1, 1, 2, 2, 4]))
        kind = rng.choice(["dense", "dense", "dense", "depthwise", "grouped"])
        groups = 1
        if kind == "depthwise":
            cout, groups = cin, cin
        elif kind == "grouped":
            groups = int(rng.choice([2, 3, 4, 8]))
            cin, cout = cin - cin % groups or groups, cout - cout % groups or groups
        if kernel > size or stride > kernel:
            continue
        out = (size + 2 * (kernel // 2) - kernel) // stride + 1
        flops = 2 * out * out * cout * (cin // groups) * kernel * kernel
        if 2e5 <= flops <= 1.5e9:
            return {"op": "conv", "cin": cin, "cout": cout, "size": size, "kernel": kernel, "stride": stride,
                    "groups": groups, "relu": bool(rng.random() < 0.7)}


def _dense(rng):
    while True:
        m = int(rng.choice([1, 1, 4, 16, 32, 64, 128, 197, 256]))
        k = int(rng.choice([64, 128, 256, 384, 512, 768, 1024, 2048, 4096, 9216]))
        n = int(rng.choice([10, 64, 128, 256, 384, 512, 768, 1000, 1024, 2048, 3072, 4096]))
        if 2 * m * k * n <= 1.5e9:
            return {"op": "dense", "m": m, "k": k, "n": n, "relu": bool(rng.random() < 0.5)}


def _pool(rng):
    return {"op": rng.choice(["maxpool", "avgpool", "gap"]), "c": int(rng.choice([32, 64, 128, 256, 512, 1024])),
            "size": int(rng.choice([7, 14, 28, 56, 112])), "kernel": int(rng.choice([2, 3])),
            "stride": int(rng.choice([1, 2]))}


def draw(rng) -> dict:
    roll = rng.random()
    return _conv(rng) if roll < 0.65 else _dense(rng) if roll < 0.9 else _pool(rng)


def layer_name(spec: dict) -> str:
    return "_".join(f"{k}{v}" if k != "op" else str(v) for k, v in spec.items())


def onnx_model(spec: dict, seed: int):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    if spec["op"] == "conv":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, spec["cin"], spec["size"], spec["size"]])
        w = rng.standard_normal((spec["cout"], spec["cin"] // spec["groups"], spec["kernel"], spec["kernel"]))
        inits += [numpy_helper.from_array(w.astype("float32"), "w"),
                  numpy_helper.from_array(rng.standard_normal(spec["cout"]).astype("float32"), "b")]
        pad = spec["kernel"] // 2
        nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[spec["kernel"]] * 2,
                                      strides=[spec["stride"]] * 2, pads=[pad] * 4, group=spec["groups"]))
    elif spec["op"] == "dense":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [spec["m"], spec["k"]])
        inits += [numpy_helper.from_array(rng.standard_normal((spec["k"], spec["n"])).astype("float32"), "w"),
                  numpy_helper.from_array(rng.standard_normal(spec["n"]).astype("float32"), "b")]
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["c"]))
    else:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, spec["c"], spec["size"], spec["size"]])
        if spec["op"] == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", ["x"], ["y"]))
        else:
            op = "MaxPool" if spec["op"] == "maxpool" else "AveragePool"
            nodes.append(helper.make_node(op, ["x"], ["y"], kernel_shape=[spec["kernel"]] * 2,
                                          strides=[spec["stride"]] * 2))
    if spec["op"] in ("conv", "dense"):
        nodes.append(helper.make_node("Relu", ["c"], ["y"]) if spec["relu"] else
                     helper.make_node("Identity", ["c"], ["y"]))
    graph = helper.make_graph(nodes, "layer", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model)  # the output's real shape
    shape = [v for v in inferred.graph.value_info if v.name == "y"] or [o for o in inferred.graph.output]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, [d.dim_value for d in shape[0].type.tensor_type.shape.dim]))
    onnx.checker.check_model(model)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="records folder (created)")
    parser.add_argument("--layers", type=int, default=120)
    parser.add_argument("--model", action="append", type=Path, default=[], help="whole ONNX models (before layers)")
    parser.add_argument("--predicted", type=int, default=12, help="top predicted candidates measured per task")
    parser.add_argument("--random", type=int, default=6, help="random design-space samples measured per task")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--minutes", type=float, help="stop after this long (resumable)")
    args = parser.parse_args(argv)

    import onnx

    from tvmedge.devices.target import CompileTarget
    from tvmedge.frontend.onnx import import_model
    from tvmedge.tune.costmodel import load_schedule_model
    from tvmedge.tune.database import TuningDatabase
    from tvmedge.tune.measure import measurer_for
    from tvmedge.tune.predict import Effort, predict_schedules
    from tvmedge.tune.tasks import extract_tasks, prepare
    from tvmedge.tune.tuner import Budget, tune_tasks

    args.out.mkdir(parents=True, exist_ok=True)
    done_path = args.out / "layers.json"
    done = json.loads(done_path.read_text()) if done_path.exists() else []
    rng = np.random.default_rng(args.seed)
    specs = [draw(rng) for _ in range(args.layers)]
    target = CompileTarget.resolve("x86-host")
    database = TuningDatabase(args.out)
    builder, runner, _ = measurer_for(target)
    model = load_schedule_model()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(p.stem, p) for p in args.model] + [(layer_name(s), s) for s in specs]
        for index, (name, source) in enumerate(jobs):
            if name in done:
                continue
            if args.minutes and time.monotonic() - start > args.minutes * 60:
                break
            path = source
            if isinstance(source, dict):
                path = Path(tmp) / f"{name}.onnx"
                onnx.save(onnx_model(source, args.seed + index), path)
            t0 = time.monotonic()
            tasks = extract_tasks(prepare(import_model(path).mod, target.tvm_target), target.tvm_target)
            prediction = predict_schedules(tasks, target.tvm_target, model, effort=Effort(keep=args.predicted))
            tune_tasks(tasks, database, budget=Budget(per_task=args.predicted), builder=builder, runner=runner,
                       candidates=prediction.candidates)
            if args.random:  # plus random draws: the model must also learn what it never proposes
                tune_tasks(tasks, database, budget=Budget(per_task=args.predicted + args.random), builder=builder,
                           runner=runner)
            done.append(name)
            done_path.write_text(json.dumps(done, indent=0) + "\n")
            print(f"[{index + 1}/{len(jobs)}] {name}: {len(tasks)} tasks, {time.monotonic() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
