"""Train the character-level GPT that tvmedge's LM example ships (``examples/llm/charlm/``), reproducibly.

Corpus: the licence texts every Debian machine has in ``/usr/share/common-licenses`` (symlinks such as ``GPL`` ->
``GPL-3`` are read once). The files are concatenated in name order; the last 10 % of the characters are held
out for perplexity (:func:`split_corpus`, also used by ``benchmarks/llm_bench.py``). Vocabulary: every character
of the training part (sorted) plus ``\\n``; a held-out character missing from it maps to ``?`` there.

Seeded torch CPU training (one thread per core, a few minutes under ``nice``), then the weights go through
:mod:`gpt` into an LM package: ``prefill.onnx``, ``decode.onnx``, ``lm.json``.

    nice -n 10 python examples/llm/train.py -o examples/llm/charlm        # ~30 min on a busy 2-core machine

``--corpus assistant`` trains the assistant pack's answer model instead (``examples/assistant/lm/``): the
12 knowledge-base answers of ``examples/assistant/language.py``, each the continuation of a prompt
``question\n#kk:`` (:func:`language.answer_prompt`, ``kk`` = the entry the retrieval model picked). Each
training prompt pairs the entry's tag with one of its training questions, or (half of them) with another
entry's question, an intent template or an unrelated phrase, so that the tag, not the wording, decides the
answer; the held-out questions are never trained on. One sample per sequence (prompt at position 0, as at
inference), the loss on the answer and its final newline only; seeded (``--seed``, default 0).

    nice -n 10 python examples/llm/train.py --corpus assistant -o examples/assistant/lm   # ~175k parameters
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpt  # noqa: E402

CORPUS = Path("/usr/share/common-licenses")


def read_corpus(root: Path = CORPUS) -> str:
    seen, parts = set(), []
    for path in sorted(root.iterdir()):
        real = path.resolve()
        if real in seen or not real.is_file():
            continue
        seen.add(real)
        parts.append(real.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def split_corpus(text: str, held_out: float = 0.1) -> tuple:
    """(training text, held-out text): the last ``held_out`` fraction is held out."""
    cut = int(len(text) * (1 - held_out))
    return text[:cut], text[cut:]


def encode(text: str, vocab: list) -> np.ndarray:
    index = {c: i for i, c in enumerate(vocab)}
    unknown = index.get("?", 0)
    return np.array([index.get(c, unknown) for c in text], np.int64)


def torch_model(cfg: gpt.GPTConfig, weights: dict):
    """The same network as the ONNX graphs, in torch, with parameters named as the ONNX initializers."""
    import torch
    import torch.nn.functional as F

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(torch.from_numpy(v.copy()))
                                             for k, v in weights.items()})

        def w(self, name):
            return self.p[name.replace(".", "__")]

        def lin(self, x, name):
            return x @ self.w(name + ".weight") + self.w(name + ".bias")

        def ln(self, x, name):
            return F.layer_norm(x, (cfg.dim,), self.w(name + ".weight"), self.w(name + ".bias"), 1e-5)

        def forward(self, tokens):  # [B, n] -> logits [B, n, V]
            B, n = tokens.shape
            H, D = cfg.heads, cfg.head_dim
            x = self.w("embeddings")[tokens] + self.w("pos_embeddings")[:n]
            for i in range(cfg.layers):
                p = f"layers.{i}."
                h = self.ln(x, p + "ln1")
                q, k, v = (self.lin(h, p + f"attn.{c}").view(B, n, H, D).transpose(1, 2) for c in "qkv")
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + self.lin(a.transpose(1, 2).reshape(B, n, cfg.dim), p + "attn.o")
                x = x + self.lin(F.gelu(self.lin(self.ln(x, p + "ln2"), p + "mlp.fc1")), p + "mlp.fc2")
            return self.ln(x, "ln_f") @ self.w("final_fc.weight")

        def numpy_weights(self):
            return {k.replace("__", "."): v.detach().numpy().astype(np.float32) for k, v in self.p.items()}

    return GPT()


ASSISTANT_DEFAULTS = {"steps": 1200, "batch": 32, "layers": 3, "dim": 64, "heads": 4, "context": 192,
                      "prefill": 64, "lr": 3e-3}


def fit(model, args, batch_loss, log_every: int) -> float:
    """AdamW over ``args.steps`` steps of ``batch_loss()``: 100 warm-up steps, then a cosine decay; returns the start
    time."""
    import torch

    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    start = time.time()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimiser.param_groups:
            group["lr"] = lr
        loss = batch_loss()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step % log_every == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - start:.0f} s", flush=True)
    return start


def _language():
    folder = str(Path(__file__).resolve().parents[1] / "assistant")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import language

    return language


def assistant_samples(rng: np.random.Generator, n: int) -> list:
    """``n`` (prompt, answer) training pairs for the assistant's answer model (see the module docstring)."""
    language = _language()
    others = [q for _, train, _ in language.KNOWLEDGE for q in train] + list(language.OTHER_PHRASES)
    others += language.intent_sentences(False, np.random.default_rng(0), per_template=2)[0]
    samples = []
    for _ in range(n):
        entry = int(rng.integers(len(language.KNOWLEDGE)))
        answer, train, _ = language.KNOWLEDGE[entry]
        question = train[rng.integers(len(train))] if rng.random() < 0.5 else others[rng.integers(len(others))]
        samples.append((language.answer_prompt(question, entry), " " + answer + language.ANSWER_STOP))
    return samples


