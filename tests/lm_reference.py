"""The generation loop run by ONNX Runtime on an LM package's own ONNX graphs: what tvmedge's generation is
checked against (same prefill/decode split, same sampler, caches handed back as numpy arrays)."""

import json
from pathlib import Path

import numpy as np


def ort_generate(package, prompt: str, options) -> list:
    import onnxruntime as ort

    from tvmedge.runtime.lm import Sampler

    package = Path(package)
    lm = json.loads((package / "lm.json").read_text())
    index = {c: i for i, c in enumerate(lm["tokenizer"]["vocab"])}
    ids = [index[c] for c in prompt]
    pre = ort.InferenceSession(str(package / lm["prefill"]), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(package / lm["decode"]), providers=["CPUExecutionProvider"])
    pairs, P, T = lm["cache"], lm["prefill_length"], lm["context"]
    first = ids[:P]
    tokens = np.zeros((1, P), np.int64)
    tokens[0, : len(first)] = first
    out = dict(zip([o.name for o in pre.get_outputs()], pre.run(None, {"tokens": tokens, "length": np.array([len(first)])})))

    def step(token, position, out):
        feed = {"tokens": np.array([[token]], np.int64), "position": np.array([position], np.int64)}
        feed.update({past: out[present] for past, present in pairs})
        return dict(zip([o.name for o in dec.get_outputs()], dec.run(None, feed)))

    for position in range(len(first), len(ids)):
        out = step(ids[position], position, out)
    sampler, stops, generated, position = Sampler(options), {index[s] for s in options.stop}, [], len(ids)
    token = sampler(out["logits"])
    while token not in stops:
        generated.append(token)
        if len(generated) >= options.max_tokens or position >= T:
            break
        out = step(token, position, out)
        position += 1
        token = sampler(out["logits"])
    return generated
