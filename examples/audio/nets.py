"""Training loop shared by the audio packs: a small torch CNN on precomputed log-mel features.

CPU only, seeded (``torch.manual_seed``, one thread pool, deterministic algorithms), so the same data gives the
same weights on the same machine.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kws_cnn", "fit", "predict"]


def kws_cnn(classes: int, widths=(16, 32, 48, 64)):
    """conv3x3 + BN + ReLU (+ 2x2 max-pool) x 4 -> global average pool -> linear: ~50k weights."""
    import torch.nn as nn

    layers, channels = [], 1
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


def fit(net, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int, lr: float = 3e-3, batch: int = 64,
        loss: str = "ce", weight=None, augment: bool = True, progress=print):
    """Train ``net`` in place (Adam, cosine schedule, SpecAugment-style time/band masking on the features).

    ``loss`` "ce" (class labels) or "bce" (per-frame 0/1 targets, ``y`` shaped as the net's output);
    ``augment`` masks a band and a stretch of frames of 4-d feature inputs (training only).
    """
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(x) / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    criterion = (torch.nn.CrossEntropyLoss() if loss == "ce"
                 else torch.nn.BCEWithLogitsLoss(pos_weight=None if weight is None else torch.tensor(weight)))
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb = xt[idx].clone()
            if augment and xb.ndim == 4:  # mask one band of mel bins and one stretch of frames per sample
                for row in range(len(idx)):
                    b0 = rng.integers(0, xb.shape[2] - 6)
                    t0 = rng.integers(0, xb.shape[3] - 10)
                    xb[row, :, b0:b0 + rng.integers(0, 6)] = 0
                    xb[row, :, :, t0:t0 + rng.integers(0, 10)] = 0
            out = net(xb)
            batch_loss = criterion(out, yt[idx])
            opt.zero_grad()
            batch_loss.backward()
            opt.step()
            sched.step()
            total += float(batch_loss.detach()) * len(idx)
        progress(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    net.eval()
    return net


def predict(net, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The net's outputs for ``x`` (eval mode, no gradients), as numpy."""
    import torch

    net.eval()
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])