def train_assistant(args) -> None:
    """``--corpus assistant``: prompt-aligned samples, loss on the answers (see the module docstring)."""
    import torch

    language = _language()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    vocab = language.lm_vocabulary()
    cfg = gpt.GPTConfig(vocab=len(vocab), context=args.context, prefill=args.prefill, layers=args.layers,
                        dim=args.dim, heads=args.heads)
    model = torch_model(cfg, gpt.random_weights(cfg, args.seed))
    print(f"assistant corpus: {len(language.KNOWLEDGE)} answers, vocab {len(vocab)}, "
          f"{cfg.parameters():,} parameters")
    def batch_loss():
        pairs = assistant_samples(rng, args.batch)
        length = max(len(p) + len(a) for p, a in pairs)
        tokens = np.zeros((len(pairs), length), np.int64)
        weights = np.zeros((len(pairs), length - 1), np.float32)
        for row, (prompt, answer) in enumerate(pairs):
            ids = encode(prompt + answer, vocab)
            tokens[row, :len(ids)] = ids
            weights[row, len(prompt) - 1:len(ids) - 1] = 1.0  # predict the answer's characters and its stop
        batch, mask = torch.from_numpy(tokens), torch.from_numpy(weights)
        logits = model(batch[:, :-1])
        losses = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab), batch[:, 1:].reshape(-1),
                                                   reduction="none")
        return (losses * mask.reshape(-1)).sum() / mask.sum()

    start = fit(model, args, batch_loss, log_every=100)
    gpt.write_package(model.numpy_weights(), cfg, vocab, args.out,
                      meta={"weights": f"train.py --corpus assistant, seed {args.seed}, {args.steps} steps, "
                                       f"batch {args.batch}",
                            "corpus": "examples/assistant/language.py: knowledge-base answers after "
                                      "'question\\n#kk:' prompts (held-out questions never trained on)"})
    print(f"wrote {args.out}/ (prefill.onnx, decode.onnx, lm.json) in {time.time() - start:.0f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the character-level GPT example (seeded, torch CPU).")
    parser.add_argument("--corpus", choices=["licenses", "assistant"], default="licenses",
                        help="licenses: /usr/share/common-licenses (charlm); assistant: the assistant pack's answers")
    parser.add_argument("-o", "--out", help="default: examples/llm/charlm, or examples/assistant/lm")
    parser.add_argument("--steps", type=int, help="default 1500 (assistant: 1200)")
    parser.add_argument("--batch", type=int, help="default 8 (assistant: 32)")
    parser.add_argument("--layers", type=int, help="default 4 (assistant: 3)")
    parser.add_argument("--dim", type=int, help="default 128 (assistant: 64)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, help="default 128 (assistant: 192)")
    parser.add_argument("--prefill", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    defaults = ASSISTANT_DEFAULTS if args.corpus == "assistant" else \
        {"steps": 1500, "batch": 8, "layers": 4, "dim": 128, "context": 128}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    here = Path(__file__).resolve().parent
    args.out = args.out or str(here / "charlm" if args.corpus == "licenses" else here.parent / "assistant" / "lm")
    if args.corpus == "assistant":
        return train_assistant(args)
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)  # one thread: on a shared 2-core machine a second one mostly waits
    rng = np.random.default_rng(args.seed)
    train_text, held_text = split_corpus(read_corpus())
    vocab = sorted(set(train_text) | {"\n", "?"})
    cfg = gpt.GPTConfig(vocab=len(vocab), context=args.context, prefill=args.prefill, layers=args.layers,
                        dim=args.dim, heads=args.heads)
    data = torch.from_numpy(encode(train_text, vocab))
    model = torch_model(cfg, gpt.random_weights(cfg, args.seed))
    print(f"corpus {len(train_text)} + {len(held_text)} held-out characters, vocab {len(vocab)}, "
          f"{cfg.parameters() / 1e6:.2f} M parameters")
    def batch_loss():
        offsets = torch.from_numpy(rng.integers(0, len(data) - cfg.context - 1, args.batch))
        batch = torch.stack([data[o:o + cfg.context + 1] for o in offsets])
        logits = model(batch[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab), batch[:, 1:].reshape(-1))

    fit(model, args, batch_loss, log_every=50)
    weights = model.numpy_weights()
    held = encode(held_text, vocab)
    with torch.no_grad():  # held-out perplexity over non-overlapping windows of the full context
        n = (len(held) - 1) // cfg.context * cfg.context
        x = torch.from_numpy(held[:n]).view(-1, cfg.context)
        y = torch.from_numpy(held[1:n + 1]).view(-1, cfg.context)
        nll = torch.nn.functional.cross_entropy(model(x).reshape(-1, cfg.vocab), y.reshape(-1)).item()
    print(f"held-out perplexity (torch, windows of {cfg.context}): {math.exp(nll):.3f}")
    gpt.write_package(weights, cfg, vocab, args.out,
                      meta={"weights": f"train.py seed {args.seed}, {args.steps} steps, batch {args.batch}",
                            "corpus": "/usr/share/common-licenses (last 10% held out)",
                            "torch_held_out_perplexity": round(math.exp(nll), 4)})
    print(f"wrote {args.out}/ (prefill.onnx, decode.onnx, lm.json)")


if __name__ == "__main__":
    main()
